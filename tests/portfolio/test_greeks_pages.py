"""Greeks on the pages: the positions page's columns, the overview's risk panel, the position's page."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from core.brokers.simulated import SimulatedBroker
from portfolio.models import Position
from portfolio.services.greeks import greeks_refresh
from portfolio.services.snapshots import snapshot_take
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory, OptionPositionRowFactory, StockPositionRowFactory, UserFactory

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
def client(trader):
    client = Client()
    client.force_login(trader)
    return client


@pytest.fixture
def synced(settings, broker_state, account):
    """Long 2 SPY calls (the domain rules' example) with the broker's Greeks, 100 SPY shares, AAPL stock."""
    option = OptionPositionRowFactory(quantity="2", con_id=712345678, avg_cost="480.00", market_price="4.80")
    option["greeks"] = GREEKS
    spy = StockPositionRowFactory(symbol="SPY", con_id=756733, quantity="100", avg_cost="590", market_price="598.00")
    aapl = StockPositionRowFactory(symbol="AAPL", con_id=265598)
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["positions"] = [option, spy, aapl]
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    positions_sync(account=account, broker=broker)
    greeks_refresh(broker=broker, now=datetime(2026, 12, 4, 21, 0, tzinfo=UTC))
    return broker


def test_positions_page_shows_the_greeks_columns_for_options(client, synced):
    html = client.get("/positions/").content.decode()
    assert "Delta (sh)" in html and "Theta/day" in html and "DTE" in html
    assert "104.00" in html  # +104 shares of delta
    assert "-$42.00" in html  # theta per day
    assert "18.3%" in html  # implied volatility
    assert "14.0" in html  # days to expiry


def test_positions_page_has_no_greeks_columns_without_options(client, settings, broker_state, account):
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["positions"] = [StockPositionRowFactory(symbol="AAPL", con_id=265598)]
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    html = client.get("/positions/").content.decode()
    assert "Delta (sh)" not in html


def test_an_option_without_greeks_is_counted_apart(client, settings, broker_state, account):
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))  # the example, no Greeks
    panel = client.get("/", {"account": ACCOUNT}).content.decode().split('data-fragment="risk"', 1)[1]
    assert "1 without Greeks" in panel.split("</section>", 1)[0]


def test_overview_shows_the_portfolio_risk_per_underlying(client, synced):
    html = client.get("/", {"account": ACCOUNT}).content.decode()
    assert 'data-fragment="risk"' in html and "Portfolio risk" in html
    panel = html.split('data-fragment="risk"', 1)[1].split("</section>", 1)[0]
    assert "SPY" in panel and "AAPL" not in panel  # only underlyings with options
    assert "204.00" in panel  # 104 from the calls + 100 shares
    assert "+$122,002.40" in panel  # 104 x 598.10 + 100 x 598.00
    assert "-$42.00" in panel


def test_overview_hides_the_risk_panel_without_options(client, settings, broker_state, account):
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["positions"] = [StockPositionRowFactory(symbol="AAPL", con_id=265598)]
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    html = client.get("/", {"account": ACCOUNT}).content.decode()
    assert 'data-fragment="risk" hidden' in html


def test_option_position_page_shows_greeks_now_at_entry_and_over_time(client, synced, account):
    snapshot = snapshot_take(account=account, broker=synced)  # after the position opened
    option = Position.objects.get(instrument__sec_type="OPT")
    html = client.get(f"/positions/{option.pk}/").content.decode()
    assert "Greeks" in html and "Broker (model Greeks)" in html
    assert "0.5200" in html and "-0.2100" in html
    assert "At entry, per share" in html
    history = html.split('id="greeks-history"', 1)[1].split("</table>", 1)[0]
    assert snapshot.taken_at.astimezone(ZoneInfo("America/New_York")).isoformat() in history  # exchange time
    assert "0.5200" in history and "18.3%" in history and "broker" in history


def test_a_stock_position_page_has_no_greeks(client, synced):
    stock = Position.objects.get(instrument__symbol="AAPL")
    assert 'id="greeks-title"' not in client.get(f"/positions/{stock.pk}/").content.decode()
