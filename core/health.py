"""What an operator asks first: is the database up, are beat and a worker alive, is a run stuck,
did runs fail lately, is work piling up in the queue. Read by ``/healthz`` and the sync-health page."""

import logging
from datetime import datetime, timedelta
from typing import TypedDict

from celery import current_app
from django.db.models import QuerySet
from django.utils import timezone

from core.models import SyncRun, SyncStatus

logger = logging.getLogger(__name__)


class RunHealth(TypedDict):
    oldest_running: dict | None
    failed_last_hour: int


def run_health(*, runs: QuerySet | None = None, now: datetime | None = None) -> RunHealth:
    """The oldest RUNNING run (a stuck one shows here first) and the runs FAILED in the last hour, over
    ``runs`` (default: every run). Two queries."""
    now = now or timezone.now()
    runs = SyncRun.objects.all() if runs is None else runs
    oldest = (
        runs.filter(status=SyncStatus.RUNNING)
        .order_by("started_at", "id")
        .values("id", "kind", "account__account_id", "started_at")
        .first()
    )
    failed = runs.filter(status=SyncStatus.FAILED, started_at__gte=now - timedelta(hours=1)).count()
    return {
        "oldest_running": None
        if oldest is None
        else {
            "id": oldest["id"],
            "kind": oldest["kind"],
            "account": oldest["account__account_id"],
            "started_at": oldest["started_at"],
            "age_seconds": round(max(0.0, (now - oldest["started_at"]).total_seconds()), 1),
        },
        "failed_last_hour": failed,
    }


def queue_depth(*, queue: str | None = None) -> int | None:
    """Messages waiting in the Celery queue (Redis or the filesystem transport); None when the broker
    cannot be asked (reported, never raised: a health check must answer)."""
    name = queue or current_app.conf.task_default_queue
    try:
        with current_app.connection_for_read() as connection:
            # One attempt: a health check answers at once; the broker being away is the answer.
            connection.ensure_connection(max_retries=0, timeout=2)
            channel = connection.default_channel
            try:
                return channel.queue_declare(queue=name, passive=True).message_count
            except Exception as exc:
                # Redis drops an empty list's key: a queue nobody has sent to yet "does not exist".
                if "NOT_FOUND" in str(exc) or "no queue" in str(exc).lower():
                    return 0
                raise
    except Exception as exc:  # the point of a health check is to report any failure
        logger.warning("queue depth of %s unknown: %s: %s", name, type(exc).__name__, exc)
        return None
