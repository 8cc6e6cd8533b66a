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

from django.db import IntegrityError, connection, transaction
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
    # The usual answer first, in one expression (a third of the checks' cost per bar); the reasons below.
    low = bar.low
    if (
        bar.bar_size in _BAR_SIZES
        and bar.start.tzinfo is not None
        and 0 <= low <= bar.open <= bar.high
        and low <= bar.close <= bar.high
        and bar.volume >= 0
        and (bar.wap is None or bar.wap >= 0)
    ):
        return None
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
    keep = sound.append
    for pair in bars:
        problem = bar_problem(pair[1])
        if problem:
            bar = pair[1]
            start = bar.start.isoformat() if isinstance(bar.start, datetime) else repr(bar.start)
            message = f"bar {bar.symbol} {bar.bar_size} {start}: {problem}; skipped"
            logger.warning("market data: %s", message)
            result.warnings.append(message)
            continue
        keep(pair)
    if not sound:
        return result
    with transaction.atomic():
        if connection.vendor == "postgresql":
            distinct, created, updated = _store_postgresql(sound, source=source, now=now)
        else:
            rows = {row[:3]: row for row in (_row(i, b) for i, b in sound)}
            distinct = len(rows)
            created, updated = _store_orm(rows, source=source, now=now)
    result.created, result.updated = created, updated
    result.unchanged = distinct - created - updated
    return result


_COLUMNS = ("instrument_id", "bar_size", "start", "open", "high", "low", "close", "volume", "wap", "trade_count")
_NULL = "\\N"
_CHUNK = 5000
# Named apart from earlier versions' staging tables (their shapes differ): a connection that outlived a
# deploy keeps its temporary tables, and CREATE ... IF NOT EXISTS would take the old one.
_STAGING = "marketdata_bar_incoming"


def _copy_lines(bars: list[tuple[int, BrokerBar]]) -> str:
    """Rows of COPY's text format for the staging table. The start goes as seconds since the epoch (a
    float: exact to the microsecond for any date a bar has, and a quarter of ``isoformat``'s cost);
    decimals go as their ``str`` (``!s``: an f-string's default goes through ``Decimal.__format__``, three
    times the cost): the staging table has the bars table's column types, so PostgreSQL rounds them as
    an insert would and nothing is quantized in Python (a million quantizes are seconds)."""
    null = _NULL
    lines = []
    line = lines.append
    for instrument_id, bar in bars:
        wap, count = bar.wap, bar.trade_count
        line(
            f"{instrument_id}\t{bar.bar_size}\t{bar.start.timestamp()!r}\t{bar.open!s}\t{bar.high!s}\t{bar.low!s}\t"
            f"{bar.close!s}\t{bar.volume!s}\t{null if wap is None else wap}\t{null if count is None else count}\n"
        )
    return "".join(lines)


def _table_lines(bars: list[tuple[int, BrokerBar]], tail: str) -> str:
    """Rows of COPY's text format for the bars table itself: the start as ISO 8601 with its offset (the
    column is a timestamptz), ``tail`` the source and fetch time, the same for every row."""
    null = _NULL
    lines = []
    line = lines.append
    for instrument_id, bar in bars:
        wap, count = bar.wap, bar.trade_count
        line(
            f"{instrument_id}\t{bar.bar_size}\t{bar.start.isoformat()}\t{bar.open!s}\t{bar.high!s}\t{bar.low!s}\t"
            f"{bar.close!s}\t{bar.volume!s}\t{null if wap is None else wap}\t{null if count is None else count}{tail}"
        )
    return "".join(lines)


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _series_windows(bars: list[tuple[int, BrokerBar]]) -> tuple[dict[tuple[int, str], list[datetime]], bool]:
    """Each series' first and last start in the answer, and whether every series came in strictly rising
    order (then no bar is given twice). A broker answer is one series in order: one comparison a bar."""
    windows: dict[tuple[int, str], list[datetime]] = {}
    ordered = True
    key = window = None
    for instrument_id, bar in bars:
        start = bar.start
        if key is None or instrument_id != key[0] or bar.bar_size != key[1]:
            key = (instrument_id, bar.bar_size)
            window = windows.get(key)
            if window is None:
                windows[key] = window = [start, start]
                continue
            ordered = False  # a series given in pieces: its order across them is not checked
        if start > window[1]:
            window[1] = start
        else:
            ordered = False
            window[0] = min(window[0], start)
    return windows, ordered


def _store_postgresql(bars: list[tuple[int, BrokerBar]], *, source: str, now: datetime) -> tuple[int, int, int]:
    """When no series of the answer has a stored bar between its first and last start (a first store, a
    backfill, the next session) and no bar is given twice: COPY straight into the bars table. Else COPY
    into a staging table and one statement that compares and upserts. Returns (distinct bars given,
    created, updated)."""
    windows, ordered = _series_windows(bars)
    with connection.cursor() as cursor:
        if ordered and not _windows_occupied(cursor, windows):
            created = _copy_new(cursor, bars, source=source, now=now)
            if created is not None:
                return created, created, 0
        return _upsert(cursor, bars, source=source, now=now, unique=ordered)


def _windows_occupied(cursor, windows: dict[tuple[int, str], list[datetime]]) -> bool:
    """Whether any series has a stored bar in its window: one probe of the unique index per series
    (LATERAL: a plan that cannot scan the bars table)."""
    keys = list(windows)
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM unnest(%s::bigint[], %s::varchar[], %s::timestamptz[], %s::timestamptz[]) "  # noqa: S608
        f"w(instrument_id, bar_size, lo, hi) CROSS JOIN LATERAL (SELECT 1 FROM {Bar._meta.db_table} b "
        "WHERE b.instrument_id = w.instrument_id AND b.bar_size = w.bar_size AND b.start BETWEEN w.lo AND w.hi "
        "LIMIT 1) stored)",
        [[k[0] for k in keys], [k[1] for k in keys], [windows[k][0] for k in keys], [windows[k][1] for k in keys]],
    )
    return cursor.fetchone()[0]


def _copy_new(cursor, bars: list[tuple[int, BrokerBar]], *, source: str, now: datetime) -> int | None:
    """Every bar is new: COPY into the bars table, no staging table, no conflict handling (PostgreSQL
    inserts while Python writes the next rows). Returns the bars created, or None when another writer
    stored one of them since the check (the unique key refuses the COPY; nothing of it stays, and the
    caller upserts)."""
    from psycopg import IntegrityError as PsycopgIntegrityError

    table = connection.ops.quote_name(Bar._meta.db_table)
    tail = f"\t{_copy_text(source)}\t{now.isoformat()}\n"
    try:
        statement = f"COPY {table} ({', '.join(_COLUMNS)}, source, fetched_at) FROM STDIN"
        with transaction.atomic(), cursor.cursor.copy(statement) as copy:
            for first in range(0, len(bars), _CHUNK):
                copy.write(_table_lines(bars[first : first + _CHUNK], tail))
    except (IntegrityError, PsycopgIntegrityError):
        return None
    return len(bars)


def _upsert(
    cursor, bars: list[tuple[int, BrokerBar]], *, source: str, now: datetime, unique: bool
) -> tuple[int, int, int]:
    """COPY into a staging table, then one statement: new and changed bars are upserted, unchanged ones
    are left out before the upsert (``ON CONFLICT DO UPDATE ... WHERE`` alone would still lock, and so
    write, every existing row it leaves unchanged).

    A bar given twice counts once: the later one (DISTINCT ON keeps the highest ctid; skipped, with its
    sort, when ``unique``: every series came in strictly rising order, so no bar is twice). The stored bars
    are read once, by one range scan of the unique index per series between the first and last start
    given (LATERAL with OFFSET 0: a plan that cannot scan the table, whatever the planner guesses of the
    unanalyzed staging table), and matched to the answer's bars in one join. A bar whose values are the
    same is not written; the upsert's WHERE still guards a row another writer changed meanwhile. Every
    CTE sees the table as it was, so ``stored_id`` counts the bars that existed."""
    types = ", ".join(
        f"{c} {Bar._meta.get_field(c).db_type(connection)}" for c in ("open", "high", "low", "close", "volume", "wap")
    )
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} ("
        f"instrument_id bigint, bar_size varchar(3), start_epoch double precision, {types}, trade_count bigint"
        ") ON COMMIT DELETE ROWS"
    )
    # Empty also inside an outer transaction (a savepoint commits nothing, so nothing was deleted).
    cursor.execute(f"TRUNCATE {_STAGING}")
    staged = ", ".join(c if c != "start" else "start_epoch" for c in _COLUMNS)
    with cursor.cursor.copy(f"COPY {_STAGING} ({staged}) FROM STDIN") as copy:
        for first in range(0, len(bars), _CHUNK):
            copy.write(_copy_lines(bars[first : first + _CHUNK]))
    table = connection.ops.quote_name(Bar._meta.db_table)
    columns = ", ".join(_COLUMNS)
    values = ", ".join(f"EXCLUDED.{c}" for c in (*VALUE_FIELDS, "source", "fetched_at"))
    targets = ", ".join((*VALUE_FIELDS, "source", "fetched_at"))
    stored = ", ".join(f"s.{c}" for c in VALUE_FIELDS)
    given = ", ".join(f"i.{c}" for c in VALUE_FIELDS)
    incoming = (
        f"SELECT instrument_id, bar_size, to_timestamp(start_epoch) AS start, {', '.join(VALUE_FIELDS)} "  # noqa: S608
        f"FROM {_STAGING}"
    )
    if not unique:
        incoming = (
            f"SELECT DISTINCT ON (instrument_id, bar_size, start_epoch) instrument_id, bar_size, "  # noqa: S608
            f"to_timestamp(start_epoch) AS start, {', '.join(VALUE_FIELDS)} FROM {_STAGING} "
            f"ORDER BY instrument_id, bar_size, start_epoch, ctid DESC"
        )
    cursor.execute(
        f"WITH incoming AS MATERIALIZED ({incoming}), "  # noqa: S608
        f"windows AS (SELECT instrument_id, bar_size, min(start) AS lo, max(start) AS hi FROM incoming "
        f"GROUP BY instrument_id, bar_size), "
        f"stored AS MATERIALIZED (SELECT b.id, b.instrument_id, b.bar_size, b.start, "
        f"{', '.join(f'b.{c}' for c in VALUE_FIELDS)} FROM windows w CROSS JOIN LATERAL (SELECT * FROM {table} s "
        f"WHERE s.instrument_id = w.instrument_id AND s.bar_size = w.bar_size AND s.start BETWEEN w.lo AND w.hi "
        f"OFFSET 0) b), "
        f"compared AS (SELECT i.*, s.id AS stored_id, ({stored}) IS NOT DISTINCT FROM ({given}) AS same "
        f"FROM incoming i LEFT JOIN stored s ON s.instrument_id = i.instrument_id AND s.bar_size = i.bar_size "
        f"AND s.start = i.start), "
        f"written AS ("
        f"INSERT INTO {table} ({columns}, source, fetched_at) "
        f"SELECT {columns}, %s, %s FROM compared WHERE NOT same "
        f"ON CONFLICT (instrument_id, bar_size, start) DO UPDATE SET ({targets}) = ({values}) "
        f"WHERE ({', '.join(f'{table}.{c}' for c in VALUE_FIELDS)}) IS DISTINCT FROM "
        f"({', '.join(f'EXCLUDED.{c}' for c in VALUE_FIELDS)}) "
        f"RETURNING 1) "
        f"SELECT count(*), count(stored_id), (SELECT count(*) FROM written) FROM compared",
        [source, now],
    )
    distinct, existed, written = cursor.fetchone()
    created = distinct - existed
    return distinct, created, written - created


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
