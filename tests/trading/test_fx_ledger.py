"""Issue #17 (part B): the ledger's fills, round trips, tax lots and trade records in the account's base
currency, each at the rate of its own date (domain-rules.md "Currencies")."""

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from core.brokers.simulated import SimulatedBroker
from marketdata.fx import fx_rates_store
from marketdata.models import Quote
from tests.factories import AccountFactory, ExecutionRowFactory, UserFactory
from trading.selectors import tax_lots_iter, trade_records_iter
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


@pytest.fixture
def trader():
    return UserFactory()


def sap_round_trip(symbol="SAP", currency="EUR", con_id=14204, prefix="sap") -> list[dict]:
    """Bought 10 at 200 on Nov 16, sold at 210 on Nov 18, 1.00 commission each: +98 in its currency."""
    common = {"symbol": symbol, "con_id": con_id, "currency": currency, "exchange": "IBIS"}
    rows = [
        ExecutionRowFactory(
            exec_id=f"{prefix}.1", side="BUY", quantity="10", price="200", time="2026-11-16T10:00:00Z", **common
        ),
        ExecutionRowFactory(
            exec_id=f"{prefix}.2", side="SELL", quantity="10", price="210", time="2026-11-18T10:00:00Z", **common
        ),
    ]
    for row in rows:
        row["commission_currency"] = currency
    return rows


@pytest.fixture
def account(settings, broker_state, trader):
    """A USD account with a EUR round trip; EUR was 1.10 USD when it opened and 1.20 when it closed."""
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.10")}, day=date(2026, 11, 16), source="test")
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.20")}, day=date(2026, 11, 18), source="test")
    account = AccountFactory(account_id=ACCOUNT, users=[trader])
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = sap_round_trip()
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    return account


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_eur_round_trip_realizes_in_base_at_the_closing_days_rate_not_the_openings(trader, account):
    (trip,) = client_for(trader).get("/api/trading/round-trips").json()["results"]
    assert (trip["currency"], trip["realized_pnl"], trip["commissions"]) == ("EUR", "98.0000", "2.0000")
    assert trip["base_currency"] == "USD" and trip["fx_rate"] == "1.2000000000"
    assert trip["realized_pnl_base"] == "117.6000"  # 98 x 1.20; at the opening 1.10 it would be 107.80
    assert trip["commissions_base"] == "2.4000"


def test_fills_carry_their_currency_and_base_figures_at_their_trade_dates_rate(trader, account):
    buy, sell = reversed(client_for(trader).get("/api/trading/trades").json()["results"])
    assert (buy["currency"], buy["commission_currency"], buy["fx_rate"]) == ("EUR", "EUR", "1.1000000000")
    assert buy["price_base"] == "220.00000000" and buy["commission_base"] == "1.1000"
    assert buy["realized_pnl"] is None and buy["realized_pnl_base"] is None
    assert sell["fx_rate"] == "1.2000000000" and sell["realized_pnl_base"] == "117.6000"


def test_a_round_trip_in_a_currency_without_a_rate_has_no_base_figure(settings, broker_state, trader, account):
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] += sap_round_trip("VOD", "GBP", 9999, "vod")
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    trips = client_for(trader).get("/api/trading/round-trips").json()["results"]
    vod = next(t for t in trips if t["symbol"] == "VOD")
    assert vod["realized_pnl"] == "98.0000" and vod["realized_pnl_base"] is None and vod["fx_rate"] is None
    page = client_for(trader).get("/trades/", {"tab": "round-trips"}).content.decode()
    assert "no rate" in page


def test_trades_page_and_csv_show_the_currency_and_the_base_figures(trader, account):
    client = client_for(trader)
    page = client.get("/trades/").content.decode()
    assert '<td data-cell="currency">EUR</td>' in page
    assert "+€98.00" in page and "+$117.60" in page  # its own currency, and base at the closing day's rate
    page = client.get("/trades/", {"tab": "round-trips"}).content.decode()
    assert "+€98.00" in page and "+$117.60" in page
    body = b"".join(client.get("/trades/export.csv").streaming_content).decode()
    header, buy, sell = list(csv.reader(io.StringIO(body)))
    sell = dict(zip(header, sell, strict=True))
    assert (sell["currency"], sell["base_currency"], sell["fx_rate"]) == ("EUR", "USD", "1.2")
    assert sell["realized_pnl"] == "98.0000" and sell["realized_pnl_base"] == "117.6000"
    assert dict(zip(header, buy, strict=True))["commission_base"] == "1.1000"


ROUND_TRIPS_API_QUERIES = 4  # user (session cached), count, the page (account and instrument joined), the rates


@pytest.mark.parametrize("trips", [1, 6])
def test_round_trips_api_queries_do_not_grow_with_foreign_trips(
    settings, broker_state, trader, django_assert_num_queries, trips
):
    account = AccountFactory(account_id=ACCOUNT, users=[trader])
    rows = []
    for n in range(trips):
        day = 2 + n
        fx_rates_store(base="USD", rates={"EUR": Decimal("1.1")}, day=date(2026, 11, day), source="test")
        for row in sap_round_trip(prefix=f"t{n}"):
            row["time"] = f"2026-11-{day:02d}T{row['time'][11:]}"
            rows.append(row)
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = rows
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    client = client_for(trader)
    with django_assert_num_queries(ROUND_TRIPS_API_QUERIES):
        body = client.get("/api/trading/round-trips").json()
    assert body["count"] == trips and {t["realized_pnl_base"] for t in body["results"]} == {"107.8000"}


def test_tax_lots_give_proceeds_at_the_sale_dates_rate_and_cost_at_the_acquisition_dates(account):
    (lot,) = list(tax_lots_iter(year=2026))
    # In EUR: proceeds 10 x (210 - 0.10) = 2,099.00, cost 10 x (200 + 0.10) = 2,001.00.
    assert (lot["currency"], lot["proceeds"], lot["cost_basis"]) == ("EUR", "2099.00", "2001.00")
    assert lot["base_currency"] == "USD"
    assert lot["proceeds_base"] == "2518.80"  # x 1.20 on the sale date
    assert lot["cost_basis_base"] == "2201.10"  # x 1.10 on the acquisition date
    assert lot["gain_or_loss_base"] == "317.70" and lot["adjustment_base"] == "0.00"


def test_a_tax_lot_without_a_rate_leaves_its_base_columns_empty(settings, broker_state, trader, account):
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] += sap_round_trip("VOD", "GBP", 9999, "vod")
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    vod = next(lot for lot in tax_lots_iter(year=2026) if lot["symbol"] == "VOD")
    assert vod["proceeds"] == "2099.00" and vod["proceeds_base"] is None and vod["gain_or_loss_base"] is None


def test_trade_records_carry_base_figures_at_each_days_rate(account):
    (record,) = list(trade_records_iter(account_id=ACCOUNT))
    assert (record["currency"], record["base_currency"]) == ("EUR", "USD")
    assert record["net_profit_loss"] == "98" and record["net_profit_loss_base"] == "117.6"  # at the close, 1.20
    assert record["commission_base"] == "2.4"
    assert Decimal(record["total_value_base"]) == Decimal(record["total_value"]) * Decimal("1.10")  # at the open


def test_paper_trades_daily_pnl_is_in_base_and_a_missing_rate_is_named(client, paper_account, aapl, clock):
    from trading.models import PaperTrade
    from trading.services.signals import SignalInput, paper_trades_monitor, signal_create, signal_execute

    values = {"signal_id": "s-1", "symbol": "AAPL", "action": "BUY", "entry_price": Decimal("100.00")}
    values |= {"stop_loss": Decimal("98.00"), "take_profit": Decimal("104.00"), "risk_amount": Decimal("200")}
    values |= {"confidence": Decimal("0.8"), "timeframe": "intraday", "strategy": "s", "reasoning": "r"}
    signal, _ = signal_create(account=paper_account, data=SignalInput(**values, indicators=[]))
    signal_execute(signal=signal)
    aapl.currency = "EUR"  # as if it were listed in euros: its P&L is in euros
    aapl.save()
    clock.set(clock.now + timedelta(minutes=1))
    Quote.objects.update(bid=Decimal("101.00"), ask=Decimal("101.10"), last=Decimal("101.00"), at=clock.now)
    paper_trades_monitor()
    assert PaperTrade.objects.get().unrealized_pnl == Decimal("100.0000")
    client.force_login(paper_account.users.get())
    pnl = client.get("/api/trading/daily-pnl").json()
    assert pnl["unrealized_pnl"] is None and pnl["total_pnl"] is None and pnl["fx_missing"] == ["EUR"]
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.16")}, day=date(2026, 12, 8), source="test")
    pnl = client.get("/api/trading/daily-pnl").json()
    assert (pnl["currency"], pnl["unrealized_pnl"], pnl["fx_missing"]) == ("USD", "116.0000", [])
