"""What marketdata prunes: bars older than their size's keeping time (``MARKETDATA_RETENTION``).

``MARKETDATA_RETENTION`` reads ``1m=30d,5m=90d,15m=180d,1h=730d,1d=forever``: per bar size, days to
keep (``forever`` or ``0``: never pruned). A bar is pruned when it started before ``now - days``;
one that started exactly at the cutoff stays. Quotes (one row per instrument) are never pruned.
Applied by the "Market data retention" task, ``manage.py prune_market_data`` (``market_data_prune``)
and ``manage.py prune`` with everything else, in batches of keys.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.pruning import PruneReport, PruneStep, prune
from marketdata.models import Bar, BarSize


def retention_days() -> dict[str, int | None]:
    """Days to keep per bar size (None: forever), from ``MARKETDATA_RETENTION``."""
    days: dict[str, int | None] = dict.fromkeys(BarSize.values)
    for part in filter(None, (p.strip() for p in settings.MARKETDATA_RETENTION.split(","))):
        size, _, value = part.partition("=")
        size, value = size.strip(), value.strip().lower()
        if size not in days:
            raise ImproperlyConfigured(f"MARKETDATA_RETENTION: unknown bar size {size!r} in {part!r}")
        if value in {"forever", "0", "0d"}:
            days[size] = None
            continue
        try:
            days[size] = int(value.removesuffix("d"))
        except ValueError:
            raise ImproperlyConfigured(f"MARKETDATA_RETENTION: {part!r} is not SIZE=DAYSd or SIZE=forever") from None
    return days


def bar_cutoffs(now: datetime) -> dict[str, datetime]:
    """The start before which each pruned bar size's bars go."""
    return {size: now - timedelta(days=d) for size, d in retention_days().items() if d is not None}


def old_bars(now: datetime) -> QuerySet:
    cutoffs = bar_cutoffs(now)
    if not cutoffs:
        return Bar.objects.none()
    rule = Q()
    for size, cutoff in cutoffs.items():
        rule |= Q(bar_size=size, start__lt=cutoff)
    return Bar.objects.filter(rule)


MARKET_DATA_PRUNE_STEPS = [
    PruneStep(
        name="bars",
        model=Bar,
        select=old_bars,
        rule="bars older than their size's MARKETDATA_RETENTION (default 1m=30d,5m=90d,15m=180d,1h=730d,1d=forever)",
    ),
]

PRUNE_STEPS = list(MARKET_DATA_PRUNE_STEPS)


def market_data_prune(*, now: datetime | None = None, dry_run: bool = False) -> PruneReport:
    """Bars past retention, deleted in batches of keys, each batch its own transaction (``core.pruning``)."""
    return prune(now=now or timezone.now(), dry_run=dry_run, steps=MARKET_DATA_PRUNE_STEPS)
