"""Celery tasks for market data: thin interfaces over services."""

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_LAST_KEY = "beat:heartbeat:last"
HEARTBEAT_COUNT_KEY = "beat:heartbeat:count"


@shared_task(name="marketdata.heartbeat")
def heartbeat_task() -> str:
    """Record that beat sent a tick and a worker ran it: the tick's time and a running count.

    No single-flight lock: two overlapping ticks are harmless and the count is an atomic INCR.
    """
    now = timezone.now()
    cache.set(HEARTBEAT_LAST_KEY, now, timeout=None)
    # add() only writes when the key is missing, so concurrent first ticks cannot reset the count.
    cache.add(HEARTBEAT_COUNT_KEY, 0, timeout=None)
    try:
        cache.incr(HEARTBEAT_COUNT_KEY)
    except ValueError:
        # Evicted between add() and incr() (Redis under maxmemory): start counting again.
        cache.set(HEARTBEAT_COUNT_KEY, 1, timeout=None)
    return now.isoformat()
