"""Bars from broker answers, stored once per (instrument, bar size, start).

Re-storing a bar that changed (the current bar moves until it closes, a broker revises one) updates
it; an unchanged bar is not rewritten (no new row version, no ``fetched_at`` change). A malformed bar
(high below low, open or close outside [low, high], a negative volume or price) is skipped with a
warning that names it; the others are stored.

PostgreSQL gets one ``COPY`` into a temporary table and one ``INSERT ... ON CONFLICT DO UPDATE ...
WHERE IS DISTINCT FROM`` (the comparison happens in the database: storing a million bars again reads
none of them into Python). SQLite compares in Python and writes with the ORM.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from core.brokers.base import Bar as BrokerBar
from core.fields import quantize_price, quantize_quantity
from marketdata.models import Bar, BarSize

logger = logging.getLogger(__name__)

VALUE_FIELDS = ("open", "high", "low", "close", "volume", "wap", "trade_count")
_BAR_SIZES = frozenset(BarSize.values)


@dataclass
class BarsStoreResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    def add(self, other: "BarsStoreResult") -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.warnings.extend(other.warnings)


def bar_problem(bar: BrokerBar) -> str | None:
    """Why a bar cannot be stored, or None when it is sound."""
    if bar.bar_size not in _BAR_SIZES:
        return f"bar size {bar.bar_size!r} is not one of {', '.join(BarSize.values)}"
    if bar.start.tzinfo is None:
        return "start has no time zone"
    if bar.low < 0:
        return f"low {bar.low} is negative"
    if bar.high < bar.low:
        return f"high {bar.high} is below low {bar.low}"
    if not bar.low <= bar.open <= bar.high:
        return f"open {bar.open} is outside [low {bar.low}, high {bar.high}]"
    if not bar.low <= bar.close <= bar.high:
        return f"close {bar.close} is outside [low {bar.low}, high {bar.high}]"
    if bar.volume < 0:
        return f"volume {bar.volume} is negative"
    if bar.wap is not None and bar.wap < 0:
        return f"wap {bar.wap} is negative"
    return None


def _row(instrument_id: int, bar: BrokerBar) -> tuple:
    return (
        instrument_id,
        bar.bar_size,
        bar.start,
        quantize_price(bar.open),
        quantize_price(bar.high),
        quantize_price(bar.low),
        quantize_price(bar.close),
        quantize_quantity(bar.volume),
        quantize_price(bar.wap),
        bar.trade_count,
    )


def bars_store(*, bars: Iterable[tuple[int, BrokerBar]], source: str, now: datetime | None = None) -> BarsStoreResult:
    """Store ``(instrument_id, bar)`` pairs in one transaction; returns what was created, updated, unchanged.

    A bar given twice in one call counts once (the later one wins).
    """
    now = now or timezone.now()
    result = BarsStoreResult()
    sound: list[tuple[int, BrokerBar]] = []
    for instrument_id, bar in bars:
        problem = bar_problem(bar)
        if problem:
            start = bar.start.isoformat() if isinstance(bar.start, datetime) else repr(bar.start)
            message = f"bar {bar.symbol} {bar.bar_size} {start}: {problem}; skipped"
            logger.warning("market data: %s", message)
            result.warnings.append(message)
            continue
        sound.append((instrument_id, bar))
    if not sound:
        return result
    distinct = len({(i, b.bar_size, b.start) for i, b in sound})
    with transaction.atomic():
        if connection.vendor == "postgresql":
            created, updated = _store_postgresql(sound, distinct=distinct, source=source, now=now)
        else:
            rows = {row[:3]: row for row in (_row(i, b) for i, b in sound)}
            created, updated = _store_orm(rows, source=source, now=now)
    result.created, result.updated = created, updated
    result.unchanged = distinct - created - updated
    return result


_COLUMNS = ("instrument_id", "bar_size", "start", "open", "high", "low", "close", "volume", "wap", "trade_count")


def _copy_line(instrument_id: int, bar: BrokerBar) -> str:
    """A row of COPY's text format. Decimals go as they are: the staging table's numeric(24,8) rounds
    them to the columns' places, so nothing is quantized in Python (a million quantizes are seconds)."""
    wap = _NULL if bar.wap is None else bar.wap
    count = _NULL if bar.trade_count is None else bar.trade_count
    return (
        f"{instrument_id}\t{bar.bar_size}\t{bar.start.isoformat()}\t{bar.open}\t{bar.high}\t{bar.low}\t"
        f"{bar.close}\t{bar.volume}\t{wap}\t{count}\n"
    )


_NULL = "\\N"


def _store_postgresql(
    bars: list[tuple[int, BrokerBar]], *, distinct: int, source: str, now: datetime
) -> tuple[int, int]:
    table = connection.ops.quote_name(Bar._meta.db_table)
    columns = ", ".join(_COLUMNS)
    values = ", ".join(f"EXCLUDED.{c}" for c in (*VALUE_FIELDS, "source", "fetched_at"))
    targets = ", ".join((*VALUE_FIELDS, "source", "fetched_at"))
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS marketdata_bar_incoming ("
            "instrument_id bigint, bar_size varchar(3), start timestamptz, open numeric(24,8), high numeric(24,8), "
            "low numeric(24,8), close numeric(24,8), volume numeric(24,8), wap numeric(24,8), trade_count bigint"
            ") ON COMMIT DELETE ROWS"
        )
        # Empty also inside an outer transaction (a savepoint commits nothing, so nothing was deleted).
        cursor.execute("TRUNCATE marketdata_bar_incoming")
        with cursor.cursor.copy(f"COPY marketdata_bar_incoming ({columns}) FROM STDIN") as copy:
            for start in range(0, len(bars), 5000):
                copy.write("".join(_copy_line(i, b) for i, b in bars[start : start + 5000]))
        # Row counts for the planner: without them it may scan the whole bars table to find the few rows
        # that exist, once per store (a backfill's time then grows with the table).
        cursor.execute("ANALYZE marketdata_bar_incoming")
        # A bar given twice in one call counts once: the later one (DISTINCT ON keeps the highest ctid).
        # Rows whose values are the same are not written (the WHERE leaves them alone). The rows that
        # existed before are counted in the same statement (its CTEs all see the table as it was).
        cursor.execute(
            f"WITH existed AS (SELECT count(*) AS n FROM (SELECT DISTINCT instrument_id, bar_size, start "  # noqa: S608
            f"FROM marketdata_bar_incoming) i JOIN {table} b USING (instrument_id, bar_size, start)), "
            f"written AS ("
            f"INSERT INTO {table} ({columns}, source, fetched_at) "
            f"SELECT DISTINCT ON (instrument_id, bar_size, start) {columns}, %s, %s FROM marketdata_bar_incoming "
            f"ORDER BY instrument_id, bar_size, start, ctid DESC "
            f"ON CONFLICT (instrument_id, bar_size, start) DO UPDATE SET ({targets}) = ({values}) "
            f"WHERE ({', '.join(f'{table}.{c}' for c in VALUE_FIELDS)}) IS DISTINCT FROM "
            f"({', '.join(f'EXCLUDED.{c}' for c in VALUE_FIELDS)}) "
            f"RETURNING 1) "
            f"SELECT (SELECT n FROM existed), (SELECT count(*) FROM written)",
            [source, now],
        )
        existed, written = cursor.fetchone()
    created = distinct - existed
    return created, written - created


def _store_orm(rows: dict[tuple, tuple], *, source: str, now: datetime) -> tuple[int, int]:
    by_series: dict[tuple[int, str], list[datetime]] = {}
    for instrument_id, bar_size, start in rows:
        by_series.setdefault((instrument_id, bar_size), []).append(start)
    existing: dict[tuple, tuple] = {}
    for (instrument_id, bar_size), starts in by_series.items():
        stored = Bar.objects.filter(
            instrument_id=instrument_id, bar_size=bar_size, start__gte=min(starts), start__lte=max(starts)
        ).values_list("pk", "start", *VALUE_FIELDS)
        for pk, start, *values in stored:
            existing[(instrument_id, bar_size, start)] = (pk, tuple(values))
    new: list[Bar] = []
    changed: list[Bar] = []
    for key, row in rows.items():
        values = row[3:]
        known = existing.get(key)
        if known is None:
            new.append(Bar(**dict(zip(_COLUMNS, row, strict=True)), source=source, fetched_at=now))
        elif known[1] != values:
            changed.append(Bar(pk=known[0], **dict(zip(_COLUMNS, row, strict=True)), source=source, fetched_at=now))
    Bar.objects.bulk_create(new, batch_size=500)
    Bar.objects.bulk_update(changed, [*VALUE_FIELDS, "source", "fetched_at"], batch_size=500)
    return len(new), len(changed)
