"""POST /api/trading/execute and the order endpoints, on a paper account (the default mode)."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.renderers import JSONRenderer

from marketdata.models import Quote
from tests.factories import AccountFactory, UserFactory
from trading.models import (
    Execution,
    Order,
    OrderStatus,
    RiskEvent,
    RiskEventKind,
    SettlementTracking,
)

pytestmark = pytest.mark.django_db  # through the marker: the database outlives the autouse fixtures' teardown

EXECUTE = "/api/trading/execute"
# A paper market order through the API: session and user, the account, the instrument, the order
# insert (no read first: the unique client order id decides), the facts (quote, the position summed,
# the account figures in one query, paper cash and positions in one query valued with the quote already
# read, the breaker and the losing streak in one query), the fill through the ledger (the execution's
# existing row and id, the lots' state, one look for stored fills that would need a replay, the
# execution and its new lot, settlement, the trade counts incremented in place, change marks: a fill
# that only adds after every stored one of its instrument reads no stored fill), the order's judged
# fields and its events, the answer's fills (its events are the ones just written). SQLite takes more
# queries to reserve the execution's id (core.bulk.reserve_ids). Were 35 and 30, then 28 and 23. One
# read more since trading sessions: the session in force, stored with the order (its id and config hash).
# One fewer since the login session comes from the cache (cached_db).
EXECUTE_QUERIES = {"sqlite": 26, "postgresql": 21}
# A fill not after every stored fill of its instrument: every fill of it read, the deletes of matches,
# round trips, settlements and the lots' replacement, day trades and trade counts rewritten (34 on
# SQLite, 29 on PostgreSQL in all, the session read included; were 38 and 33, then 36 and 31).
FULL_PATH_EXTRA = 8
JSON = {"content_type": "application/json"}
# A refused order: the user (the login session cached), the account, the instrument, the order insert,
# the facts (the breaker and the losing streak in one query), the risk event, the order and its events,
# and the trading session in force. Was 20 on PostgreSQL, then 17, then 16.
REFUSED_QUERIES = {"sqlite": 15, "postgresql": 15}


def body(**kwargs) -> dict:
    values = {
        "account": "PAPER1",
        "client_order_id": "c-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "10",
        "order_type": "MKT",
    }
    values.update(kwargs)
    return values


@pytest.fixture
def api(client, trader):
    client.force_login(trader)
    return client


def test_a_paper_market_order_fills_at_once_against_the_fresh_quote(api, paper_account, aapl):
    answer = api.post(EXECUTE, body(decision_price="99.98", strategy="breakout"), content_type="application/json")
    assert answer.status_code == 201, answer.json()
    data = answer.json()
    assert data["status"] == "FILLED" and data["mode"] == "PAPER"
    assert all(check["passed"] for check in data["checks"])
    assert {c["name"] for c in data["checks"]} >= {"quantity", "quote", "position_size", "circuit_breaker"}
    assert data["average_fill_price"] == "100.00000000"  # the ask
    assert data["slippage"] == "0.02000000"  # paid 0.02 more than decided: worse, positive
    assert data["commission"] == "1.0000"  # 10 x 0.005 -> the 1.00 minimum
    assert [e["to_status"] for e in data["events"]] == ["PENDING", "SUBMITTED", "FILLED"]
    assert len(data["fills"]) == 1
    fill = Execution.objects.get()
    assert (fill.broker, fill.source, fill.exec_id) == ("paper", "PAPER", f"PAPER-{data['id']}-1")
    assert fill.perm_id == data["id"] and fill.commission == Decimal("1.0000")
    # The ledger took it like any fill: its settlement is tracked (T+1).
    assert SettlementTracking.objects.get(execution=fill).settlement_date.isoformat() == "2026-12-09"


def test_the_same_client_order_id_again_returns_the_first_order_and_places_nothing(api, paper_account, aapl):
    first = api.post(EXECUTE, body(), content_type="application/json")
    again = api.post(EXECUTE, body(quantity="20"), content_type="application/json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["quantity"] == "10.00000000"
    assert Order.objects.count() == 1 and Execution.objects.count() == 1


def test_a_refused_order_is_422_stored_rejected_with_every_failed_check_and_a_risk_event(api, paper_account, aapl):
    answer = api.post(
        EXECUTE, body(quantity="20000", order_type="LMT", limit_price="150"), content_type="application/json"
    )
    assert answer.status_code == 422
    data = answer.json()
    assert data["status"] == "REJECTED" and data["fills"] == []
    failed = {c["name"] for c in data["checks"] if not c["passed"]}
    assert failed == {"quantity", "price_deviation", "position_size"}
    assert len(data["reject_reasons"]) == 3
    event = RiskEvent.objects.get(kind=RiskEventKind.POSITION_REJECTED)
    assert event.order_id == data["id"] and event.action == "order_rejected"
    assert event.settings_snapshot["MAX_ORDER_QUANTITY"] == "10000"
    assert event.resolved_at is not None  # a refusal keeps nothing open
    assert not Execution.objects.exists()


def test_no_fresh_quote_while_the_market_is_open_is_refused(api, paper_account, aapl, clock):
    Quote.objects.update(at=clock.now - timedelta(seconds=61))
    answer = api.post(EXECUTE, body(), content_type="application/json")
    assert answer.status_code == 422
    assert [c["name"] for c in answer.json()["checks"] if not c["passed"]] == ["quote"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"order_type": "LMT"}, "limit_price"),
        ({"order_type": "STP_LMT", "limit_price": "100"}, "stop_price"),
        ({"symbol": "TOOLONG"}, "symbol"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "ten"}, "quantity"),
        ({"side": "HOLD"}, "side"),
        ({"sec_type": "OPT"}, "expiry"),
        ({"limit_price": "-1", "order_type": "LMT"}, "limit_price"),
        ({"client_order_id": ""}, "client_order_id"),
    ],
)
def test_malformed_input_is_400_naming_the_field(api, paper_account, aapl, change, field):
    answer = api.post(EXECUTE, body(**change), content_type="application/json")
    assert answer.status_code == 400
    assert field in answer.json()
    assert not Order.objects.exists()


def test_an_account_that_is_not_yours_is_403(api, paper_account, aapl):
    other = AccountFactory(account_id="DU999", users=[UserFactory()])
    for account_id in (other.account_id, "NOPE"):
        answer = api.post(EXECUTE, body(account=account_id), content_type="application/json")
        assert answer.status_code == 403
    assert not Order.objects.exists()


def test_a_live_account_is_refused_while_live_trading_is_off(api, trader, aapl, settings):
    settings.LIVE_TRADING_ENABLED = False
    AccountFactory(account_id="DU1", users=[trader])
    answer = api.post(EXECUTE, body(account="DU1"), content_type="application/json")
    assert answer.status_code == 422
    live = next(c for c in answer.json()["checks"] if c["name"] == "live_trading")
    assert not live["passed"] and "LIVE_TRADING_ENABLED=false" in live["message"]


def test_a_resting_limit_order_fills_when_a_later_quote_crosses_it(api, paper_account, aapl, clock):
    from trading.services.orders import paper_orders_on_quotes

    answer = api.post(EXECUTE, body(order_type="LMT", limit_price="99.00"), content_type="application/json")
    assert answer.status_code == 201 and answer.json()["status"] == "SUBMITTED"
    clock.set(clock.now + timedelta(minutes=5))
    Quote.objects.update(bid=Decimal("99.10"), ask=Decimal("99.20"), at=clock.now)
    assert paper_orders_on_quotes(instrument_ids=[aapl.pk]) == 0  # not crossed yet
    Quote.objects.update(bid=Decimal("98.90"), ask=Decimal("99.00"), at=clock.now)
    assert paper_orders_on_quotes(instrument_ids=[aapl.pk]) == 1
    order = Order.objects.get()
    assert order.status == OrderStatus.FILLED and order.average_fill_price == Decimal("99.00")
    assert Execution.objects.get().price == Decimal("99.00")


def test_outside_regular_hours_only_outside_rth_orders_fill(api, paper_account, aapl, clock):
    clock.set(datetime(2026, 12, 8, 23, 0, tzinfo=UTC))  # 18:00 in New York
    Quote.objects.update(at=clock.now)
    resting = api.post(EXECUTE, body(client_order_id="a"), content_type="application/json").json()
    filled = api.post(EXECUTE, body(client_order_id="b", outside_rth=True), content_type="application/json").json()
    assert resting["status"] == "SUBMITTED" and filled["status"] == "FILLED"
    assert resting["session_date"] == "2026-12-09"  # after the close: the next session's order


def test_day_orders_expire_at_the_session_close_early_closes_too(api, paper_account, clock):
    from core.brokers.contracts import InstrumentSpec
    from marketdata.services import instrument_get_or_create
    from tests.factories import QuoteFactory
    from trading.services.orders import orders_expire

    clock.set(datetime(2026, 11, 27, 15, 0, tzinfo=UTC))  # the day after Thanksgiving: closes 13:00 New York
    spy = instrument_get_or_create(spec=InstrumentSpec(symbol="SPY"))
    QuoteFactory(instrument=spy, at=clock.now, fetched_at=clock.now)
    day = api.post(EXECUTE, body(symbol="SPY", order_type="LMT", limit_price="95"), content_type="application/json")
    gtc = api.post(
        EXECUTE,
        body(symbol="SPY", client_order_id="c-2", order_type="LMT", limit_price="95", time_in_force="GTC"),
        content_type="application/json",
    )
    assert day.json()["status"] == gtc.json()["status"] == "SUBMITTED"
    clock.set(datetime(2026, 11, 27, 17, 59, tzinfo=UTC))
    assert orders_expire() == 0
    clock.set(datetime(2026, 11, 27, 18, 0, tzinfo=UTC))  # 13:00 New York: the early close
    assert orders_expire() == 1
    assert Order.objects.get(pk=day.json()["id"]).status == OrderStatus.EXPIRED
    assert Order.objects.get(pk=gtc.json()["id"]).status == OrderStatus.SUBMITTED


def test_cancel_a_working_order_then_409(api, paper_account, aapl):
    order = api.post(EXECUTE, body(order_type="LMT", limit_price="95"), content_type="application/json").json()
    url = reverse("api-order-cancel", args=[order["id"]])
    answer = api.post(url)
    assert answer.status_code == 200 and answer.json()["status"] == "CANCELLED"
    assert [e["to_status"] for e in answer.json()["events"]] == ["PENDING", "SUBMITTED", "CANCELLED"]
    assert api.post(url).status_code == 409


def test_list_and_detail_only_your_orders(api, paper_account, aapl, clock):
    mine = api.post(EXECUTE, body(), content_type="application/json").json()
    api.post(EXECUTE, body(client_order_id="r", quantity="20000"), content_type="application/json")
    listed = api.get("/api/trading/orders", {"account": "PAPER1", "status": "REJECTED"}).json()
    assert [o["client_order_id"] for o in listed["results"]] == ["r"]
    since = (clock.now + timedelta(seconds=1)).isoformat()
    assert api.get("/api/trading/orders", {"since": since}).json()["results"] == []
    detail = api.get(reverse("api-order", args=[mine["id"]])).json()
    assert detail["fills"][0]["exec_id"].startswith("PAPER-")
    stranger = UserFactory()
    api.force_login(stranger)
    assert api.get(reverse("api-order", args=[mine["id"]])).status_code == 404
    assert api.get("/api/trading/orders").json()["results"] == []


def test_risk_state_shows_the_breaker_and_the_account_figures(api, paper_account, aapl):
    state = api.get("/api/trading/risk-state", {"account": "PAPER1"}).json()
    assert state["trading_paused"] is False and state["net_liquidation"] == "100000.0000"
    assert state["mode"] == "PAPER" and state["live_trading"] == ""


def _post_later(api, clock, client_order_id: str):
    clock.set(clock.now + timedelta(seconds=1))  # each fill after the last: the ledger's appended path
    return api.post(EXECUTE, body(client_order_id=client_order_id, quantity="1"), content_type="application/json")


def test_execute_query_count_does_not_grow_with_history(api, paper_account, aapl, clock, django_assert_num_queries):
    for n in range(3):
        _post_later(api, clock, f"warm-{n}")
    with django_assert_num_queries(EXECUTE_QUERIES[connection.vendor]):
        answer = _post_later(api, clock, "pinned")
    assert answer.status_code == 201, answer.json()
    for n in range(10):
        _post_later(api, clock, f"more-{n}")
    with django_assert_num_queries(EXECUTE_QUERIES[connection.vendor]):
        answer = _post_later(api, clock, "pinned-2")
    assert answer.status_code == 201


def test_a_refused_order_query_count_does_not_grow_with_history(
    api, paper_account, aapl, clock, django_assert_num_queries
):
    for n in range(3):
        _post_later(api, clock, f"warm-{n}")
    for label in ("refused", "refused-2"):
        clock.set(clock.now + timedelta(seconds=1))
        with django_assert_num_queries(REFUSED_QUERIES[connection.vendor]):
            answer = api.post(EXECUTE, body(client_order_id=label, quantity="100000"), content_type="application/json")
        assert answer.status_code == 422
        for n in range(10):
            _post_later(api, clock, f"{label}-more-{n}")


def test_a_closing_order_query_count_does_not_grow_with_closed_round_trips(api, paper_account, aapl, clock, settings):
    settings.RISK_MAX_CONSECUTIVE_LOSSES = 0  # round trips at the spread lose: no breaker here

    def post(client_order_id: str, side: str):
        clock.set(clock.now + timedelta(seconds=1))
        answer = api.post(EXECUTE, body(client_order_id=client_order_id, side=side, quantity="1"), **JSON)
        assert answer.status_code == 201, answer.json()
        return answer

    counts = []
    for trips in (1, 8):  # closed round trips before the position the counted order closes
        for n in range(trips):
            post(f"open-{trips}-{n}", "BUY")
            post(f"close-{trips}-{n}", "SELL")
        post(f"open-{trips}", "BUY")
        with CaptureQueriesContext(connection) as captured:
            answer = post(f"close-{trips}", "SELL")
        assert answer.json()["fills"][0]["realized_pnl"] is not None  # it closed a round trip
        counts.append(len(captured))
    assert counts[0] == counts[1]


def test_a_fill_not_after_every_stored_one_takes_the_full_ledger_path(
    api, paper_account, aapl, django_assert_num_queries
):
    # The clock stands still: the new fill's time equals the stored ones', so it is not "appended" and
    # the ledger deletes and rewrites matches, round trips and settlements from that time on.
    for n in range(3):
        api.post(EXECUTE, body(client_order_id=f"warm-{n}", quantity="1"), content_type="application/json")
    with django_assert_num_queries(EXECUTE_QUERIES[connection.vendor] + FULL_PATH_EXTRA):
        answer = api.post(EXECUTE, body(client_order_id="pinned", quantity="1"), content_type="application/json")
    assert answer.status_code == 201, answer.json()
    assert SettlementTracking.objects.count() == Execution.objects.count() == 4


def test_stored_quotes_reach_the_paper_engine_through_marketdatas_hook(api, paper_account, aapl, clock):
    from marketdata.hooks import after_quotes_notify

    api.post(EXECUTE, body(order_type="LMT", limit_price="99.00"), content_type="application/json")
    Quote.objects.update(bid=Decimal("98.90"), ask=Decimal("99.00"), at=clock.now)
    after_quotes_notify(instrument_ids=[aapl.pk])  # what marketdata calls after storing quotes (tasks eager)
    assert Order.objects.get().status == OrderStatus.FILLED


@pytest.mark.parametrize(
    "change",
    [
        {"decision_price": "99.98", "strategy": "breakout", "indicators": {"rsi": "61.5"}, "stop_loss": "95"},
        {"quantity": "100000"},  # refused: every failed check named
        {"order_type": "LMT", "limit_price": "99.00", "time_in_force": "GTC"},  # resting
        {"side": "SELL", "quantity": "3.5", "risk_reward": "2.25", "reasoning": "trim"},  # a short, fractional
    ],
)
def test_the_execute_answer_is_what_the_order_serializer_says_of_the_stored_order(api, paper_account, aapl, change):
    from trading.api.serializers import OrderDetailSerializer
    from trading.selectors import order_fills

    answer = api.post(EXECUTE, body(**change), content_type="application/json")
    assert answer.status_code in (201, 422), answer.json()
    order = Order.objects.select_related("account", "instrument").get()  # read back: nothing from the request
    order.fills = list(order_fills(order=order))
    expected = OrderDetailSerializer(order).data
    assert answer.json() == json.loads(JSONRenderer().render(expected))
    # The repeat (read from the database) answers the same, but for nothing.
    again = api.post(EXECUTE, body(**change), content_type="application/json")
    assert again.status_code == 200 and again.json() == answer.json()
