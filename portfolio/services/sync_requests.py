"""On-demand syncs (API, admin, dashboard): queue the runs now, let a worker carry them out."""

from django.conf import settings
from django.db import transaction

from core.journal import sync_run_queue
from core.models import SyncKind, SyncReason, SyncRun
from portfolio.services.sync import positions_sync_disabled
from trading.models import Account


def positions_sync_request(*, accounts: list[Account], reason: SyncReason) -> list[SyncRun]:
    """Queue a RUNNING run per account and send its task after commit; SKIPPED when one is running.

    Answering with the run ids lets the caller follow each run to its end.
    """
    from portfolio.tasks import positions_sync_run_task  # tasks import services: import late

    runs: list[SyncRun] = []
    for account in accounts:
        if not settings.POSITION_SYNC_ENABLED:
            runs.append(positions_sync_disabled(account=account, reason=reason))
            continue
        run, started = sync_run_queue(kind=SyncKind.POSITIONS, account=account, reason=reason)
        if started:
            transaction.on_commit(lambda run_id=run.pk: positions_sync_run_task.delay(run_id))
        runs.append(run)
    return runs
