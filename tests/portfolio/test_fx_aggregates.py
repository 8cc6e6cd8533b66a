"""Issue #17 (part B): every aggregate converts to the account's base currency before it adds.

domain-rules.md "Currencies": two currencies are never added as numbers; unrealized P&L and market value
at the current rate, realized P&L at the rate of its own date; a missing rate leaves the figure empty and
says so, never 1.
"""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from marketdata.fx import fx_rates_store
from portfolio.models import AccountStatus, MetricsWindow, PositionStatus, SnapshotSource
from portfolio.services.metrics import metrics_compute
from portfolio.services.snapshots import snapshot_take
from tests.factories import AccountFactory, ExecutionRowFactory, InstrumentFactory, PositionFactory, UserFactory
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


@pytest.fixture
def trader():
    return UserFactory()


@pytest.fixture
def account(trader):
    return AccountFactory(account_id=ACCOUNT, users=[trader])


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def eur_rate(rate: str, day: date | None = None) -> None:
    fx_rates_store(base="USD", rates={"EUR": Decimal(rate)}, day=day or timezone.localdate(), source="test")


def open_position(account, symbol: str, currency: str, unrealized: str, value: str = "10000"):
    instrument = InstrumentFactory(symbol=symbol, currency=currency, exchange="IBIS" if currency == "EUR" else "SMART")
    return PositionFactory(
        account=account,
        instrument=instrument,
        current_price=Decimal(value) / 100,
        market_value=Decimal(value),
        unrealized_pnl=Decimal(unrealized),
    )


def aapl_and_sap(account):
    """The domain rules' example: AAPL +100 USD and SAP +100 EUR."""
    open_position(account, "AAPL", "USD", "100")
    open_position(account, "SAP", "EUR", "100")


# --- the portfolio summary and the overview cards -------------------------------------------------
def test_domain_rules_example_the_summary_says_216_not_200(trader, account):
    aapl_and_sap(account)
    eur_rate("1.16")
    body = client_for(trader).get("/api/trading/portfolio/summary").json()
    assert body["currency"] == "USD"
    assert body["unrealized_pnl"] == "216.0000" and body["unrealized_pnl_source"] == "database"
    assert body["market_value"] == "21600.0000"  # 10,000 USD + 10,000 EUR x 1.16
    assert body["fx_missing"] == [] and body["unrealized_pnl_differs"] is False


def test_the_brokers_base_figure_is_preferred_and_the_database_total_shown_beside_it_when_they_differ(trader, account):
    aapl_and_sap(account)
    eur_rate("1.16")
    status = AccountStatus.objects.create(account=account, unrealized_pnl=Decimal("216.01"), read_at=timezone.now())
    client = client_for(trader)
    body = client.get("/api/trading/portfolio/summary").json()
    # A cent apart over two positions: a rounding, not a disagreement.
    assert body["unrealized_pnl"] == "216.0100" and body["unrealized_pnl_source"] == "broker"
    assert body["unrealized_pnl_database"] == "216.0000" and body["unrealized_pnl_differs"] is False
    status.unrealized_pnl = Decimal("200.00")  # what adding euros to dollars would say
    status.save()
    body = client.get("/api/trading/portfolio/summary").json()
    assert body["unrealized_pnl"] == "200.0000" and body["unrealized_pnl_differs"] is True
    page = client.get("/").content.decode()
    assert 'data-kpi="unrealized_pnl_database"' in page and "+$216.00" in page
    # The open positions table: each row's currency code, its own figure and its value in base.
    assert '<td data-cell="currency">EUR</td>' in page and "+€100.00" in page and "+$116.00" in page


def test_a_missing_rate_leaves_the_totals_empty_and_named_never_summed_at_one(trader, account):
    aapl_and_sap(account)
    open_position(account, "VOD", "GBP", "50")
    eur_rate("1.16")
    client = client_for(trader)
    body = client.get("/api/trading/portfolio/summary").json()
    assert body["unrealized_pnl"] is None and body["market_value"] is None
    assert body["fx_missing"] == ["GBP"]
    page = client.get("/").content.decode()
    assert 'data-kpi="fx_missing"' in page and "No exchange rate known for GBP" in page
    positions = client.get("/api/portfolio/positions").json()["results"]
    vod = next(p for p in positions if p["symbol"] == "VOD")
    assert vod["currency"] == "GBP" and vod["unrealized_pnl"] == "50.0000"
    assert vod["unrealized_pnl_base"] is None and vod["fx_rate"] is None
    sap = next(p for p in positions if p["symbol"] == "SAP")
    assert (sap["unrealized_pnl_base"], sap["market_value_base"], sap["fx_rate"]) == (
        "116.0000",
        "11600.0000",
        "1.1600000000",
    )


def test_realized_pnl_of_the_summary_converts_each_fill_at_its_own_days_rate(settings, broker_state, trader, account):
    eur_round_trip(settings, broker_state, account)
    body = client_for(trader).get("/api/trading/portfolio/summary").json()
    assert body["realized_pnl"] == "117.6000"  # 98 EUR at the closing day's 1.20, not 1.10 nor 1.16
    assert body["total_trades"] == 3  # and the state file's AAPL buy


# --- the positions page ------------------------------------------------------------------------------
def test_positions_page_shows_each_rows_currency_and_the_totals_in_base(trader, account):
    aapl_and_sap(account)
    eur_rate("1.16")
    page = client_for(trader).get("/positions/").content.decode()
    assert '<td data-cell="currency">EUR</td>' in page and '<td data-cell="currency">USD</td>' in page
    assert "€100.00" in page  # SAP's own figure, in euros
    assert 'data-total="unrealized_pnl">+$216.00' in page
    assert 'data-total="market_value">$21,600.00' in page


def test_closed_positions_total_converts_at_each_closing_days_rate(trader, account):
    eur_rate("1.10", date(2026, 11, 2))
    eur_rate("1.20", date(2026, 11, 9))
    for closed_on, pnl in ((date(2026, 11, 3), "10"), (date(2026, 11, 10), "10")):
        position = open_position(account, f"S{closed_on.day}", "EUR", "0")
        closed_at = timezone.make_aware(timezone.datetime.combine(closed_on, timezone.datetime.min.time())) + timedelta(
            hours=16
        )
        position.status, position.closed_at, position.realized_pnl = PositionStatus.CLOSED, closed_at, Decimal(pnl)
        position.save()
    page = client_for(trader).get("/positions/", {"status": "closed"}).content.decode()
    assert 'data-total="realized_pnl">+$23.00' in page  # 10 x 1.10 + 10 x 1.20


# session, user, the accounts (switcher), the page's rows, their count, the totals per currency, the
# rates (one load for the totals, one for the rows), the positions mode.
POSITIONS_PAGE_QUERIES = 8  # the session from the cache (cached_db)


@pytest.mark.parametrize("n", [1, 12])
def test_positions_page_queries_do_not_grow_with_foreign_positions(trader, account, django_assert_num_queries, n):
    eur_rate("1.16")
    for i in range(n):
        open_position(account, f"EU{i}", "EUR", "1")
    client = client_for(trader)
    client.get("/positions/")  # remembers the account in the session
    with django_assert_num_queries(POSITIONS_PAGE_QUERIES):
        assert client.get("/positions/").status_code == 200


# session, user, the account, its status, positions per currency, fills per currency and foreign day,
# the last sync, the metrics, the rates (one load, whatever the number of days), the previous close.
SUMMARY_QUERIES = 9  # the session from the cache (cached_db)


@pytest.mark.parametrize("days", [1, 8])
def test_summary_queries_do_not_grow_with_foreign_fills_over_more_days(
    settings, broker_state, trader, account, django_assert_num_queries, days
):
    aapl_and_sap(account)
    AccountStatus.objects.create(account=account, net_liquidation=Decimal("50000"), read_at=timezone.now())
    rows = []
    for day in range(days):
        at = f"2026-11-{2 + day:02d}T10:00:00Z"
        eur_rate("1.1", date(2026, 11, 2 + day))
        common = {"symbol": "SAP", "con_id": 14204, "currency": "EUR", "exchange": "IBIS", "quantity": "1", "time": at}
        rows += [
            ExecutionRowFactory(exec_id=f"b{day}", side="BUY", price="200", **common),
            ExecutionRowFactory(exec_id=f"s{day}", side="SELL", price="201", **common),
        ]
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = rows
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    client = client_for(trader)
    with django_assert_num_queries(SUMMARY_QUERIES):
        body = client.get("/api/trading/portfolio/summary").json()
    assert body["realized_pnl"] == f"{Decimal('-1.1') * days:.4f}"  # each day: 1 - 2 commissions = -1 EUR


# --- round trips and metrics -----------------------------------------------------------------------
def eur_round_trip(settings, broker_state, account, *, symbol="SAP", currency="EUR", con_id=14204):
    """Bought 10 at 200 EUR on Nov 16 (EUR 1.10), sold at 210 on Nov 18 (EUR 1.20): +98 EUR net."""
    eur_rate("1.10", date(2026, 11, 16))
    eur_rate("1.20", date(2026, 11, 18))
    common = {"symbol": symbol, "con_id": con_id, "currency": currency, "exchange": "IBIS"}
    rows = [
        ExecutionRowFactory(
            exec_id=f"{symbol}.1", side="BUY", quantity="10", price="200", time="2026-11-16T10:00:00Z", **common
        ),
        ExecutionRowFactory(
            exec_id=f"{symbol}.2", side="SELL", quantity="10", price="210", time="2026-11-18T10:00:00Z", **common
        ),
    ]
    for row in rows:
        row["commission_currency"] = currency
    with broker_state.edit() as state:
        broker_state.account(state, account.account_id)["executions"].extend(rows)
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))


def test_metrics_are_in_base_and_a_round_trip_without_a_rate_is_left_out_and_counted(settings, broker_state, account):
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = []
    eur_round_trip(settings, broker_state, account)
    eur_round_trip(settings, broker_state, account, symbol="VOD", currency="GBP", con_id=9999)  # no GBP rate
    rows = {row.window: row for row in metrics_compute(account=account, as_of=date(2026, 11, 20))}
    for window in (MetricsWindow.ALL, MetricsWindow.LAST_20):
        row = rows[window]
        assert row.round_trips == 1 and row.round_trips_fx_missing == 1
        assert row.gross_profit == Decimal("117.6000") and row.expectancy == Decimal("117.6000")


def test_performance_page_says_how_many_round_trips_were_left_out(settings, broker_state, trader, account):
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = []
    eur_round_trip(settings, broker_state, account, symbol="VOD", currency="GBP", con_id=9999)  # no GBP rate
    metrics_compute(account=account, as_of=date(2026, 11, 20))
    page = client_for(trader).get("/performance/").content.decode()
    assert 'data-metrics="fx_missing"' in page and "1 round trip (all time), 1 of the last 20" in page


def test_metrics_of_an_account_in_its_base_currency_alone_count_nothing_missing(settings, broker_state, account):
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    for row in metrics_compute(account=account, as_of=date(2026, 11, 20)):
        assert row.round_trips_fx_missing == 0


# --- COMPUTED snapshots ------------------------------------------------------------------------------
@pytest.fixture
def broker_down(settings, broker_state):
    with broker_state.edit() as state:
        state["connected"] = False
    return SimulatedBroker(settings.BROKER_STATE_FILE)


def test_a_computed_snapshot_values_a_eur_position_at_the_current_rate(account, broker_down):
    AccountStatus.objects.create(account=account, total_cash=Decimal("1000"), read_at=timezone.now())
    aapl_and_sap(account)
    eur_rate("1.10", timezone.localdate() - timedelta(days=3))
    eur_rate("1.16")  # the current rate
    snapshot = snapshot_take(account=account, broker=broker_down)
    assert snapshot.source == SnapshotSource.COMPUTED
    assert snapshot.positions_value == Decimal("21600.0000")  # 10,000 USD + 10,000 EUR x 1.16
    assert snapshot.net_liquidation == Decimal("22600.0000")
    assert snapshot.unrealized_pnl == Decimal("216.0000")
    sap = snapshot.positions.get(instrument__symbol="SAP")
    assert sap.market_value == Decimal("10000.0000")  # the position's row keeps its own currency


def test_a_computed_snapshot_without_a_rate_stores_no_value_rather_than_a_wrong_one(account, broker_down, caplog):
    AccountStatus.objects.create(account=account, total_cash=Decimal("1000"), read_at=timezone.now())
    aapl_and_sap(account)
    snapshot = snapshot_take(account=account, broker=broker_down)
    snapshot.refresh_from_db()
    assert snapshot.positions_value is None and snapshot.net_liquidation is None and snapshot.unrealized_pnl is None
    assert snapshot.positions_count == 2 and snapshot.total_cash == Decimal("1000.0000")
    assert "no EUR rate: value unknown" in snapshot.note
    assert "no exchange rate to USD known for EUR" in caplog.text


def test_a_broker_snapshot_adds_its_positions_value_in_base(settings, broker_state, account):
    eur_rate("1.16")
    with broker_state.edit() as state:
        row = broker_state.account(state, ACCOUNT)
        row["positions"] = [
            {"symbol": "AAPL", "sec_type": "STK", "con_id": 265598, "currency": "USD", "exchange": "SMART",
             "multiplier": "1", "quantity": "10", "avg_cost": "100", "market_price": "100"},
            {"symbol": "SAP", "sec_type": "STK", "con_id": 14204, "currency": "EUR", "exchange": "IBIS",
             "multiplier": "1", "quantity": "10", "avg_cost": "100", "market_price": "100"},
        ]  # fmt: skip
    snapshot = snapshot_take(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    assert snapshot.source == SnapshotSource.BROKER
    assert snapshot.positions_value == Decimal("2160.0000")  # 1,000 USD + 1,000 EUR x 1.16, not 2,000
    assert snapshot.net_liquidation == Decimal("100000.0000")  # the broker's own base figure, as it said
