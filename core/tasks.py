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
