"""Celery tasks of the infrastructure layer: thin interfaces over its services."""

from celery import shared_task
from django.conf import settings

from core.heartbeat import heartbeat_record
from core.locks import single_flight
from core.pruning import prune

PRUNE_LOCK = "core.prune"


@shared_task(name="core.heartbeat")
def heartbeat_task() -> str:
    """Proves that beat schedules and a worker runs (see ``core.heartbeat``)."""
    return heartbeat_record().isoformat()


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
