"""The run journal: every run against an outside system starts, skips, finishes and fails here.

A RUNNING ``SyncRun`` doubles as the single-flight lock (the database allows one per account and
kind). Why a run was skipped is recorded as ``skip_reason``, so nothing reads it back from text.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from core.brokers.base import BrokerError, BrokerUnavailable
from core.logcontext import log_bind
from core.models import SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus

logger = logging.getLogger(__name__)

ANOTHER_RUNNING = "another sync is running"


def sync_run_start(*, kind: SyncKind, account: models.Model | None, reason: SyncReason) -> tuple[SyncRun, bool]:
    """Insert a RUNNING run; return ``(run, True)``, or ``(skipped_run, False)`` when one is running.

    Runs in its own transaction so other processes see the RUNNING row at once. A RUNNING row older
    than the lock TTL belongs to a worker that died: it is marked FAILED and the new run proceeds.
    """
    now = timezone.now()
    for attempt in range(2):
        try:
            with transaction.atomic():
                run = SyncRun.objects.create(kind=kind, account=account, reason=reason, started_at=now)
            # The run's lines (also those logged right after it finishes) name its account and id.
            log_bind(account=_account_label(account), run_id=run.pk)
            return run, True
        except IntegrityError:
            if attempt == 0 and _abandon_stale_runs(kind=kind, account=account, now=now):
                continue
            break
    skipped = sync_run_skip(
        kind=kind, account=account, reason=reason, skip_reason=SkipReason.ANOTHER_RUNNING, message=ANOTHER_RUNNING
    )
    logger.info("%s sync of %s: %s, skipping", kind, account, ANOTHER_RUNNING)
    return skipped, False


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


def _abandon_stale_runs(*, kind: SyncKind, account: models.Model | None, now) -> int:
    cutoff = now - timedelta(seconds=settings.SINGLE_FLIGHT_LOCK_TTL)
    return SyncRun.objects.filter(kind=kind, account=account, status=SyncStatus.RUNNING, started_at__lt=cutoff).update(
        status=SyncStatus.FAILED,
        finished_at=now,
        message=f"abandoned: still RUNNING after {settings.SINGLE_FLIGHT_LOCK_TTL}s (worker died?)",
    )


def sync_run_finish(
    *,
    run: SyncRun,
    status: SyncStatus,
    skip_reason: SkipReason = SkipReason.NONE,
    message: str = "",
    warnings: list[str] | None = None,
    created: int = 0,
    updated: int = 0,
    closed: int = 0,
    unchanged: int = 0,
) -> SyncRun:
    """Close a RUNNING run. The conditional update proves this process still owned it."""
    now = timezone.now()
    fields = {
        "status": status,
        "skip_reason": skip_reason if status == SyncStatus.SKIPPED else SkipReason.NONE,
        "finished_at": now,
        "duration_ms": max(0, int((now - run.started_at).total_seconds() * 1000)),
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
