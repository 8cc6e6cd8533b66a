"""The Compliance page: PDT status under each rule, day trades, the unsettled cash calendar, cash accounts."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from core.brokers.simulated import SimulatedBroker
from portfolio.models import AccountStatus
from portfolio.views import compliance as compliance_views
from tests.factories import AccountFactory, AccountRowFactory, CashFlowRowFactory, ExecutionRowFactory, UserFactory
from trading.models import Account, CashViolation, DayTradeRule, ViolationKind
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
CASH = "U7654321"
OTHER = "DU7777777"
TODAY = date(2026, 11, 20)  # a Friday: the PDT window is Mon 11-16 .. Fri 11-20


def fill(exec_id, side, quantity, price, time, **extra):
    return ExecutionRowFactory(
        exec_id=exec_id, side=side, quantity=quantity, price=price, time=time, commission="1.00", **extra
    )


MSFT = {"symbol": "MSFT", "con_id": 272093}
NVDA = {"symbol": "NVDA", "con_id": 4815747}
AMD = {"symbol": "AMD", "con_id": 4391}

MARGIN_FILLS = [
    fill("dt-open", "BUY", "100", "10.00", "2026-11-16T15:00:00Z", perm_id=1),  # AAPL day trade
    fill("dt-close", "SELL", "100", "11.00", "2026-11-16T16:00:00Z", perm_id=2),
    fill("m1", "BUY", "10", "50.00", "2026-11-19T15:00:00Z", perm_id=3, **MSFT),  # settles 11-20: settled
    fill("m2", "SELL", "10", "55.00", "2026-11-20T15:00:00Z", perm_id=4, **MSFT),  # settles Mon 11-23: +549
    fill("n1", "BUY", "5", "100.00", "2026-11-20T16:00:00Z", perm_id=5, **NVDA),  # settles Mon 11-23: -501
]

# A cash account: a paid-for position is sold, its unsettled proceeds buy NVDA, which is sold the same day.
CASH_FILLS = [
    fill("c-held", "BUY", "40", "100.00", "2026-11-09T15:00:00Z", perm_id=20, **AMD),
    fill("c-sell-a", "SELL", "40", "100.00", "2026-11-16T15:00:00Z", perm_id=21, **AMD),
    fill("c-buy-b", "BUY", "30", "100.00", "2026-11-16T15:30:00Z", perm_id=22, **NVDA),
    fill("c-sell-b", "SELL", "30", "101.00", "2026-11-16T16:00:00Z", perm_id=23, **NVDA),
]


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    monkeypatch.setattr(compliance_views, "exchange_today", lambda: TODAY)


@pytest.fixture
def trader():
    return UserFactory()


def ingest(settings, broker_state, accounts: dict[str, list[dict]], **rows) -> None:
    with broker_state.edit() as state:
        for account_id, fills in accounts.items():
            row = next((r for r in state["accounts"] if r["account_id"] == account_id), None)
            if row is None:
                row = AccountRowFactory(account_id=account_id, **rows.get(account_id, {}))
                state["accounts"].append(row)
            row["executions"] = fills
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    for account_id in accounts:
        executions_ingest(account=Account.objects.get(account_id=account_id), broker=broker)


@pytest.fixture
def margin(settings, broker_state, trader):
    account = AccountFactory(account_id=ACCOUNT, users=[trader])
    AccountFactory(account_id=OTHER, users=[UserFactory()])
    ingest(
        settings,
        broker_state,
        {ACCOUNT: MARGIN_FILLS, OTHER: [fill("other-dt-1", "BUY", "3", "9.00", "2026-11-17T15:00:00Z", perm_id=90)]},
    )
    return account


@pytest.fixture
def cash(settings, broker_state, trader):
    account = AccountFactory(account_id=CASH, users=[trader], cash=True)
    deposit = CashFlowRowFactory(time="2026-11-02T15:00:00Z", amount="5000.00")
    ingest(settings, broker_state, {CASH: CASH_FILLS}, **{CASH: {"account_type": "CASH", "cash_flows": [deposit]}})
    return account


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_of(client, **query) -> str:
    response = client.get("/compliance/", query)
    assert response.status_code == 200
    return response.content.decode()


# --- access -------------------------------------------------------------------------------------
def test_anonymous_is_sent_to_login():
    response = Client().get("/compliance/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_trader_sees_only_their_account_and_another_account_id_is_ignored(trader, margin):
    client = client_for(trader)
    for query in ({}, {"account": OTHER}):
        page = page_of(client, **query)
        assert "dt-open" in page and "other-dt-1" not in page and OTHER not in page


def test_staff_see_every_account(margin):
    page = page_of(client_for(UserFactory(staff=True)), account=OTHER)
    assert OTHER in page and "dt-open" not in page


# --- PDT status -----------------------------------------------------------------------------------
def test_under_the_2026_rule_pdt_is_not_applicable(trader, margin):
    page = page_of(client_for(trader))
    assert "2026 intraday margin rule" in page
    assert "Not applicable under the 2026 rule" in page
    assert "Nov 16 \u2013 Nov 20, 2026" in page
    status = client_for(trader).get("/compliance/").context["pdt"].status
    assert (status.day_trades, status.trades, status.is_pattern_day_trader) == (1, 5, None)
    assert "No limit under the 2026 rule" in page


def test_the_brokers_day_trades_remaining_is_shown_when_present(trader, margin):
    AccountStatus.objects.create(
        account=margin, day_trades_remaining=2, net_liquidation=Decimal("50000"), read_at=datetime.now(UTC)
    )
    response = client_for(trader).get("/compliance/")
    assert response.context["pdt"].status.day_trades_remaining == 2
    assert "Reported by IBKR" in response.content.decode()


def test_legacy_rule_counts_the_window_and_computes_remaining(trader, margin):
    Account.objects.filter(pk=margin.pk).update(day_trade_rule=DayTradeRule.LEGACY)
    page = page_of(client_for(trader))
    assert "Legacy PDT rule (FINRA 4210)" in page and "Pinned to the legacy rule by staff" in page
    assert "Computed from the window" in page
    status = client_for(trader).get("/compliance/").context["pdt"].status
    assert status.is_pattern_day_trader is False and status.day_trades_remaining == 2  # 3 - 1, equity unknown
    assert "(20.0%)" in page  # 1 day trade of 5 trades


def test_legacy_pattern_day_trader_below_the_minimum_equity_gets_a_warning(settings, broker_state, trader):
    account = AccountFactory(account_id=ACCOUNT, users=[trader], day_trade_rule=DayTradeRule.LEGACY)
    fills = []
    for day in range(16, 20):  # a day trade on each of Mon..Thu
        fills += [
            fill(f"o{day}", "BUY", "10", "10.00", f"2026-11-{day}T15:00:00Z", perm_id=day * 10),
            fill(f"c{day}", "SELL", "10", "10.50", f"2026-11-{day}T16:00:00Z", perm_id=day * 10 + 1),
        ]
    ingest(settings, broker_state, {ACCOUNT: fills})
    AccountStatus.objects.create(
        account=account, day_trades_remaining=0, net_liquidation=Decimal("10000"), read_at=datetime.now(UTC)
    )
    response = client_for(trader).get("/compliance/")
    page = response.content.decode()
    assert response.context["pdt"].status.is_pattern_day_trader is True
    assert ">Yes<" in page and "below the $25,000.00 minimum" in page


# --- day trades and settlements -------------------------------------------------------------------------
def test_day_trades_show_their_opening_and_closing_fills(trader, margin):
    response = client_for(trader).get("/compliance/")
    (day_trade,) = response.context["day_trades"]
    assert day_trade.opening_execution.exec_id == "dt-open" and day_trade.closing_execution.exec_id == "dt-close"
    page = response.content.decode()
    assert "dt-open" in page and "dt-close" in page and "10:00:00" in page and "11:00:00" in page


def test_pending_settlements_by_date(trader, margin):
    response = client_for(trader).get("/compliance/")
    calendar = response.context["settlements"]
    (day,) = calendar.days  # 11-20's fills; 11-19's settled on 11-20, the AAPL ones on 11-17
    assert day.settlement_date == date(2026, 11, 23)
    assert (day.net, day.incoming, day.outgoing, day.count) == (
        Decimal("48.0000"),
        Decimal("549.0000"),
        Decimal("-501.0000"),
        2,
    )
    assert [r.execution.exec_id for r in day.rows] == ["m2", "n1"]
    page = response.content.decode()
    assert "Settles Mon Nov 23, 2026" in page and "+$48.00" in page and "+$549.00" in page and "-$501.00" in page


def test_nothing_pending_is_an_empty_state(monkeypatch, trader, margin):
    monkeypatch.setattr(compliance_views, "exchange_today", lambda: date(2026, 11, 23))
    assert "Nothing pending: every fill has settled." in page_of(client_for(trader))


# --- cash accounts ------------------------------------------------------------------------------
def test_cash_account_shows_its_cash_state_and_violations(trader, cash):
    violation = CashViolation.objects.get(account=cash)
    assert violation.kind == ViolationKind.GOOD_FAITH
    response = client_for(trader).get("/compliance/", {"account": CASH})
    page = response.content.decode()
    assert response.context["cash_state"].date == TODAY
    assert "Cash account" in page and "Settled cash" in page and "Unsettled cash" in page
    assert "Good-faith violation" in page and "c-buy-b" in page and "c-sell-b" in page
    assert f"{violation.amount:,.2f}" in page
    assert "A cash account is bound by settled cash instead" not in page  # 2026 rule: not applicable at all


def test_margin_accounts_have_no_cash_section(trader, margin):
    assert "Cash account" not in page_of(client_for(trader))


# --- queries do not grow with the data --------------------------------------------------------------
COMPLIANCE_QUERIES = 10  # user (session cached), accounts; broker figures, PDT day trades, PDT trades, sessions;
# day trades count + page; settlement totals + rows
CASH_EXTRA_QUERIES = 2  # cash state, violations


@pytest.mark.parametrize("n", [5, 50])
@pytest.mark.parametrize("cash_account", [False, True])
def test_query_counts_do_not_depend_on_the_number_of_fills(
    settings, broker_state, trader, django_assert_num_queries, n, cash_account
):
    AccountFactory(account_id=ACCOUNT, users=[trader], cash=cash_account)
    start = datetime(2026, 11, 16, 15, tzinfo=UTC)
    at = [start + timedelta(days=(i // 2) % 5, minutes=i) for i in range(n)]  # a buy and a sale a day: day trades
    fills = [
        fill(f"q{i}", "BUY" if i % 2 == 0 else "SELL", "1", "10.00", f"{at[i]:%Y-%m-%dT%H:%M:%SZ}") for i in range(n)
    ]
    ingest(settings, broker_state, {ACCOUNT: fills})
    client = client_for(trader)
    client.get("/compliance/")
    with django_assert_num_queries(COMPLIANCE_QUERIES + (CASH_EXTRA_QUERIES if cash_account else 0)):
        assert client.get("/compliance/").status_code == 200
