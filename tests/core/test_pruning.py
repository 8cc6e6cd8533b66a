"""Retention (core/pruning.py, core/retention.py): sync runs, sessions and locks past their keeping time.

The rules at their boundaries, the batch machinery (dry run, small batches, time budget, what is
refused), the command, the task and its schedule. Portfolio's rule and the tables that are never
pruned are in tests/portfolio/test_retention.py.
"""

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.locks import single_flight
from core.models import SyncKind, SyncRun, SyncStatus, TaskLock
from core.pruning import PruneRefusedError, PruneReport, PruneStep, prune, prune_plan, prune_steps
from core.retention import old_sync_runs
from core.scheduling import periodic_tasks_ensure
from core.tasks import PRUNE_LOCK, prune_task
from marketdata.models import Instrument
from portfolio.models import Position, PositionEvent, PositionEventKind
from tests.factories import AccountFactory, InstrumentFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
_seconds = itertools.count()


def run(account, kind=SyncKind.POSITIONS, *, days: float, status=SyncStatus.SUCCESS, at=None) -> SyncRun:
    """A finished run ``days`` before NOW (a second apart from the others, so "later" is never a tie)."""
    started = at or NOW - timedelta(days=days, seconds=next(_seconds) % 50)
    return SyncRun.objects.create(
        kind=kind, account=account, status=status, started_at=started, finished_at=started, duration_ms=0
    )


def newest(account, kind=SyncKind.POSITIONS) -> SyncRun:
    """A run of today: the run before it is no longer the account's last of its kind."""
    return run(account, kind, days=0)


def remaining(*runs: SyncRun) -> list[bool]:
    ids = set(SyncRun.objects.values_list("id", flat=True))
    return [r.pk in ids for r in runs]


def sync_runs_only(**kwargs):
    (step,) = [s for s in prune_steps() if s.model is SyncRun]
    return prune(now=NOW, steps=[step], **kwargs)


@pytest.fixture
def account():
    return AccountFactory()


# --- sync runs -----------------------------------------------------------------------------------
class TestSyncRuns:
    def test_ninety_days_is_the_boundary(self, account):
        kept, gone = run(account, days=89), run(account, days=91)
        newest(account)

        report = sync_runs_only()

        assert remaining(kept, gone) == [True, False]
        assert report.deleted["core.SyncRun"] == 1

    def test_skipped_runs_follow_the_ninety_days(self, account):
        kept = run(account, days=89, status=SyncStatus.SKIPPED)
        gone = run(account, days=91, status=SyncStatus.SKIPPED)
        newest(account)

        sync_runs_only()

        assert remaining(kept, gone) == [True, False]

    def test_failed_runs_are_kept_a_year(self, account):
        kept = run(account, days=364, status=SyncStatus.FAILED)
        gone = run(account, days=366, status=SyncStatus.FAILED)
        newest(account)

        sync_runs_only()

        assert remaining(kept, gone) == [True, False]

    def test_each_accounts_last_run_of_each_kind_is_kept_whatever_its_age(self, account):
        other = AccountFactory()
        older = run(account, SyncKind.POSITIONS, days=800)
        last_positions = run(account, SyncKind.POSITIONS, days=730)
        last_executions = run(account, SyncKind.EXECUTIONS, days=730)
        last_snapshots_failed = run(account, SyncKind.SNAPSHOTS, days=730, status=SyncStatus.FAILED)
        newer_elsewhere = newest(other, SyncKind.POSITIONS)  # another account's run does not count

        sync_runs_only()

        assert remaining(older, last_positions, last_executions, last_snapshots_failed, newer_elsewhere) == [
            False,
            True,
            True,
            True,
            True,
        ]

    def test_runs_without_an_account_are_a_group_per_kind(self):
        older = run(None, SyncKind.ACCOUNTS, days=800)
        last_accounts = run(None, SyncKind.ACCOUNTS, days=730)
        last_market_data = run(None, SyncKind.MARKET_DATA, days=730)

        sync_runs_only()

        assert remaining(older, last_accounts, last_market_data) == [False, True, True]

    def test_a_failed_last_run_does_not_keep_an_older_one_and_a_newer_success_does_not_keep_it(self, account):
        old_failed = run(account, days=400, status=SyncStatus.FAILED)
        last = run(account, days=200)

        sync_runs_only()

        assert remaining(old_failed, last) == [False, True]

    def test_on_a_tie_the_higher_id_is_the_last(self, account):
        moment = NOW - timedelta(days=500)
        first, second = run(account, days=0, at=moment), run(account, days=0, at=moment)

        sync_runs_only()

        assert remaining(first, second) == [False, True]

    def test_ages_come_from_the_settings(self, account, settings):
        settings.RETENTION_SYNC_RUNS_DAYS = 30
        settings.RETENTION_FAILED_RUNS_DAYS = 60
        success = run(account, days=31)
        failed_kept, failed_gone = (
            run(account, days=59, status=SyncStatus.FAILED),
            run(account, days=61, status=SyncStatus.FAILED),
        )
        newest(account)

        sync_runs_only()

        assert remaining(success, failed_kept, failed_gone) == [False, True, False]

    def test_zero_keeps_forever(self, account, settings):
        settings.RETENTION_SYNC_RUNS_DAYS = 0
        success = run(account, days=1000)
        failed = run(account, days=1000, status=SyncStatus.FAILED)
        newest(account)

        sync_runs_only()

        assert remaining(success, failed) == [True, False]

        settings.RETENTION_FAILED_RUNS_DAYS = 0
        assert not old_sync_runs(NOW).exists()

    def test_position_events_of_a_pruned_run_stay_without_it(self, account):
        pruned, kept = run(account, days=100), run(account, days=10)
        position = Position.objects.create(
            account=account, instrument=InstrumentFactory(), quantity=10, average_price=5, opened_at=NOW
        )
        events = [
            PositionEvent.objects.create(
                position=position,
                kind=PositionEventKind.OPENED,
                quantity_before=0,
                quantity_after=10,
                at=NOW,
                sync_run=r,
            )
            for r in (pruned, kept)
        ]

        report = sync_runs_only()

        assert remaining(pruned, kept) == [False, True]
        assert [e.pk for e in PositionEvent.objects.order_by("pk")] == [e.pk for e in events]
        assert list(PositionEvent.objects.order_by("pk").values_list("sync_run_id", flat=True)) == [None, kept.pk]
        assert report.unlinked == {"portfolio.PositionEvent.sync_run": 1}


# --- sessions and locks --------------------------------------------------------------------------
def test_expired_sessions_go_and_live_ones_stay():
    now = timezone.now()
    Session.objects.create(session_key="expired", session_data="", expire_date=now - timedelta(seconds=1))
    Session.objects.create(session_key="live", session_data="", expire_date=now + timedelta(days=1))

    report = prune(now=now)

    assert list(Session.objects.values_list("session_key", flat=True)) == ["live"]
    assert report.deleted["sessions.Session"] == 1


def test_lapsed_locks_go_and_held_ones_stay():
    now = timezone.now()
    TaskLock.objects.create(name="lapsing-now", owner="x", acquired_at=now - timedelta(hours=1), expires_at=now)
    TaskLock.objects.create(name="lapsed", owner="x", acquired_at=now, expires_at=now - timedelta(seconds=1))
    TaskLock.objects.create(name="held", owner="y", acquired_at=now, expires_at=now + timedelta(minutes=5))

    report = prune(now=now)

    # expires_at == now has not lapsed yet (core.locks lets it be taken over from then on, either way).
    assert sorted(TaskLock.objects.values_list("name", flat=True)) == ["held", "lapsing-now"]
    assert report.deleted["core.TaskLock"] == 1


def test_a_lock_taken_over_between_reading_and_deleting_it_stays():
    now = timezone.now()
    TaskLock.objects.create(name="sync", owner="dead", acquired_at=now - timedelta(hours=1), expires_at=now)
    steps = [s for s in prune_steps() if s.model is TaskLock]
    taken_over = False

    def take_over_after_the_first_read(execute, sql, params, many, context):
        nonlocal taken_over
        result = execute(sql, params, many, context)
        if not taken_over and sql.startswith("SELECT") and "marketdata_tasklock" in sql:
            taken_over = True  # what lock_acquire does to a lapsed lock: delete it, take it anew
            TaskLock.objects.filter(name="sync").delete()
            TaskLock.objects.create(name="sync", owner="alive", acquired_at=now, expires_at=now + timedelta(hours=1))
        return result

    with connection.execute_wrapper(take_over_after_the_first_read):
        report = prune(now=now + timedelta(seconds=1), steps=steps)

    assert taken_over
    assert TaskLock.objects.get(name="sync").owner == "alive"
    assert report.deleted == {"core.TaskLock": 0}


# --- the machinery -------------------------------------------------------------------------------
def test_every_app_contributes_its_steps_and_each_can_be_planned():
    steps = prune_steps()

    assert [s.model._meta.label for s in steps] == [
        "core.SyncRun",
        "core.Alert",
        "core.TaskLock",
        "sessions.Session",
        "marketdata.Bar",
        "portfolio.AccountSnapshot",
        "sentiment.Tweet",
        "sentiment.RedditPost",
    ]
    for step in steps:
        prune_plan(step.model)  # refused plans raise


def test_dry_run_deletes_nothing_and_counts_what_the_real_run_deletes(account):
    for days in (100, 120, 140, 400):
        run(account, days=days)
    run(account, days=400, status=SyncStatus.FAILED)
    newest(account)
    before = SyncRun.objects.count()

    dry = sync_runs_only(dry_run=True, batch_size=2)

    assert SyncRun.objects.count() == before
    assert dry.dry_run is True
    real = sync_runs_only()
    assert dry.deleted == real.deleted == {"core.SyncRun": 5}
    assert SyncRun.objects.count() == before - 5


def test_small_batches_delete_everything_one_transaction_each(account):
    old = [run(account, days=100 + k) for k in range(5)]
    newest(account)

    with CaptureQueriesContext(connection) as queries:
        report = sync_runs_only(batch_size=2)

    assert remaining(*old) == [False] * 5
    assert report.deleted == {"core.SyncRun": 5}
    statements = [q["sql"] for q in queries.captured_queries]
    deletes = [sql for sql in statements if sql.startswith('DELETE FROM "trading_syncrun"')]
    assert len(deletes) == 3  # 2 + 2 + 1 keys
    # Each batch is its own transaction (a savepoint here, inside the test's transaction).
    assert sum(sql.startswith("SAVEPOINT") for sql in statements) == 3


def test_the_time_budget_stops_between_batches(account, monkeypatch):
    old = [run(account, days=100 + k) for k in range(4)]
    newest(account)
    clock = 0.0  # a batch takes a second
    monkeypatch.setattr("core.pruning.time.monotonic", lambda: clock)

    def tick(execute, sql, params, many, context):
        nonlocal clock
        if sql.startswith('DELETE FROM "trading_syncrun"'):
            clock += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(tick):
        report = sync_runs_only(batch_size=2, time_budget=0.5)

    assert report.complete is False
    assert report.deleted == {"core.SyncRun": 2}
    assert remaining(*old).count(False) == 2
    assert sync_runs_only().deleted == {"core.SyncRun": 2}  # the next prune goes on


def test_a_prune_with_nothing_to_delete_is_ten_queries(django_assert_num_queries):
    AccountFactory.create_batch(3)  # the last runs are read in one query whatever the number of accounts

    # One batch query per step (8: core 4, marketdata 1, portfolio 1, sentiment 2), and the last runs of
    # each kind: accounts', runs without one.
    with django_assert_num_queries(10):
        report = prune()

    assert set(report.deleted.values()) == {0}
    assert report.complete is True


def test_rows_something_protects_are_refused_before_anything_is_deleted(account):
    gone = run(account, days=100)
    newest(account)
    protected = PruneStep(name="x", model=Instrument, select=lambda now: Instrument.objects.all(), rule="x")
    InstrumentFactory()

    with pytest.raises(PruneRefusedError, match=r"\.instrument is PROTECT"):
        prune(now=NOW, steps=[*prune_steps(), protected])

    assert remaining(gone) == [True]
    assert Instrument.objects.exists()


def test_models_with_delete_signals_are_refused():
    # simple_history writes a history row on every delete: a bulk delete would skip it.
    with pytest.raises(PruneRefusedError, match="signal"):
        prune_plan(Position)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        prune(batch_size=0)


# --- command -------------------------------------------------------------------------------------
def test_command_prints_rows_per_table(account, capsys):
    run(account, days=100, at=timezone.now() - timedelta(days=100))
    newest_now = run(account, days=0, at=timezone.now())

    call_command("prune")

    out = capsys.readouterr().out
    assert "core.SyncRun" in out and "1 deleted" in out
    assert "portfolio.PositionSnapshot" in out
    assert "rows deleted" in out and "rules:" in out
    assert list(SyncRun.objects.values_list("pk", flat=True)) == [newest_now.pk]


def test_command_dry_run_and_json(account, capsys):
    old = run(account, days=100, at=timezone.now() - timedelta(days=100))
    run(account, days=0, at=timezone.now())

    call_command("prune", "--dry-run", "--json")

    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] is True and data["complete"] is True
    assert data["deleted"]["core.SyncRun"] == 1
    assert set(data["deleted"]) == {
        "core.SyncRun",
        "core.Alert",
        "core.AlertDelivery",
        "core.AlertAttempt",
        "core.TaskLock",
        "sessions.Session",
        "marketdata.Bar",
        "portfolio.AccountSnapshot",
        "portfolio.PositionSnapshot",
        "sentiment.Tweet",
        "sentiment.TweetSentiment",
        "sentiment.Mention",
        "sentiment.RedditPost",
        "sentiment.RedditSentiment",
    }
    assert data["unlinked"] == {"portfolio.PositionEvent.sync_run": 0}
    assert set(data["step_seconds"]) == {
        "sync runs",
        "alerts",
        "lapsed locks",
        "expired sessions",
        "bars",
        "hourly snapshots",
        "tweets",
        "reddit posts",
    }
    assert remaining(old) == [True]

    call_command("prune", "--dry-run")

    assert "would be deleted" in capsys.readouterr().out
    assert remaining(old) == [True]


def test_command_refuses_a_batch_size_below_one():
    with pytest.raises(CommandError, match="batch-size"):
        call_command("prune", "--batch-size", "0")


# --- task and schedule ---------------------------------------------------------------------------
def test_retention_is_a_daily_periodic_task():
    PeriodicTask.objects.filter(name="Retention").delete()
    periodic_tasks_ensure()

    task = PeriodicTask.objects.get(name="Retention")
    assert task.task == "core.prune"
    assert task.interval is None
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, crontab.day_of_month, crontab.month_of_year) == (
        "15",
        "6",
        "*",
        "*",
        "*",
    )
    assert str(crontab.timezone) == "UTC"
    assert task.expire_seconds == 3600
    assert task.enabled


def test_task_returns_the_counts(account):
    run(account, days=100, at=timezone.now() - timedelta(days=100))
    newest_now = run(account, days=0, at=timezone.now())

    result = prune_task.delay().get()

    assert result["status"] == "DONE"
    assert result["complete"] is True
    assert result["deleted"]["core.SyncRun"] == 1
    assert list(SyncRun.objects.values_list("pk", flat=True)) == [newest_now.pk]
    assert not TaskLock.objects.filter(name=PRUNE_LOCK).exists()  # released


def test_task_is_single_flight(account):
    old = run(account, days=100, at=timezone.now() - timedelta(days=100))
    newest(account)

    with single_flight(PRUNE_LOCK) as acquired:
        assert acquired
        result = prune_task.delay().get()

    assert result["status"] == "SKIPPED"
    assert remaining(old) == [True]


def test_task_stops_before_its_soft_time_limit_and_says_so(monkeypatch, settings):
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 240
    budgets = []

    def out_of_time(*, time_budget):
        budgets.append(time_budget)
        return PruneReport(dry_run=False, now=timezone.now(), complete=False)

    monkeypatch.setattr("core.tasks.prune", out_of_time)

    result = prune_task.delay().get()

    assert budgets == [210]
    assert result["status"] == "PARTIAL"
    assert result["complete"] is False
