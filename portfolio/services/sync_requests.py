"""On-demand syncs (API, admin, dashboard): queue the runs now, let a worker carry them out."""

import logging

from django.conf import settings
from django.db import transaction

from core.journal import sync_run_enqueue_failed, sync_run_queue
from core.models import SyncKind, SyncReason, SyncRun
from portfolio.services.sync import positions_sync_disabled
from trading.models import Account

logger = logging.getLogger(__name__)


def positions_sync_request(*, accounts: list[Account], reason: SyncReason) -> list[SyncRun]:
    """Queue a RUNNING run per account and send its task after commit; SKIPPED when one is running.

    Answering with the run ids lets the caller follow each run to its end. A task that cannot be
    sent (the Celery broker is away) leaves no RUNNING run behind: the run is FAILED at once with
    ``fail_reason`` ENQUEUE_FAILED (in the database and in the runs returned).
    """
    runs: list[SyncRun] = []
    for account in accounts:
        if not settings.POSITION_SYNC_ENABLED:
            runs.append(positions_sync_disabled(account=account, reason=reason))
            continue
        run, started = sync_run_queue(kind=SyncKind.POSITIONS, account=account, reason=reason)
        if started:
            transaction.on_commit(lambda run=run: _enqueue(run))
        runs.append(run)
    return runs


def _enqueue(run: SyncRun) -> None:
    from portfolio.tasks import positions_sync_run_task  # tasks import services: import late

    try:
        # A task that waited past the queue timeout is dropped: its run is abandoned by then.
        positions_sync_run_task.apply_async((run.pk,), expires=settings.SYNC_RUN_QUEUE_TIMEOUT)
    except Exception as exc:
        # Only a run still queued is the sender's failure; otherwise the task ran (eagerly) and failed.
        if not sync_run_enqueue_failed(run=run, exc=exc):
            raise
        logger.exception("position sync run %s of %s could not be queued", run.pk, run.account)
