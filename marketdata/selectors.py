"""Reads of instruments, bars and quotes for the apps above marketdata."""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet

from marketdata.models import Bar, Quote


def quotes_by_instrument(*, instrument_ids: Iterable[int]) -> dict[int, Quote]:
    """The stored latest quote of each instrument that has one, in one query."""
    return {q.instrument_id: q for q in Quote.objects.filter(instrument_id__in=list(instrument_ids))}


def bars_between(
    *, instrument_id: int, bar_size: str, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[Bar]:
    """Stored bars of one instrument and size in time order, ``since <= start < until``."""
    bars = Bar.objects.filter(instrument_id=instrument_id, bar_size=bar_size)
    if since is not None:
        bars = bars.filter(start__gte=since)
    if until is not None:
        bars = bars.filter(start__lt=until)
    return bars.order_by("start")
