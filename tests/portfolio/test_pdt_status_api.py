"""GET /api/trading/pdt-status: the rule's figures, and the broker's DayTradesRemaining only for today."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from portfolio.models import AccountStatus
from portfolio.selectors import account_pdt_status_get
from tests.factories import AccountFactory, ExecutionRowFactory, UserFactory
from trading.calendars import trade_date_of
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
URL = "/api/trading/pdt-status"


@pytest.fixture
def trader():
    return UserFactory()


@pytest.fixture
def account(settings, broker_state, trader):
    account = AccountFactory(account_id=ACCOUNT, users=[trader])
    fills = [
        ExecutionRowFactory(exec_id="o", side="BUY", quantity="10", price="10.00", time="2026-11-16T15:00:00Z"),
        ExecutionRowFactory(exec_id="c", side="SELL", quantity="10", price="11.00", time="2026-11-16T16:00:00Z"),
    ]
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = fills
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    AccountStatus.objects.create(
        account=account, day_trades_remaining=2, net_liquidation=Decimal("50000"), read_at=datetime.now(UTC)
    )
    return account


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_past_date_answers_from_the_fills_alone(trader, account):
    body = client_for(trader).get(URL, {"account": ACCOUNT, "date": "2026-11-17"}).json()

    assert body == {
        "account": ACCOUNT,
        "date": "2026-11-17",
        "rule": "INTRADAY_MARGIN_2026",
        "window_start": "2026-11-11",
        "window_end": "2026-11-17",
        "day_trades": 1,
        "trades": 2,
        "is_pattern_day_trader": None,
        "day_trades_remaining": None,  # the broker's figure is for today, not for 2026-11-17
    }


def test_today_carries_the_brokers_day_trades_remaining(trader, account):
    today = trade_date_of(timezone.now())

    body = client_for(trader).get(URL, {"account": ACCOUNT}).json()

    assert body["date"] == today.isoformat()
    assert body["day_trades_remaining"] == 2


def test_a_date_outside_the_exchange_calendar_is_a_400_naming_the_field(trader, account):
    response = client_for(trader).get(URL, {"account": ACCOUNT, "date": "1900-01-02"})

    assert response.status_code == 400
    assert list(response.json()) == ["date"]


def test_the_selector_defaults_to_today(account):
    today = trade_date_of(timezone.now())

    report = account_pdt_status_get(account=account)

    assert (report["account"], report["date"], report["day_trades_remaining"]) == (ACCOUNT, today, 2)
    assert account_pdt_status_get(account=account, as_of=today) == report
