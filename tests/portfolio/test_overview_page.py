import pytest
from django.test import Client

from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory, UserFactory
from trading.brokers.simulated import SimulatedBroker

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_login():
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_trader_sees_own_positions_only(settings, broker_state):
    trader = UserFactory()
    mine = AccountFactory(account_id="DU1234567", users=[trader])
    AccountFactory(account_id="DU9999999")
    positions_sync(account=mine, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    client = Client()
    client.force_login(trader)
    page = client.get("/").content.decode()
    assert "DU1234567" in page and "DU9999999" not in page
    assert "AAPL" in page and "100,000.00" in page


def test_broker_down_shows_banner_and_last_known_positions(settings, broker_state):
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    settings.POSITION_SYNC_STALE_AFTER = 0
    with broker_state.edit() as state:
        state["connected"] = False
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    client = Client()
    client.force_login(trader)
    page = client.get("/").content.decode()
    assert "Broker unreachable" in page and "showing last known positions" in page
    assert "AAPL" in page


def test_overview_queries_do_not_grow_with_accounts(settings, broker_state, django_assert_max_num_queries):
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    for _ in range(5):
        AccountFactory(users=[trader])
    client = Client()
    client.force_login(trader)
    with django_assert_max_num_queries(6):  # session, user, accounts+sync, latest runs, values, positions
        client.get("/")
