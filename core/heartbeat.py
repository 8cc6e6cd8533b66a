"""Beat's heartbeat: a periodic task records each tick in the cache; health checks read its age."""

from datetime import datetime
from typing import TypedDict

from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_LAST_KEY = "beat:heartbeat:last"
HEARTBEAT_COUNT_KEY = "beat:heartbeat:count"


class HeartbeatStatus(TypedDict):
    last: datetime | None
    count: int
    age_seconds: float | None


def heartbeat_record() -> datetime:
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
    return now


def heartbeat_status(*, now: datetime | None = None) -> HeartbeatStatus:
    """When beat and a worker last proved alive (``core.heartbeat``), and how many ticks so far.

    ``last`` and ``age_seconds`` are None before the first tick (or after the cache was cleared).
    """
    values = cache.get_many([HEARTBEAT_LAST_KEY, HEARTBEAT_COUNT_KEY])
    last = values.get(HEARTBEAT_LAST_KEY)
    age_seconds = None
    if last is not None:
        # The worker's clock and ours may disagree by a little; a tick is never "in the future".
        age_seconds = max(0.0, ((now or timezone.now()) - last).total_seconds())
    return {"last": last, "count": int(values.get(HEARTBEAT_COUNT_KEY) or 0), "age_seconds": age_seconds}
