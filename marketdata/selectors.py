"""Reads for shared market-data and operational records."""

from datetime import datetime
from typing import TypedDict

from django.core.cache import cache
from django.utils import timezone

from marketdata.tasks import HEARTBEAT_COUNT_KEY, HEARTBEAT_LAST_KEY


class HeartbeatStatus(TypedDict):
    last: datetime | None
    count: int
    age_seconds: float | None


def heartbeat_status(*, now: datetime | None = None) -> HeartbeatStatus:
    """When beat and a worker last proved alive (``marketdata.heartbeat``), and how many ticks so far.

    ``last`` and ``age_seconds`` are None before the first tick (or after the cache was cleared).
    """
    values = cache.get_many([HEARTBEAT_LAST_KEY, HEARTBEAT_COUNT_KEY])
    last = values.get(HEARTBEAT_LAST_KEY)
    age_seconds = None
    if last is not None:
        # The worker's clock and ours may disagree by a little; a tick is never "in the future".
        age_seconds = max(0.0, ((now or timezone.now()) - last).total_seconds())
    return {"last": last, "count": int(values.get(HEARTBEAT_COUNT_KEY) or 0), "age_seconds": age_seconds}
