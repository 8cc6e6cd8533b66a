"""Start and finish SyncRun rows; the RUNNING row doubles as the single-flight lock."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from trading.models import Account, SyncKind, SyncReason, SyncRun, SyncStatus

logger = logging.getLogger(__name__)

ANOTHER_RUNNING = "another sync is running"


def sync_run_start(*, kind: SyncKind, account: Account | None, reason: SyncReason) -> tuple[SyncRun, bool]:
    """Insert a RUNNING run; return ``(run, True)``, or ``(skipped_run, False)`` when one is running.

    Runs in its own transaction so other processes see the RUNNING row at once. A RUNNING row older
    than the lock TTL belongs to a worker that died: it is marked FAILED and the new run proceeds.
    """
    now = timezone.now()
    for attempt in range(2):
        try:
            with transaction.atomic():
                return SyncRun.objects.create(kind=kind, account=account, reason=reason, started_at=now), True
        except IntegrityError:
            if attempt == 0 and _abandon_stale_runs(kind=kind, account=account, now=now):
                continue
            break
    skipped = SyncRun.objects.create(
        kind=kind,
        account=account,
        reason=reason,
        status=SyncStatus.SKIPPED,
        started_at=now,
        finished_at=now,
        duration_ms=0,
        message=ANOTHER_RUNNING,
    )
    logger.info("%s sync of %s: %s, skipping", kind, account, ANOTHER_RUNNING)
    return skipped, False


def _abandon_stale_runs(*, kind: SyncKind, account: Account | None, now) -> int:
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
