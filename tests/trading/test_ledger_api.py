"""The ledger endpoints: access, filters, validation, decimals as strings, constant queries."""

from datetime import date

import pytest
from django.test import Client

from core.brokers.simulated import SimulatedBroker
from tests.factories import AccountFactory, ExecutionRowFactory, UserFactory
from trading.models import AccountType
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


def fill(exec_id, side, quantity, price, time, **extra):
    return ExecutionRowFactory(
        exec_id=exec_id, side=side, quantity=quantity, price=price, time=time, commission="1.00", **extra
    )


FILLS = [
    fill("t1", "BUY", "100", "10.00", "2026-11-16T15:00:00Z", perm_id=1),
    fill("t2", "SELL", "100", "11.00", "2026-11-16T16:00:00Z", perm_id=2),
    fill("t3", "BUY", "10", "50.00", "2026-11-17T15:00:00Z", perm_id=3, symbol="MSFT", con_id=272093),
]


@pytest.fixture
def trader():
    return UserFactory()


@pytest.fixture
def account(settings, broker_state, trader):
    account = AccountFactory(account_id=ACCOUNT, users=[trader])
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = FILLS
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    return account


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_trades_list_and_filters(trader, account):
    client = client_for(trader)
    body = client.get("/api/trading/trades").json()
    assert body["count"] == 3
    newest = body["results"][0]
    assert newest["exec_id"] == "t3" and newest["symbol"] == "MSFT" and newest["price"] == "50.00000000"
    assert newest["trade_date"] == "2026-11-17" and newest["settlement_date"] == "2026-11-18"
    assert client.get("/api/trading/trades", {"symbol": "aapl"}).json()["count"] == 2
    assert client.get("/api/trading/trades", {"since": "2026-11-17"}).json()["count"] == 1
    assert client.get("/api/trading/trades", {"until": "2026-11-16"}).json()["count"] == 2
    sell = client.get("/api/trading/trades", {"symbol": "AAPL"}).json()["results"][0]
    assert sell["realized_pnl"] == "98.0000"


def test_bad_date_is_a_400_naming_the_field(trader, account):
    response = client_for(trader).get("/api/trading/trades", {"since": "yesterday"})
    assert response.status_code == 400 and "since" in response.json()


def test_other_traders_see_nothing_and_cannot_name_the_account(account):
    client = client_for(UserFactory())
    assert client.get("/api/trading/trades").json()["count"] == 0
    assert client.get("/api/trading/trades", {"account": ACCOUNT}).status_code == 400
    assert client.get("/api/trading/pdt-status", {"account": ACCOUNT}).status_code == 400


def test_anonymous_is_refused():
    assert Client().get("/api/trading/trades").status_code == 403


def test_round_trips(trader, account):
    (trip,) = client_for(trader).get("/api/trading/round-trips", {"account": ACCOUNT}).json()["results"]
    assert trip["symbol"] == "AAPL" and trip["realized_pnl"] == "98.0000" and trip["outcome"] == "WIN"
    assert trip["holding_seconds"] == 3600


def test_day_trades(trader, account):
    body = client_for(trader).get("/api/trading/day-trades", {"since": "2026-11-16", "until": "2026-11-16"}).json()
    assert body["count"] == 1
    assert body["results"][0]["opening_exec_id"] == "t1" and body["results"][0]["closing_exec_id"] == "t2"


def test_pdt_status_requires_an_account_and_answers_under_the_rule(trader, account):
    client = client_for(trader)
    assert client.get("/api/trading/pdt-status").status_code == 400
    body = client.get("/api/trading/pdt-status", {"account": ACCOUNT, "date": "2026-11-17"}).json()
    assert body["rule"] == "INTRADAY_MARGIN_2026" and body["is_pattern_day_trader"] is None
    assert body["day_trades"] == 1 and body["window_end"] == "2026-11-17"
    account.day_trade_rule = "LEGACY"
    account.save()
    body = client.get("/api/trading/pdt-status", {"account": ACCOUNT, "date": "2026-11-17"}).json()
    assert body["rule"] == "LEGACY" and body["is_pattern_day_trader"] is False
    assert client.get("/api/trading/pdt-status", {"account": ACCOUNT, "date": "not-a-date"}).status_code == 400


def test_settlements_by_status(trader, account):
    client = client_for(trader)
    rows = client.get("/api/trading/settlements").json()["results"]
    assert [r["exec_id"] for r in rows] == ["t1", "t2", "t3"]
    assert rows[0]["amount"] == "-1001.0000" and rows[1]["amount"] == "1099.0000"
    assert client.get("/api/trading/settlements", {"status": "sideways"}).status_code == 400


def test_cash_state_of_a_cash_account(settings, trader, account):
    account.account_type = AccountType.CASH
    account.save()
    from trading.services.ledger import cash_state_recompute

    cash_state_recompute(account=account, today=date(2026, 11, 20))
    body = client_for(trader).get("/api/trading/cash-state", {"account": ACCOUNT, "date": "2026-11-20"}).json()
    assert body["state_date"] == "2026-11-20"
    assert body["settled_cash"] is not None and isinstance(body["settled_cash"], str)
    assert isinstance(body["violations"], list)


def test_trades_list_queries_do_not_grow(trader, account, django_assert_max_num_queries):
    client = client_for(trader)
    with django_assert_max_num_queries(4):  # session, user, count, page (with account and instrument)
        client.get("/api/trading/trades")
    with django_assert_max_num_queries(4):
        client.get("/api/trading/day-trades")
    with django_assert_max_num_queries(4):
        client.get("/api/trading/settlements")
