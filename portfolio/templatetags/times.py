"""Dashboard formats that ``money`` (money, P&L, prices, quantities) does not cover: how long ago,
clock times in the exchange's zone, and run durations.

These are the only place those texts are written: the overview's live updates are the same templates
rendered again on the server (portfolio/views/overview.py, ``overview_fragments``), never JavaScript.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from django import template
from django.conf import settings
from django.utils import timezone

register = template.Library()

EMPTY = "\u2013"  # an en dash, as the money filters write an unknown value


def _round(number: float) -> int:
    """Halves go up (Python's round would take 2.5 minutes to 2)."""
    return int(number + 0.5) if number >= 0 else -int(-number + 0.5)


@register.filter
def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3 minutes ago``, ``2 hours ago``, ``just now``, ``never``."""
    if value is None:
        return "never"
    minutes = _round(((now or timezone.now()) - value).total_seconds() / 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} minute{'' if minutes == 1 else 's'} ago"
    hours = _round(minutes / 60)
    if hours < 48:
        return f"{hours} hour{'' if hours == 1 else 's'} ago"
    return f"{_round(hours / 24)} days ago"


@register.filter
def clock(value: datetime | None, now: datetime | None = None) -> str:
    """``14:05`` in the exchange's zone, with ``on Nov 19`` when that is not today there."""
    if value is None:
        return EMPTY
    zone = ZoneInfo(settings.EXCHANGE_TIME_ZONE)
    local = value.astimezone(zone)
    today = (now or timezone.now()).astimezone(zone).date()
    text = f"{local:%H:%M}"
    return text if local.date() == today else f"{text} on {local:%b} {local.day}"


@register.filter
def run_duration(milliseconds: int | None) -> str:
    """``340 ms``, ``1.2 s``, ``3m 05s``; an unfinished run has none."""
    if milliseconds is None:
        return EMPTY
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.1f} s"
    minutes, seconds = divmod(milliseconds // 1000, 60)
    return f"{minutes}m {seconds:02d}s"
