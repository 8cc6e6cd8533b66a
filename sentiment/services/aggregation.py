"""Aggregation: hourly per symbol and platform (``SymbolSentiment``), then windows of 1 h, 24 h and 7 d
across platforms (``AggregatedSentiment``) with the change against the previous window and the mention
spike.

Recomputed, never incremented: hours from ``since`` on are rebuilt from the mentions, so an edit or a
deletion anywhere in the range is reflected and running it twice changes nothing.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.bulk import bulk_insert
from sentiment import rules
from sentiment.models import AggregatedSentiment, Mention, SymbolSentiment, Window

HOUR = timedelta(hours=1)
WINDOWS = {Window.HOUR: HOUR, Window.DAY: timedelta(hours=24), Window.WEEK: timedelta(days=7)}
SPIKE_TRAILING = 7 * 24  # hours the last hour's mentions are compared with
DEFAULT_LOOKBACK = timedelta(days=8)


class _MentionRow(NamedTuple):
    id: int
    symbol: str
    platform: str
    at: datetime
    text_hash: str
    compound: Decimal
    weight: Decimal
    label: str


def hour_floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


@dataclass
class AggregationCounts:
    hours: int = 0
    hourly_rows: int = 0
    window_rows: int = 0


def sentiment_aggregate(*, since: datetime | None = None, until: datetime | None = None) -> AggregationCounts:
    """Rebuild hourly rows for the hours in [since, until) and the windows ending in (since, until]."""
    now = timezone.now()
    until = hour_floor(until or now) + HOUR
    since = hour_floor(since or (now - DEFAULT_LOOKBACK))
    if settings.SENTIMENT_POST_RETENTION:
        # Hours whose posts were pruned keep their aggregates: never rebuild them from what is left.
        kept_from = hour_floor(now - timedelta(days=settings.SENTIMENT_POST_RETENTION)) + HOUR
        since = max(since, kept_from)
    spam_window = timedelta(minutes=settings.SENTIMENT_SPAM_WINDOW_MINUTES)
    counts = AggregationCounts(hours=int((until - since) / HOUR))

    # The spam rule needs the mentions just before the range: a copy inside it of a text posted
    # there does not count either.
    raw = Mention.objects.filter(at__gte=since - spam_window, at__lt=until).values_list(*_MentionRow._fields)
    hourly: dict[tuple[str, datetime, str], rules.Tally] = defaultdict(rules.Tally)
    rows = (_MentionRow(*row) for row in raw.iterator(chunk_size=10000))
    for mention in rules.counted_mentions(rows, window=spam_window):
        if mention.at < since:
            continue
        hourly[(mention.symbol, hour_floor(mention.at), mention.platform)].add(
            compound=mention.compound, weight=mention.weight, label=mention.label
        )

    with transaction.atomic():
        SymbolSentiment.objects.filter(hour__gte=since, hour__lt=until).delete()
        bulk_insert(
            SymbolSentiment,
            [
                "symbol",
                "hour",
                "source",
                "mentions",
                "bullish",
                "neutral",
                "bearish",
                "compound_sum",
                "weighted_sum",
                "weight_sum",
                "mean_compound",
                "weighted_compound",
                "computed_at",
            ],
            (
                (
                    symbol,
                    hour,
                    platform,
                    t.mentions,
                    t.bullish,
                    t.neutral,
                    t.bearish,
                    t.compound_sum,
                    t.weighted_sum,
                    t.weight_sum,
                    t.mean_compound,
                    t.weighted_compound,
                    now,
                )
                for (symbol, hour, platform), t in hourly.items()
            ),
        )
        counts.hourly_rows = len(hourly)
        counts.window_rows = _windows(since=since, until=until, now=now)
    return counts


def _windows(*, since: datetime, until: datetime, now: datetime) -> int:
    """Window rows ending at each hour boundary in (since, until], for every symbol with mentions in
    the reach before it (two of the longest window, or the spike's trailing week).

    Prefix sums over the hours make each row O(1): a window's tally is the difference of two prefixes,
    the spike's mean and spread come from the prefixes of mentions and of their squares.
    """
    reach = max(2 * max(WINDOWS.values()), (SPIKE_TRAILING + 1) * HOUR)
    base = since - reach
    size = int((until - base) / HOUR)
    rows = SymbolSentiment.objects.filter(hour__gte=base, hour__lt=until).values_list(
        "symbol",
        "hour",
        "source",
        "mentions",
        "bullish",
        "neutral",
        "bearish",
        "compound_sum",
        "weighted_sum",
        "weight_sum",
    )
    # symbol -> source ("" for all) -> per-hour tally fields
    grid: dict[str, dict[str, dict[int, tuple]]] = defaultdict(lambda: defaultdict(dict))
    for symbol, hour, source, *fields in rows:
        index = int((hour - base) / HOUR)
        grid[symbol][source][index] = tuple(fields)
        total = grid[symbol][""].get(index)
        grid[symbol][""][index] = (
            tuple(fields) if total is None else tuple(a + b for a, b in zip(total, fields, strict=True))
        )

    zero = (0, 0, 0, 0, Decimal(0), Decimal(0), Decimal(0))
    out = []
    first_end = int((since - base) / HOUR) + 1
    for symbol, sources in grid.items():
        prefixes = {}
        for source, hours in sources.items():
            running, prefix = zero, [zero]
            for i in range(size):
                cell = hours.get(i)
                if cell is not None:
                    running = tuple(a + b for a, b in zip(running, cell, strict=True))
                prefix.append(running)
            prefixes[source] = prefix
        squares = [0]
        for i in range(size):
            squares.append(squares[-1] + sources[""].get(i, zero)[0] ** 2)
        allp = prefixes[""]
        reach_hours = int(reach / HOUR)
        for end in range(first_end, size + 1):
            if allp[end][0] - allp[max(0, end - reach_hours)][0] == 0:
                continue
            as_of = base + end * HOUR
            # spike: the last hour against the SPIKE_TRAILING hours before it
            last = allp[end][0] - allp[end - 1][0]
            lo = max(0, end - 1 - SPIKE_TRAILING)
            n = end - 1 - lo
            spike = None
            if n > 0:
                total = allp[end - 1][0] - allp[lo][0]
                total_sq = squares[end - 1] - squares[lo]
                spike = rules.mention_spike_from_sums(last, count=n, total=total, total_squares=total_sq)
            for window, length in WINDOWS.items():
                hours_in = int(length / HOUR)
                current = _range(allp, end - hours_in, end)
                previous = _range(allp, end - 2 * hours_in, end - hours_in)
                change = None
                if current.weighted_compound is not None and previous.weighted_compound is not None:
                    change = current.weighted_compound - previous.weighted_compound
                per_source = {}
                for source in sorted(prefixes):
                    if not source:
                        continue
                    t = _range(prefixes[source], end - hours_in, end)
                    if t.mentions:
                        per_source[source] = {
                            "mentions": t.mentions,
                            "bullish": t.bullish,
                            "neutral": t.neutral,
                            "bearish": t.bearish,
                            "mean_compound": _text(t.mean_compound),
                            "weighted_compound": _text(t.weighted_compound),
                        }
                out.append(
                    (
                        symbol,
                        window.value,
                        as_of,
                        current.mentions,
                        current.bullish,
                        current.neutral,
                        current.bearish,
                        current.mean_compound,
                        current.weighted_compound,
                        change,
                        spike,
                        per_source,
                        now,
                    )
                )
    AggregatedSentiment.objects.filter(as_of__gt=since, as_of__lte=until).delete()
    bulk_insert(
        AggregatedSentiment,
        [
            "symbol",
            "window",
            "as_of",
            "mentions",
            "bullish",
            "neutral",
            "bearish",
            "mean_compound",
            "weighted_compound",
            "change",
            "spike",
            "per_source",
            "computed_at",
        ],
        out,
    )
    return len(out)


def _range(prefix: list[tuple], start: int, end: int) -> rules.Tally:
    start = max(0, start)
    if end <= start:
        return rules.Tally()
    return rules.Tally(*(b - a for a, b in zip(prefix[start], prefix[end], strict=True)))


def _text(value) -> str | None:
    return None if value is None else str(value)
