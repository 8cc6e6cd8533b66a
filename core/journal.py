"""The run journal: every run against an outside system starts, skips, finishes and fails here.

A RUNNING ``SyncRun`` doubles as the single-flight lock (the database allows one per account and
kind). Why a run was skipped is recorded as ``skip_reason``, why it failed as ``fail_reason``, so
nothing reads them back from text.

Who carries a run out is recorded too, so that a run whose process died does not block its account:

- A run started here and carried out by the same process (a command, a beat task) gets its
  ``holder`` (``host:pid:token``, ``core.holders``) when it is inserted; on PostgreSQL the process
  also takes an advisory lock keyed by the run id, on its own session, before the insert commits.
- A run started for a worker (API, admin, dashboard: ``sync_run_queue``) is *queued*: its holder is
  empty until a worker claims it (``sync_run_claim``). Nobody holds its lock yet, and that is not a
  sign of death: a queued run is abandoned only after ``SYNC_RUN_QUEUE_TIMEOUT``, or at once when it
  could not be queued at all (``sync_run_enqueue_failed``).
- A starter that meets a RUNNING run asks whether its holder is alive (``core.holders``: on
  PostgreSQL whether any session holds the run's lock; on SQLite whether the pid lives on this
  host). A dead holder's run is marked FAILED (``HOLDER_GONE``) and the new run proceeds at once.
  A live holder, or one that cannot be judged, keeps its run; ``SINGLE_FLIGHT_LOCK_TTL`` remains the
  backstop after which any RUNNING run is abandoned (``TIMED_OUT``).

The lock is released when the run finishes, possibly before the finishing transaction commits. That
is safe: abandoning a run is a conditional update of a row that is not locked by another transaction
(``skip_locked``), so a checker never marks FAILED a run whose end is being written.

``sync_run_isolated`` does one account's work so that whatever escapes it (a bug, the database gone
away mid-run) fails that account's run, on a fresh connection when the old one broke, and the next
account carries on.
"""

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, models, transaction
from django.utils import timezone

from core.brokers.base import BrokerError, BrokerUnavailable
from core.holders import RUN_LOCKS, holder_new, work_hold, work_holder_alive, work_release
from core.logcontext import log_bind
from core.models import FailReason, SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus

logger = logging.getLogger(__name__)
T = TypeVar("T")

ANOTHER_RUNNING = "another sync is running"


# --- starting -----------------------------------------------------------------------------------
def sync_run_start(*, kind: SyncKind, account: models.Model | None, reason: SyncReason) -> tuple[SyncRun, bool]:
    """Insert a RUNNING run that this process carries out; return ``(run, True)``, or
    ``(skipped_run, False)`` when another one is running.

    Runs in its own transaction so other processes see the RUNNING row at once. A RUNNING row whose
    holder is gone (or older than the lock TTL) is marked FAILED and the new run proceeds.
    """
    return _start(kind=kind, account=account, reason=reason, holder=holder_new())


def sync_run_queue(*, kind: SyncKind, account: models.Model | None, reason: SyncReason) -> tuple[SyncRun, bool]:
    """Insert a RUNNING run for a worker to carry out (``sync_run_claim``): queued, with no holder yet.

    Enqueue its task after commit; when that fails, ``sync_run_enqueue_failed``.
    """
    return _start(kind=kind, account=account, reason=reason, holder="")


def _start(*, kind: SyncKind, account: models.Model | None, reason: SyncReason, holder: str) -> tuple[SyncRun, bool]:
    now = timezone.now()
    for attempt in range(2):
        run = None
        try:
            with transaction.atomic():
                run = SyncRun.objects.create(kind=kind, account=account, reason=reason, started_at=now, holder=holder)
                if holder:
                    _hold(run)
        except IntegrityError:
            if attempt == 0 and _abandon_dead_run(kind=kind, account=account, now=now):
                continue
            break
        except BaseException:
            if run is not None and run.pk is not None:
                _forget(run)
            raise
        # The run's lines (also those logged right after it finishes) name its account and id.
        log_bind(account=_account_label(account), run_id=run.pk)
        return run, True
    skipped = sync_run_skip(
        kind=kind, account=account, reason=reason, skip_reason=SkipReason.ANOTHER_RUNNING, message=ANOTHER_RUNNING
    )
    logger.info("%s sync of %s: %s, skipping", kind, account, ANOTHER_RUNNING)
    return skipped, False


def _hold(run: SyncRun) -> None:
    """This process carries the run out: take its lock (PostgreSQL) and remember it."""
    if not work_hold(namespace=RUN_LOCKS, key=run.pk, holder=run.holder):
        # A new id's lock held by someone: only possible for ids 2**31 apart. The TTL decides then.
        logger.warning("sync run %s: its advisory lock is held elsewhere; only the TTL can end it", run.pk)
    _scope_add(run)


def _forget(run: SyncRun) -> None:
    """This process is done with the run: release its lock."""
    work_release(namespace=RUN_LOCKS, key=run.pk, holder=run.holder)


def sync_run_claim(*, run: SyncRun) -> bool:
    """Become the holder of a queued run, or of one whose holder is gone (its task delivered again
    after the worker died); False when the run is over or a live holder has it."""
    if run.status != SyncStatus.RUNNING:
        return False
    if run.holder:
        if work_holder_alive(namespace=RUN_LOCKS, key=run.pk, holder=run.holder) is not False:
            return False
        logger.warning("sync run %s: holder %s is gone, taking the run over", run.pk, run.holder)
    previous, run.holder = run.holder, holder_new()
    with transaction.atomic():
        if not work_hold(namespace=RUN_LOCKS, key=run.pk, holder=run.holder):
            run.holder = previous
            return False  # another worker claims it at this very moment
        claimed = SyncRun.objects.filter(pk=run.pk, status=SyncStatus.RUNNING, holder=previous).update(
            holder=run.holder
        )
        if not claimed:
            work_release(namespace=RUN_LOCKS, key=run.pk, holder=run.holder)
            run.holder = previous
            return False
    _scope_add(run)
    log_bind(account=_account_label(run.account) if run.account_id else None, run_id=run.pk)
    return True


def sync_run_enqueue_failed(*, run: SyncRun, exc: BaseException) -> bool:
    """A queued run whose task could not be sent: FAILED now (``ENQUEUE_FAILED``) rather than blocking
    its account until the queue timeout. False when a worker had already claimed it."""
    now = timezone.now()
    fields = {
        "status": SyncStatus.FAILED,
        "fail_reason": FailReason.ENQUEUE_FAILED,
        "finished_at": now,
        "duration_ms": _ms(run.started_at, now),
        "message": f"could not be queued: {type(exc).__name__}: {exc}"[:10_000],
    }
    if not SyncRun.objects.filter(pk=run.pk, status=SyncStatus.RUNNING, holder="").update(**fields):
        return False
    for name, value in fields.items():
        setattr(run, name, value)
    return True


def sync_run_skip(
    *, kind: SyncKind, account: models.Model | None, reason: SyncReason, skip_reason: SkipReason, message: str
) -> SyncRun:
    """Record a run that did not start (disabled, broker away before it began, another running)."""
    now = timezone.now()
    return SyncRun.objects.create(
        kind=kind,
        account=account,
        reason=reason,
        status=SyncStatus.SKIPPED,
        skip_reason=skip_reason,
        started_at=now,
        finished_at=now,
        duration_ms=0,
        message=message[:10_000],
    )


def _account_label(account: models.Model | None) -> str | None:
    """The account's broker id (``account_id`` on the journal's account model), for log lines."""
    return None if account is None else str(getattr(account, "account_id", account.pk))


# --- runs nobody carries out any more ------------------------------------------------------------
def _abandon_dead_run(*, kind: SyncKind, account: models.Model | None, now: datetime) -> bool:
    """Mark FAILED the RUNNING run of ``account`` and ``kind`` when nobody carries it out any more."""
    with transaction.atomic():
        # A row locked by another transaction is being finished or claimed right now: leave it.
        running = SyncRun.objects.select_for_update(skip_locked=True).filter(
            kind=kind, account=account, status=SyncStatus.RUNNING
        )
        for run in running:
            verdict = _why_abandoned(run, now=now)
            if verdict is None:
                return False
            fail_reason, message = verdict
            SyncRun.objects.filter(pk=run.pk).update(
                status=SyncStatus.FAILED,
                fail_reason=fail_reason,
                finished_at=now,
                duration_ms=_ms(run.started_at, now),
                message=message,
            )
            logger.warning("sync run %s (%s of %s): %s", run.pk, kind, account, message)
            return True
    return False


def _why_abandoned(run: SyncRun, *, now: datetime) -> tuple[FailReason, str] | None:
    """The fail reason and message of a RUNNING run nobody carries out any more; None while it may be."""
    age = (now - run.started_at).total_seconds()
    if not run.holder:
        # Queued (or written by code that predates holders): nobody holds it yet, and that is normal.
        if age > settings.SYNC_RUN_QUEUE_TIMEOUT:
            return FailReason.QUEUE_TIMEOUT, (
                f"abandoned: queued {age:.0f}s ago and no worker took it up "
                f"(SYNC_RUN_QUEUE_TIMEOUT={settings.SYNC_RUN_QUEUE_TIMEOUT}s)"
            )
        return None
    if work_holder_alive(namespace=RUN_LOCKS, key=run.pk, holder=run.holder) is False:
        return FailReason.HOLDER_GONE, f"abandoned: holder {run.holder} is gone"
    if age > settings.SINGLE_FLIGHT_LOCK_TTL:
        return FailReason.TIMED_OUT, f"abandoned: still RUNNING after {settings.SINGLE_FLIGHT_LOCK_TTL}s (worker hung?)"
    return None


# --- finishing ----------------------------------------------------------------------------------
def sync_run_finish(
    *,
    run: SyncRun,
    status: SyncStatus,
    skip_reason: SkipReason = SkipReason.NONE,
    fail_reason: FailReason = FailReason.ERROR,
    message: str = "",
    warnings: list[str] | None = None,
    created: int = 0,
    updated: int = 0,
    closed: int = 0,
    unchanged: int = 0,
) -> SyncRun:
    """Close a RUNNING run and let go of it. The conditional update proves this process still owned it."""
    now = timezone.now()
    fields = {
        "status": status,
        "skip_reason": skip_reason if status == SyncStatus.SKIPPED else SkipReason.NONE,
        "fail_reason": fail_reason if status == SyncStatus.FAILED else FailReason.NONE,
        "finished_at": now,
        "duration_ms": _ms(run.started_at, now),
        "message": message[:10_000],
        "warnings": list(warnings or [])[:1000],
        "created": created,
        "updated": updated,
        "closed": closed,
        "unchanged": unchanged,
    }
    touched = SyncRun.objects.filter(pk=run.pk, status=SyncStatus.RUNNING).update(**fields)
    if not touched:
        logger.warning("sync run %s was no longer RUNNING at finish (abandoned by another process?)", run.pk)
    _forget(run)
    for name, value in fields.items():
        setattr(run, name, value)
    return run


def broker_skip(exc: BrokerUnavailable | BrokerError) -> tuple[SkipReason, str]:
    """The skip reason and message for a broker that could not be asked or did not answer right."""
    if isinstance(exc, BrokerUnavailable):
        return SkipReason.BROKER_UNREACHABLE, f"broker unreachable: {exc}"
    return SkipReason.REQUEST_FAILED, f"broker request failed: {exc}"


def sync_run_skip_broker(*, run: SyncRun, exc: BrokerUnavailable | BrokerError) -> SyncRun:
    """Finish a RUNNING run as SKIPPED because of the broker: nothing was changed."""
    skip_reason, message = broker_skip(exc)
    return sync_run_finish(run=run, status=SyncStatus.SKIPPED, skip_reason=skip_reason, message=message)


def sync_run_fail(*, run: SyncRun, exc: BaseException, warnings: list[str] | None = None) -> SyncRun:
    """Finish a run FAILED after its transaction rolled back.

    The in-memory copy may say SUCCESS (finishing happens inside the transaction so that SUCCESS
    lands exactly with the writes); the rollback undid that in the database, so it is RUNNING again.
    """
    run.status = SyncStatus.RUNNING
    return sync_run_finish(run=run, status=SyncStatus.FAILED, message=f"{type(exc).__name__}: {exc}", warnings=warnings)


def _ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


# --- one account's work, contained --------------------------------------------------------------
class _Scope(threading.local):
    runs: list[SyncRun] | None = None


_scope = _Scope()


def _scope_add(run: SyncRun) -> None:
    if _scope.runs is not None:
        _scope.runs.append(run)


def sync_run_isolated(
    work: Callable[[], T], *, kind: SyncKind, account: models.Model | None, reason: SyncReason
) -> T | SyncRun:
    """``work()``: one account's run. When an exception escapes it (a bug, the database gone away),
    log it, reconnect if the connection broke, mark FAILED the run it left RUNNING and return that run,
    so the caller goes on with the next account.

    When the database cannot be reached to record the failure, the run stays RUNNING there but
    nobody holds it any more (a broken connection took its PostgreSQL session and lock along; this
    process forgets it), so the next start takes it over at once. The run returned then says so.
    """
    outer, _scope.runs = _scope.runs, []
    try:
        return work()
    except Exception as exc:
        logger.exception("%s run of %s failed", kind, account)
        runs = _scope.runs
        _reconnect_if_broken()
        for run in runs:
            if run.status == SyncStatus.RUNNING:
                _fail_left(run, exc)
        if isinstance(exc, SoftTimeLimitExceeded):
            raise  # the task must stop: the account's run is FAILED, the others are not started
        return runs[-1] if runs else _failed_before_start(kind=kind, account=account, reason=reason, exc=exc)
    finally:
        if outer is not None:
            outer.extend(_scope.runs)
        _scope.runs = outer


def _reconnect_if_broken() -> None:
    """Close connections an error left unusable, so the next query opens a fresh one (not inside a
    transaction: a caller's transaction is the caller's to end). A usable one is kept: on PostgreSQL
    its session holds the advisory locks of this thread's other work (a task lock)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred and not conn.in_atomic_block and not conn.is_usable():
            conn.close()


def _fail_left(run: SyncRun, exc: BaseException) -> None:
    try:
        sync_run_fail(run=run, exc=exc)
    except DatabaseError as db_exc:
        logger.warning("sync run %s: could not be marked FAILED: %s", run.pk, db_exc)
        _forget(run)
        run.status, run.fail_reason = SyncStatus.FAILED, FailReason.ERROR
        run.message = (
            f"{type(exc).__name__}: {exc} (not recorded, the database was away: "
            "the next run of the account takes it over)"
        )


def _failed_before_start(
    *, kind: SyncKind, account: models.Model | None, reason: SyncReason, exc: BaseException
) -> SyncRun:
    """The FAILED run of an account whose work broke before (or without) a run of its own."""
    now = timezone.now()
    run = SyncRun(
        kind=kind,
        account=account,
        reason=reason,
        status=SyncStatus.FAILED,
        fail_reason=FailReason.ERROR,
        started_at=now,
        finished_at=now,
        duration_ms=0,
        message=f"{type(exc).__name__}: {exc}"[:10_000],
    )
    try:
        run.save(force_insert=True)
    except DatabaseError as db_exc:
        logger.warning("the failure of %s's %s run could not be recorded: %s", account, kind, db_exc)
        run.message += " (not recorded: the database was away)"
    return run
