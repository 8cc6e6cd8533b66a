"""Celery tasks of the infrastructure layer: thin interfaces over its services."""

import logging

from celery import shared_task
from django.conf import settings

from core.backups import BACKUP_LOCK, BACKUP_TIME_LIMIT, backup_create, backups_rotate
from core.heartbeat import heartbeat_record
from core.locks import single_flight
from core.pruning import prune

logger = logging.getLogger(__name__)

PRUNE_LOCK = "core.prune"


@shared_task(name="core.heartbeat")
def heartbeat_task() -> str:
    """Proves that beat schedules and a worker runs (see ``core.heartbeat``)."""
    return heartbeat_record().isoformat()


@shared_task(name="core.backup", time_limit=BACKUP_TIME_LIMIT, soft_time_limit=BACKUP_TIME_LIMIT - 60)
def backup_task() -> dict:
    """Back up the database into ``BACKUP_DIR``, then rotate; a failed backup deletes nothing."""
    with single_flight(BACKUP_LOCK, ttl_seconds=BACKUP_TIME_LIMIT + 60) as acquired:
        if not acquired:
            logger.info("backup: another backup is running, skipping")
            return {"status": "SKIPPED", "message": "another backup is running"}
        backup = backup_create()
        deleted = backups_rotate(directory=backup.path.parent)
    logger.info("backup: wrote %s (%d bytes), rotation deleted %d", backup.path, backup.size, len(deleted))
    return {"status": "SUCCESS", "file": str(backup.path), "bytes": backup.size, "deleted": [p.name for p in deleted]}


@shared_task(name="core.prune")
def prune_task() -> dict:
    """Daily retention (``core.pruning``): the rows deleted per table.

    Stops between batches before the soft time limit; what is left goes the next day.
    """
    with single_flight(PRUNE_LOCK) as acquired:
        if not acquired:
            return {"status": "SKIPPED", "message": "another prune is running"}
        report = prune(time_budget=max(10, settings.CELERY_TASK_SOFT_TIME_LIMIT - 30))
    return {"status": "DONE" if report.complete else "PARTIAL", **report.as_dict()}


@shared_task(bind=True, name="core.deliver_alert", max_retries=None)
def alert_deliver_task(self, delivery_id: int) -> dict:
    """Deliver one alert to one channel; a transient failure is retried with backoff
    (``ALERT_DELIVERY_RETRIES`` times), every attempt recorded."""
    from core.alerts import alert_delivery_attempt

    final = self.request.retries >= settings.ALERT_DELIVERY_RETRIES
    outcome = alert_delivery_attempt(delivery_id=delivery_id, final=final)
    if outcome is None:
        raise self.retry(countdown=min(600, settings.ALERT_RETRY_BASE_SECONDS * 2**self.request.retries))
    return {"delivery": delivery_id, "status": "SENT" if outcome else "FAILED"}


@shared_task(name="core.check_alerts")
def alerts_check_task() -> dict:
    """Every minute: syncs failing N times in a row, positions stale (``core.alerts.alerts_check_runs``)."""
    from core.alerts import alerts_check_runs

    with single_flight("core.check_alerts") as acquired:
        if not acquired:
            return {"status": "SKIPPED", "message": "another alerts check is running"}
        return {"status": "SUCCESS", "raised": alerts_check_runs()}
