"""Celery tasks of the infrastructure layer: thin interfaces over its services."""

from celery import shared_task

from core.heartbeat import heartbeat_record


@shared_task(name="core.heartbeat")
def heartbeat_task() -> str:
    """Proves that beat schedules and a worker runs (see ``core.heartbeat``)."""
    return heartbeat_record().isoformat()
