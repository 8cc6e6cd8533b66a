"""Snapshots, metrics and the portfolio summary endpoints."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from portfolio.models import AccountSnapshot, MetricsWindow, PerformanceMetrics, SnapshotKind
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory, UserFactory
from trading.calendars import trade_date_of
from trading.models import CashFlow

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


def snap(account, at: datetime, value: str, kind=SnapshotKind.HOURLY) -> AccountSnapshot:
    return AccountSnapshot.objects.create(
        account=account, taken_at=at, trade_date=trade_date_of(at), kind=kind, net_liquidation=Decimal(value)
    )


def test_snapshots_by_hour_and_by_day(trader, account):
    day1 = datetime(2026, 11, 16, 15, tzinfo=UTC)
    snap(account, day1, "100")
    snap(account, day1 + timedelta(hours=1), "101")
    snap(account, day1.replace(hour=21), "102", SnapshotKind.CLOSE)
    snap(account, day1 + timedelta(days=1), "103")
    client = client_for(trader)
    hourly = client.get("/api/portfolio/snapshots", {"account": ACCOUNT}).json()
    assert hourly["count"] == 4 and hourly["results"][0]["net_liquidation"] == "100.0000"
    daily = client.get("/api/portfolio/snapshots", {"account": ACCOUNT, "interval": "day"}).json()["results"]
    assert [(r["trade_date"], r["net_liquidation"]) for r in daily] == [
        ("2026-11-16", "102.0000"),
        ("2026-11-17", "103.0000"),
    ]
    since = client.get("/api/portfolio/snapshots", {"since": "2026-11-17T00:00:00Z"}).json()
    assert since["count"] == 1


def test_snapshot_filters_are_validated(trader, account):
    client = client_for(trader)
    assert "interval" in client.get("/api/portfolio/snapshots", {"interval": "week"}).json()
    assert "since" in client.get("/api/portfolio/snapshots", {"since": "last tuesday"}).json()


def test_snapshots_of_other_accounts_are_invisible(account):
    snap(account, datetime(2026, 11, 16, 15, tzinfo=UTC), "100")
    assert client_for(UserFactory()).get("/api/portfolio/snapshots").json()["count"] == 0


def test_metrics_latest_row_and_profit_factor_note(trader, account):
    PerformanceMetrics.objects.create(
        account=account,
        as_of=datetime(2026, 11, 16).date(),
        round_trips=3,
        win_rate=Decimal("1"),
        profit_factor=None,
        twr=Decimal("0.05"),
    )
    PerformanceMetrics.objects.create(
        account=account,
        as_of=datetime(2026, 11, 17).date(),
        round_trips=4,
        win_rate=Decimal("0.75"),
        profit_factor=None,
        twr=Decimal("0.06"),
    )
    body = client_for(trader).get("/api/portfolio/metrics").json()  # the user's only account
    assert body["as_of"] == "2026-11-17" and body["round_trips"] == 4 and body["win_rate"] == "0.7500000000"
    assert body["profit_factor"] is None and body["profit_factor_note"] == "undefined: no losing round trips"


def test_metrics_window_and_missing(trader, account):
    client = client_for(trader)
    assert client.get("/api/portfolio/metrics", {"window": "20"}).status_code == 404
    PerformanceMetrics.objects.create(
        account=account, as_of=datetime(2026, 11, 17).date(), window=MetricsWindow.LAST_20, round_trips=0
    )
    body = client.get("/api/portfolio/metrics", {"window": "20"}).json()
    assert body["window"] == "20" and body["profit_factor_note"] == "undefined: no closed round trips"
    assert client.get("/api/portfolio/metrics", {"window": "7"}).status_code == 400


def test_metrics_with_several_accounts_asks_which(trader, account):
    AccountFactory(users=[trader])
    response = client_for(trader).get("/api/portfolio/metrics")
    assert response.status_code == 400 and "account" in response.json()


def test_summary_from_the_database_with_freshness(settings, trader, account, broker_state):
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    positions_sync(account=account, broker=broker)
    yesterday = timezone.now() - timedelta(days=1)
    snap(account, yesterday, "95000.00", SnapshotKind.CLOSE)
    CashFlow.objects.create(
        account=account, flow_id="d1", kind="DEPOSIT", amount=Decimal("2000"), at=timezone.now() - timedelta(minutes=5)
    )
    client = client_for(trader)
    body = client.get("/api/trading/portfolio/summary").json()
    assert body["portfolio_value"] == "100000.0000" and body["cash_balance"] == "25000.0000"
    assert body["positions_count"] == 2 and body["source"] == "broker" and body["stale"] is False
    assert body["daily_pnl"] == "3000.0000"  # 100,000 - 95,000 - the 2,000 deposit
    # The broker's base figure is preferred; the positions' own total differs, so it is shown beside it.
    assert body["unrealized_pnl"] == "1200.0000" and body["unrealized_pnl_source"] == "broker"
    assert body["unrealized_pnl_database"] == "549.8000" and body["unrealized_pnl_differs"] is True  # 485.00 + 64.80
    assert body["currency"] == "USD" and body["fx_missing"] == []
    with broker_state.edit() as state:
        state["connected"] = False  # the summary never asks the broker
    settings.POSITION_SYNC_STALE_AFTER = 0
    body = client.get("/api/trading/portfolio/summary", {"account": ACCOUNT}).json()
    assert body["source"] == "database" and body["stale"] is True and body["portfolio_value"] == "100000.0000"


def test_summary_queries_are_constant(settings, trader, account, broker_state, django_assert_max_num_queries):
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    client = client_for(trader)
    with django_assert_max_num_queries(10):
        client.get("/api/trading/portfolio/summary")


def test_metrics_history_series(trader, account):
    for day, index in [(16, "1.01"), (17, "0.99"), (18, "1.02")]:
        PerformanceMetrics.objects.create(
            account=account, as_of=datetime(2026, 11, day).date(), twr_index=Decimal(index)
        )
    body = client_for(trader).get("/api/portfolio/metrics/history", {"since": "2026-11-17"}).json()
    assert [p["as_of"] for p in body["points"]] == ["2026-11-17", "2026-11-18"]
    assert body["points"][0]["twr_index"] == "0.9900000000"
