"""Greeks in the positions API and the entry Greeks of an option round trip in the trades API."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from portfolio.services.greeks import greeks_refresh
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory, ExecutionRowFactory, OptionPositionRowFactory, UserFactory
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
GREEKS = {
    "delta": "0.52",
    "gamma": "0.031",
    "theta": "-0.21",
    "vega": "0.44",
    "iv": "0.183",
    "underlying_price": "598.10",
}


@pytest.fixture
def trader():
    return UserFactory()


@pytest.fixture
def account(trader):
    return AccountFactory(account_id=ACCOUNT, users=[trader])


@pytest.fixture
def broker(settings, broker_state):
    return SimulatedBroker(settings.BROKER_STATE_FILE)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def option_row(quantity: str, greeks=GREEKS) -> dict:
    row = OptionPositionRowFactory(quantity=quantity, con_id=712345678, avg_cost="480.00", market_price="4.80")
    if greeks:
        row["greeks"] = greeks
    return row


def option_fill(exec_id: str, side: str, at) -> dict:
    return ExecutionRowFactory(
        exec_id=exec_id,
        symbol="SPY",
        sec_type="OPT",
        con_id=712345678,
        multiplier="100",
        expiry="2026-12-18",
        strike="600",
        right="C",
        side=side,
        quantity="2",
        price="4.80",
        commission="1.30",
        time=iso(at),
    )


def set_state(broker_state, *, positions, executions):
    with broker_state.edit() as state:
        row = broker_state.account(state, ACCOUNT)
        row["positions"] = positions
        row["executions"] = executions


def test_positions_api_gives_an_options_greeks_and_the_positions_figures(trader, account, broker, broker_state):
    set_state(broker_state, positions=[option_row("2")], executions=[])
    positions_sync(account=account, broker=broker)
    greeks_refresh(broker=broker)

    (row,) = client_for(trader).get("/api/portfolio/positions").json()["results"]

    greeks = row["greeks"]
    assert greeks["source"] == "BROKER"
    assert Decimal(greeks["delta"]) == Decimal("0.52")
    assert greeks["position"]["delta_shares"] == "104.00000000"  # the domain rules' example
    assert greeks["position"]["theta"] == "-42.0000"
    assert Decimal(greeks["entry"]["delta"]) == Decimal("0.52")


def test_positions_api_gives_null_greeks_for_a_stock(trader, account, broker, broker_state):
    positions_sync(account=account, broker=broker)
    rows = client_for(trader).get("/api/portfolio/positions").json()["results"]
    stock = next(r for r in rows if r["sec_type"] == "STK")
    assert stock["greeks"] is None


def test_positions_api_queries_with_greeks(trader, account, broker, broker_state, django_assert_num_queries):
    set_state(broker_state, positions=[option_row("2")], executions=[])
    positions_sync(account=account, broker=broker)
    greeks_refresh(broker=broker)
    client = client_for(trader)
    with django_assert_num_queries(3):  # user, count, page (the Greeks joined; the session from the cache)
        client.get("/api/portfolio/positions")


def test_trades_api_gives_the_entry_greeks_of_an_option_round_trip(trader, account, broker, broker_state):
    opened = timezone.now() - timedelta(hours=3)
    sell = option_fill("o1", "SELL", opened)
    set_state(broker_state, positions=[option_row("-2")], executions=[sell])
    executions_ingest(account=account, broker=broker)
    positions_sync(account=account, broker=broker)
    greeks_refresh(broker=broker)  # the first set seen: the entry set

    buy = option_fill("o2", "BUY", timezone.now() - timedelta(hours=1))
    later = {**GREEKS, "delta": "0.70"}
    set_state(broker_state, positions=[option_row("0", later)], executions=[sell, buy])
    executions_ingest(account=account, broker=broker)
    positions_sync(account=account, broker=broker)

    (trip,) = client_for(trader).get("/api/trading/round-trips").json()["results"]
    assert trip["symbol"] == "SPY"
    assert trip["entry_greeks"]["source"] == "BROKER"
    assert Decimal(trip["entry_greeks"]["delta"]) == Decimal("0.52")
    assert Decimal(trip["entry_greeks"]["theta"]) == Decimal("-0.21")


def test_trades_api_gives_null_entry_greeks_for_a_stock_round_trip(trader, account, broker, broker_state):
    opened = timezone.now() - timedelta(hours=3)
    buy = ExecutionRowFactory(exec_id="b1", side="BUY", quantity="10", price="150", time=iso(opened))
    sell = ExecutionRowFactory(exec_id="s1", side="SELL", quantity="10", price="151", time=iso(timezone.now()))
    set_state(broker_state, positions=[], executions=[buy, sell])
    executions_ingest(account=account, broker=broker)
    (trip,) = client_for(trader).get("/api/trading/round-trips").json()["results"]
    assert trip["entry_greeks"] is None
