"""On-demand syncs (API, admin, dashboard): start the runs now, let a worker carry them out."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from trading.models import Account, SyncKind, SyncReason, SyncRun, SyncStatus
from trading.services.sync_runs import sync_run_start


def positions_sync_request(*, accounts: list[Account], reason: SyncReason) -> list[SyncRun]:
    """Start a RUNNING run per account and enqueue it after commit; SKIPPED when one is running.

    Answering with the run ids lets the caller follow each run to its end.
    """
    from portfolio.tasks import positions_sync_run_task  # tasks import services: import late

    runs: list[SyncRun] = []
    for account in accounts:
        if not settings.POSITION_SYNC_ENABLED:
            now = timezone.now()
            runs.append(
                SyncRun.objects.create(
                    kind=SyncKind.POSITIONS,
                    account=account,
                    reason=reason,
                    status=SyncStatus.SKIPPED,
                    started_at=now,
                    finished_at=now,
                    duration_ms=0,
                    message="position sync is disabled (POSITION_SYNC_ENABLED)",
                )
            )
            continue
        run, started = sync_run_start(kind=SyncKind.POSITIONS, account=account, reason=reason)
        if started:
            transaction.on_commit(lambda run_id=run.pk: positions_sync_run_task.delay(run_id))
        runs.append(run)
    return runs
