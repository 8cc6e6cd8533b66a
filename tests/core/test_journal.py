"""The run journal's single-flight lock knows a dead holder from a live one (issue #16).

A RUNNING run whose process died used to block its account for SINGLE_FLIGHT_LOCK_TTL (360 s). Each
test here runs on SQLite (a holder's pid on this host) and on PostgreSQL (the advisory lock of the
holder's session); ``other_process`` (tests/holders.py) makes holders each backend can judge.
"""

from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from core.holders import RUN_LOCKS, Holder, holder_new
from core.journal import (
    ANOTHER_RUNNING,
    sync_run_claim,
    sync_run_enqueue_failed,
    sync_run_finish,
    sync_run_isolated,
    sync_run_queue,
    sync_run_start,
)
from core.models import FailReason, SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db
POSTGRESQL = connection.vendor == "postgresql"


@pytest.fixture
def account():
    return AccountFactory()


def running(account, *, holder: str = "", seconds_ago: float = 1) -> SyncRun:
    """A RUNNING run as another process left it (``holder`` "" means queued for a worker)."""
    return SyncRun.objects.create(
        kind=SyncKind.POSITIONS,
        account=account,
        holder=holder,
        started_at=timezone.now() - timedelta(seconds=seconds_ago),
    )


def start(account) -> tuple[SyncRun, bool]:
    return sync_run_start(kind=SyncKind.POSITIONS, account=account, reason=SyncReason.MANUAL)


def with_holder(run: SyncRun, holder: str) -> SyncRun:
    SyncRun.objects.filter(pk=run.pk).update(holder=holder)
    run.holder = holder
    return run


class TestHolder:
    def test_a_holder_names_this_host_and_process_and_reads_back(self):
        text = holder_new()
        holder = Holder.parse(text)
        assert holder is not None and holder.is_this_process and str(holder) == text
        assert holder_new() != text  # a token of its own for each piece of work

    @pytest.mark.parametrize("text", ["", "host", "host:notapid:tok", ":12:tok", "host:12:"])
    def test_text_that_is_not_a_holder_reads_as_none(self, text):
        assert Holder.parse(text) is None


class TestDeadHolder:
    def test_a_run_whose_holder_is_gone_is_failed_and_the_next_run_proceeds_at_once(self, account, other_process):
        left = running(account)
        with_holder(left, other_process.holder(namespace=RUN_LOCKS, key=left.pk, alive=False))

        run, started = start(account)

        assert started and run.status == SyncStatus.RUNNING
        left.refresh_from_db()
        assert (left.status, left.fail_reason) == (SyncStatus.FAILED, FailReason.HOLDER_GONE)
        assert left.message == f"abandoned: holder {left.holder} is gone"
        assert left.finished_at is not None and left.duration_ms >= 1000

    def test_a_run_whose_holder_is_alive_blocks_the_account(self, account, other_process):
        held = running(account)
        with_holder(held, other_process.holder(namespace=RUN_LOCKS, key=held.pk, alive=True))

        run, started = start(account)

        assert not started
        assert (run.status, run.skip_reason, run.message) == (
            SyncStatus.SKIPPED,
            SkipReason.ANOTHER_RUNNING,
            ANOTHER_RUNNING,
        )
        held.refresh_from_db()
        assert held.status == SyncStatus.RUNNING

    def test_the_ttl_still_ends_a_run_whose_holder_looks_alive(self, account, other_process, settings):
        """A hung holder (alive, never finishing) is abandoned after the TTL, as before."""
        held = running(account, seconds_ago=settings.SINGLE_FLIGHT_LOCK_TTL + 5)
        with_holder(held, other_process.holder(namespace=RUN_LOCKS, key=held.pk, alive=True))

        _, started = start(account)

        assert started
        held.refresh_from_db()
        assert (held.status, held.fail_reason) == (SyncStatus.FAILED, FailReason.TIMED_OUT)
        assert held.message.startswith("abandoned: still RUNNING after")

    def test_a_run_of_this_process_blocks_while_it_works_and_not_after(self, account):
        first, started = start(account)
        assert started and Holder.parse(first.holder).is_this_process

        second, started_again = start(account)
        assert not started_again and second.skip_reason == SkipReason.ANOTHER_RUNNING

        sync_run_finish(run=first, status=SyncStatus.SUCCESS)
        _, started = start(account)
        assert started
        first.refresh_from_db()
        assert first.status == SyncStatus.SUCCESS  # finished by its holder, not abandoned

    def test_a_run_left_by_an_earlier_life_of_this_pid_is_dead(self, account):
        """PID 1 of a restarted container is the same pid on the same host: the token tells them apart."""
        me = Holder.parse(holder_new())
        left = running(account, holder=str(Holder(host=me.host, pid=me.pid, token="earlierlife0")))

        _, started = start(account)

        assert started
        left.refresh_from_db()
        assert left.fail_reason == FailReason.HOLDER_GONE

    @pytest.mark.skipif(POSTGRESQL, reason="PostgreSQL judges a holder on any host by its session's lock")
    def test_on_sqlite_a_holder_on_another_host_is_left_to_the_ttl(self, account, settings):
        held = running(account, holder="another-host:4242:0123456789ab")
        assert not start(account)[1]

        SyncRun.objects.filter(pk=held.pk).update(
            started_at=timezone.now() - timedelta(seconds=settings.SINGLE_FLIGHT_LOCK_TTL + 5)
        )
        assert start(account)[1]

    @pytest.mark.skipif(not POSTGRESQL, reason="the advisory lock is PostgreSQL's")
    def test_on_postgresql_a_run_holds_its_advisory_lock_until_it_finishes(self, account):
        def lock_held(run) -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::int::oid"
                    " AND objid = %s::int::oid AND pid = pg_backend_pid()",
                    [RUN_LOCKS, run.pk],
                )
                return cursor.fetchone()[0] == 1

        run, _ = start(account)
        assert lock_held(run)
        sync_run_finish(run=run, status=SyncStatus.SUCCESS)
        assert not lock_held(run)


class TestQueuedRuns:
    """A run queued for a worker has no holder yet: that is not a sign of death."""

    def test_a_queued_run_is_not_taken_for_dead(self, account):
        queued, started = sync_run_queue(kind=SyncKind.POSITIONS, account=account, reason=SyncReason.API)
        assert started and queued.holder == ""

        run, started = start(account)

        assert not started and run.skip_reason == SkipReason.ANOTHER_RUNNING
        queued.refresh_from_db()
        assert queued.status == SyncStatus.RUNNING

    def test_a_queued_run_nobody_took_up_is_abandoned_after_the_queue_timeout(self, account, settings):
        settings.SYNC_RUN_QUEUE_TIMEOUT = 60
        queued = running(account, seconds_ago=61)

        _, started = start(account)

        assert started
        queued.refresh_from_db()
        assert (queued.status, queued.fail_reason) == (SyncStatus.FAILED, FailReason.QUEUE_TIMEOUT)
        assert queued.message.startswith("abandoned: queued 61s ago and no worker took it up")

    def test_a_worker_claims_a_queued_run(self, account):
        queued, _ = sync_run_queue(kind=SyncKind.POSITIONS, account=account, reason=SyncReason.API)

        assert sync_run_claim(run=queued)

        queued.refresh_from_db()
        assert Holder.parse(queued.holder).is_this_process
        assert not start(account)[1]  # now held, by a live holder

    def test_a_task_delivered_again_takes_over_a_run_whose_worker_died(self, account, other_process):
        left = running(account)
        dead = with_holder(left, other_process.holder(namespace=RUN_LOCKS, key=left.pk, alive=False)).holder

        assert sync_run_claim(run=left)

        left.refresh_from_db()
        assert left.status == SyncStatus.RUNNING and left.holder != dead
        assert Holder.parse(left.holder).is_this_process

    def test_a_task_delivered_twice_leaves_a_run_a_live_worker_has(self, account, other_process):
        held = running(account)
        alive = with_holder(held, other_process.holder(namespace=RUN_LOCKS, key=held.pk, alive=True)).holder

        assert not sync_run_claim(run=held)

        held.refresh_from_db()
        assert held.holder == alive

    def test_a_run_whose_task_could_not_be_sent_fails_at_once(self, account):
        queued, _ = sync_run_queue(kind=SyncKind.POSITIONS, account=account, reason=SyncReason.API)

        assert sync_run_enqueue_failed(run=queued, exc=ConnectionRefusedError("redis:6379"))

        queued.refresh_from_db()
        assert (queued.status, queued.fail_reason) == (SyncStatus.FAILED, FailReason.ENQUEUE_FAILED)
        assert queued.message == "could not be queued: ConnectionRefusedError: redis:6379"
        assert start(account)[1]

    def test_a_send_that_failed_after_a_worker_took_the_run_up_leaves_the_run_alone(self, account):
        """In eager mode the task runs inside the send: its errors are not the queue's."""
        queued, _ = sync_run_queue(kind=SyncKind.POSITIONS, account=account, reason=SyncReason.API)
        claimed = SyncRun.objects.get(pk=queued.pk)
        sync_run_claim(run=claimed)

        assert not sync_run_enqueue_failed(run=queued, exc=RuntimeError("raised by the task"))
        assert SyncRun.objects.get(pk=queued.pk).status == SyncStatus.RUNNING
        assert queued.status == SyncStatus.RUNNING

    def test_a_finished_run_is_not_claimed(self, account):
        queued, _ = sync_run_queue(kind=SyncKind.POSITIONS, account=account, reason=SyncReason.API)
        sync_run_finish(run=queued, status=SyncStatus.SUCCESS)

        assert not sync_run_claim(run=queued)


class TestIsolated:
    """Whatever escapes one account's work fails that account's run and no other."""

    def test_an_escaping_exception_fails_the_run_it_left_running(self, account):
        def work():
            start(account)
            raise RuntimeError("bug in the middle of a run")

        run = sync_run_isolated(work, kind=SyncKind.POSITIONS, account=account, reason=SyncReason.MANUAL)

        assert (run.status, run.fail_reason) == (SyncStatus.FAILED, FailReason.ERROR)
        assert run.message == "RuntimeError: bug in the middle of a run"
        run.refresh_from_db()
        assert run.status == SyncStatus.FAILED
        assert start(account)[1]  # nothing left blocking the account

    def test_an_exception_before_any_run_is_recorded_as_a_failed_run(self, account):
        def work():
            raise RuntimeError("broke before starting")

        run = sync_run_isolated(work, kind=SyncKind.POSITIONS, account=account, reason=SyncReason.MANUAL)

        assert run.pk is not None and SyncRun.objects.get(pk=run.pk).status == SyncStatus.FAILED
        assert run.message == "RuntimeError: broke before starting"

    def test_a_run_finished_before_the_exception_keeps_its_status(self, account):
        def work():
            run, _ = start(account)
            sync_run_finish(run=run, status=SyncStatus.SUCCESS)
            raise RuntimeError("after the run: e.g. sending a follow-up task")

        run = sync_run_isolated(work, kind=SyncKind.POSITIONS, account=account, reason=SyncReason.MANUAL)

        assert run.status == SyncStatus.SUCCESS
        assert SyncRun.objects.count() == 1

    def test_a_failure_that_cannot_be_recorded_leaves_a_run_the_next_start_takes_over(self, account, monkeypatch):
        """The database away while the failure is written: the run stays RUNNING there, but this
        process forgets it (and on PostgreSQL its lock), so the next run proceeds at once."""
        import core.journal

        def database_away(**kwargs):
            raise OperationalError("server closed the connection unexpectedly")

        def work():
            start(account)
            monkeypatch.setattr(core.journal, "sync_run_fail", database_away)
            raise OperationalError("terminating connection due to administrator command")

        run = sync_run_isolated(work, kind=SyncKind.POSITIONS, account=account, reason=SyncReason.MANUAL)
        monkeypatch.undo()

        assert run.status == SyncStatus.FAILED and "not recorded" in run.message
        assert SyncRun.objects.get(pk=run.pk).status == SyncStatus.RUNNING
        _, started = start(account)
        assert started
        assert SyncRun.objects.get(pk=run.pk).fail_reason == FailReason.HOLDER_GONE
