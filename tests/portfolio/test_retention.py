"""Retention of portfolio data (portfolio/retention.py) and the tables no prune ever touches.

Hourly snapshots older than RETENTION_HOURLY_SNAPSHOTS_DAYS are thinned to one a day: the CLOSE,
or on a day without one the last snapshot with a value, so the daily returns do not change.
"""

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from core.models import SyncKind, SyncRun, SyncStatus
from core.pruning import plan_walk, prune, prune_plan, prune_steps
from marketdata.models import Instrument
from portfolio.models import (
    AccountSnapshot,
    AccountStatus,
    PerformanceMetrics,
    Position,
    PositionEvent,
    PositionSnapshot,
    SnapshotKind,
)
from portfolio.services.metrics import _daily_values, metrics_compute
from portfolio.services.snapshots import snapshot_take
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory, ExecutionRowFactory, InstrumentFactory
from trading.models import (
    Account,
    CashAccountState,
    CashFlow,
    CashViolation,
    DayTrade,
    Execution,
    Lot,
    LotMatch,
    RiskEvent,
    RiskEventKind,
    RoundTrip,
    SettlementTracking,
    TradeFrequencyTracking,
)
from trading.services.corrections import execution_correct
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
_hours = itertools.count()


def snapshot(account, *, days: float, kind=SnapshotKind.HOURLY, hour: int = 15, value="1000", positions=0, day=None):
    """A snapshot ``days`` before NOW at ``hour`` UTC, on the trade date of that moment (or ``day``)."""
    taken = (NOW - timedelta(days=days)).replace(hour=hour)
    row = AccountSnapshot.objects.create(
        account=account,
        taken_at=taken,
        kind=kind,
        trade_date=day or taken.date(),
        net_liquidation=None if value is None else Decimal(value),
    )
    for _ in range(positions):
        PositionSnapshot.objects.create(snapshot=row, instrument=InstrumentFactory(), quantity=1, average_price=1)
    return row


def remaining(*rows: AccountSnapshot) -> list[bool]:
    ids = set(AccountSnapshot.objects.values_list("id", flat=True))
    return [r.pk in ids for r in rows]


def snapshots_only(**kwargs):
    (step,) = [s for s in prune_steps() if s.model is AccountSnapshot]
    return prune(now=NOW, steps=[step], **kwargs)


@pytest.fixture
def account():
    return AccountFactory()


# --- hourly snapshots ----------------------------------------------------------------------------
class TestHourlySnapshots:
    def test_ninety_days_is_the_boundary_on_days_with_a_close(self, account):
        kept = snapshot(account, days=89, hour=15)
        snapshot(account, days=89, hour=21, kind=SnapshotKind.CLOSE)
        gone = snapshot(account, days=91, hour=15)
        snapshot(account, days=91, hour=21, kind=SnapshotKind.CLOSE)

        report = snapshots_only()

        assert remaining(kept, gone) == [True, False]
        assert report.deleted["portfolio.AccountSnapshot"] == 1

    def test_close_and_manual_snapshots_are_kept_forever(self, account):
        close = snapshot(account, days=1000, hour=21, kind=SnapshotKind.CLOSE)
        manual = snapshot(account, days=1000, hour=10, kind=SnapshotKind.MANUAL)
        hourly = snapshot(account, days=1000, hour=9)

        snapshots_only()

        assert remaining(close, manual, hourly) == [True, True, False]

    def test_their_position_snapshots_go_with_them(self, account):
        gone = snapshot(account, days=100, hour=15, positions=3)
        close = snapshot(account, days=100, hour=21, kind=SnapshotKind.CLOSE, positions=2)

        report = snapshots_only()

        assert remaining(gone, close) == [False, True]
        assert list(PositionSnapshot.objects.values_list("snapshot_id", flat=True)) == [close.pk, close.pk]
        assert report.deleted["portfolio.PositionSnapshot"] == 3

    def test_a_day_without_a_close_keeps_its_last_value(self, account):
        saturday = [snapshot(account, days=300, hour=h) for h in (9, 10, 11)]

        snapshots_only()

        assert remaining(*saturday) == [False, False, True]

    def test_a_later_snapshot_without_a_value_does_not_replace_one_with_a_value(self, account):
        valued = snapshot(account, days=300, hour=9)
        empty = snapshot(account, days=300, hour=10, value=None)

        snapshots_only()

        assert remaining(valued, empty) == [True, True]

    def test_a_close_without_a_value_does_not_replace_the_hourlies(self, account):
        earlier, last = snapshot(account, days=300, hour=9), snapshot(account, days=300, hour=10)
        snapshot(account, days=300, hour=21, kind=SnapshotKind.CLOSE, value=None)

        snapshots_only()

        assert remaining(earlier, last) == [False, True]

    def test_a_manual_snapshot_later_that_day_keeps_the_value_of_the_day(self, account):
        hourly = snapshot(account, days=300, hour=9)
        snapshot(account, days=300, hour=10, kind=SnapshotKind.MANUAL)

        snapshots_only()

        assert remaining(hourly) == [False]

    def test_the_days_are_the_accounts_own(self, account):
        other = AccountFactory()
        hourly = snapshot(account, days=300, hour=9)
        snapshot(other, days=300, hour=21, kind=SnapshotKind.CLOSE, day=hourly.trade_date)

        snapshots_only()

        assert remaining(hourly) == [True]

    def test_the_age_comes_from_the_setting_and_zero_keeps_forever(self, account, settings):
        settings.RETENTION_HOURLY_SNAPSHOTS_DAYS = 10
        hourly = snapshot(account, days=11, hour=9)
        snapshot(account, days=11, hour=21, kind=SnapshotKind.CLOSE)
        settings.RETENTION_HOURLY_SNAPSHOTS_DAYS = 0
        assert snapshots_only(dry_run=True).deleted["portfolio.AccountSnapshot"] == 0

        settings.RETENTION_HOURLY_SNAPSHOTS_DAYS = 10
        snapshots_only()

        assert remaining(hourly) == [False]

    def test_the_daily_values_behind_the_returns_do_not_change(self, account):
        for days in range(100, 130):
            for hour in (14, 16, 18, 20):
                snapshot(account, days=days, hour=hour, value=str(1000 + days * 10 + hour))
            if days % 7 not in (0, 1):  # some days have no close
                snapshot(account, days=days, hour=21, kind=SnapshotKind.CLOSE, value=str(2000 + days))
        before = _daily_values(account)
        count = AccountSnapshot.objects.count()

        report = snapshots_only(batch_size=7)

        assert report.deleted["portfolio.AccountSnapshot"] > count // 2
        assert _daily_values(account) == before


# --- what is never pruned ------------------------------------------------------------------------
NEVER_PRUNED = [
    Account,
    Account.history.model,
    Instrument,
    Execution,
    Execution.history.model,
    CashFlow,
    CashFlow.history.model,
    Lot,
    LotMatch,
    RoundTrip,
    SettlementTracking,
    DayTrade,
    TradeFrequencyTracking,
    CashAccountState,
    CashViolation,
    RiskEvent,
    Position,
    Position.history.model,
    AccountStatus,
    PerformanceMetrics,
]


def test_no_step_deletes_from_a_never_pruned_table():
    deleted_from = set()
    for step in prune_steps():
        deleted_from.add(step.model)
        deleted_from.update(d.model for d, _ in plan_walk(prune_plan(step.model)) if d.action == "delete")

    assert deleted_from.isdisjoint([*NEVER_PRUNED, PositionEvent])


def _rows(model) -> list[dict]:
    return list(model._base_manager.order_by("pk").values())


@pytest.fixture
def a_year_of_everything(settings, broker_state):
    """A cash account with a day trade, an open lot, a deposit, positions synced twice (events), hourly,
    close and manual snapshots, metrics and a risk event; sessions; all of it more than a year old by
    the time the prune below runs."""
    account = AccountFactory(account_id="DU1234567", cash=True)
    with broker_state.edit() as state:
        row = broker_state.account(state, "DU1234567")
        row["account_type"] = "CASH"
        row["executions"] = [
            ExecutionRowFactory(side="BUY", quantity="100", price="150.00", time="2026-11-16T15:00:00Z"),
            ExecutionRowFactory(side="SELL", quantity="100", price="151.00", time="2026-11-16T16:00:00Z"),
            ExecutionRowFactory(side="BUY", quantity="100", price="150.25", time="2026-11-17T15:00:00Z"),
        ]
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    assert executions_ingest(account=account, broker=broker).status == SyncStatus.SUCCESS
    sell = Execution.objects.get(side="SELL")  # a staff correction: a history row
    previous, sell.commission = sell.executed_at, Decimal("0.50")
    execution_correct(execution=sell, changed=["commission"], reason="refund", previous_executed_at=previous)
    flow = CashFlow.objects.get()  # a staff note: a history row
    flow.note = "checked"
    flow.save()
    assert positions_sync(account=account, broker=broker).status == SyncStatus.SUCCESS
    with broker_state.edit() as state:
        broker_state.account(state, "DU1234567")["positions"][0]["quantity"] = "150"
    assert positions_sync(account=account, broker=broker).status == SyncStatus.SUCCESS
    position = Position.objects.filter(account=account).first()  # a staff edit: a history row
    position.missing_since = NOW
    position.save()
    for day in (16, 17, 18):
        for hour in (15, 16):
            snapshot_take(account=account, broker=broker, at=datetime(2026, 11, day, hour, tzinfo=UTC))
        snapshot_take(
            account=account, broker=broker, at=datetime(2026, 11, day, 21, tzinfo=UTC), kind=SnapshotKind.CLOSE
        )
    snapshot_take(account=account, broker=broker, at=datetime(2026, 11, 19, 12, tzinfo=UTC), kind=SnapshotKind.MANUAL)
    metrics_compute(account=account, as_of=date(2026, 11, 18))
    RiskEvent.objects.create(
        account=account,
        kind=RiskEventKind.MAX_DRAWDOWN,
        value=Decimal("0.3"),
        threshold=Decimal("0.2"),
        as_of=date(2026, 11, 18),
        message="bench",
    )
    Session.objects.create(session_key="old", session_data="", expire_date=NOW)
    return account


def test_a_prune_touches_nothing_that_is_never_pruned(a_year_of_everything):
    for model in NEVER_PRUNED:
        assert model._base_manager.exists(), f"the fixture wrote no {model._meta.label}: the test would prove nothing"
    assert PositionEvent.objects.filter(sync_run__isnull=False).exists()
    before = {model: _rows(model) for model in NEVER_PRUNED}
    events = [{k: v for k, v in row.items() if k != "sync_run_id"} for row in _rows(PositionEvent)]
    kept_snapshots = [row for row in _rows(AccountSnapshot) if row["kind"] != SnapshotKind.HOURLY]
    kept_positions = list(PositionSnapshot.objects.exclude(snapshot__kind=SnapshotKind.HOURLY).order_by("pk").values())

    later = NOW + timedelta(days=800)
    report = prune(now=later)

    # Something was pruned: old runs (not the last of each kind), hourlies, the session.
    assert report.deleted["core.SyncRun"] > 0
    assert report.deleted["portfolio.AccountSnapshot"] == 6
    assert report.deleted["sessions.Session"] == 1
    assert report.unlinked["portfolio.PositionEvent.sync_run"] > 0
    # And nothing that is never pruned changed, not a field.
    for model in NEVER_PRUNED:
        assert _rows(model) == before[model], model._meta.label
    assert [{k: v for k, v in row.items() if k != "sync_run_id"} for row in _rows(PositionEvent)] == events
    assert [row for row in _rows(AccountSnapshot) if row["kind"] != SnapshotKind.HOURLY] == kept_snapshots
    assert list(PositionSnapshot.objects.order_by("pk").values()) == kept_positions
    assert not AccountSnapshot.objects.filter(kind=SnapshotKind.HOURLY).exists()
    assert set(SyncRun.objects.values_list("kind", flat=True)) == {
        SyncKind.EXECUTIONS,
        SyncKind.POSITIONS,
        SyncKind.SNAPSHOTS,
    }
    assert SyncRun.objects.count() == 3  # the last of each kind

    # A second prune a day later finds nothing: everything left is kept for good.
    assert set(prune(now=later + timedelta(days=1)).deleted.values()) == {0}


def test_a_prune_now_keeps_a_fresh_database_whole(a_year_of_everything):
    counts = {model: model._base_manager.count() for model in [*NEVER_PRUNED, SyncRun, AccountSnapshot]}

    report = prune(now=timezone.now())

    assert report.deleted["core.SyncRun"] == 0
    assert {model: model._base_manager.count() for model in counts} == counts
