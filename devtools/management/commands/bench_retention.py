"""Measure retention: a simulated year of what the product writes, table sizes before and after ``prune``."""

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.contrib.sessions.models import Session
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from core.brokers.contracts import InstrumentSpec
from core.bulk import bulk_insert, reserve_ids
from core.models import SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus, TaskLock
from core.pruning import PRUNE_BATCH, prune
from marketdata.models import Instrument
from portfolio.models import (
    AccountSnapshot,
    MetricsWindow,
    PerformanceMetrics,
    Position,
    PositionEvent,
    PositionEventKind,
    PositionSnapshot,
    PositionStatus,
    SnapshotKind,
    SnapshotSource,
)
from trading.calendars import nyse_sessions, session_close, trade_date_of
from trading.models import Account

PREFIX = "BENCHR"  # accounts and instruments
KEY_PREFIX = "benchr"  # sessions and locks
RUN_MARK = "0 new accounts [benchr]"  # the message of the account-less runs it writes
CHUNK_DAYS = 7  # an account's week per transaction
TABLES = [SyncRun, AccountSnapshot, PositionSnapshot, PositionEvent, PerformanceMetrics, Session, TaskLock]
MB = 1024 * 1024

# What the default periodic tasks write (schedules.py of core, trading and portfolio), per account:
# - Execution ingest, every 60 s: a run.              - Position sync, every 300 s: a run.
# - Portfolio snapshot, hourly: a run, an HOURLY snapshot and a position snapshot per open position.
# - Daily close snapshot, after each NYSE close: a run; the CLOSE snapshot is stamped at the close, on
#   the hour, so it takes the place of that hour's snapshot (one row, kind CLOSE).
# - Performance metrics, hourly: an upsert of the trade date's two rows (ALL, LAST_20).
# - Position events when a quantity changes (here twice a session, seen by the sync run at hh:35).
# Not per account: Accounts sync, hourly, a run without an account; logins (sessions).
# The IB Gateway restarts nightly: runs during the restart are SKIPPED (broker unreachable); one
# ingest run a week FAILs.
INGEST_EVERY, SYNC_EVERY = 60, 300
RESTART = range(4 * 60 + 45, 4 * 60 + 50)  # 04:45-04:49 UTC, minutes of the day
EVENT_MINUTES = {14 * 60 + 35, 19 * 60 + 35}
FAILED_MINUTE = 15 * 60  # Mondays 15:00 UTC
LOGINS_PER_DAY = 10
SESSION_AGE = timedelta(weeks=2)  # Django's SESSION_COOKIE_AGE

OK, DOWN, FAILED, EVENT = "ok", "down", "failed", "event"
DOWN_MESSAGE = "broker unreachable: [Errno 111] Connect call failed ('127.0.0.1', 4002)"
RUN_FIELDS = [
    "kind",
    "account_id",
    "reason",
    "status",
    "skip_reason",
    "started_at",
    "finished_at",
    "duration_ms",
    "created",
    "updated",
    "closed",
    "unchanged",
    "warnings",
    "message",
]
EVENT_FIELDS = [
    "position_id",
    "kind",
    "quantity_before",
    "quantity_after",
    "average_price_before",
    "average_price_after",
    "price",
    "realized_pnl",
    "realized_pnl_estimated",
    "at",
    "sync_run_id",
    "note",
]
SNAPSHOT_FIELDS = [
    "id",
    "account_id",
    "taken_at",
    "kind",
    "trade_date",
    "source",
    "currency",
    "net_liquidation",
    "total_cash",
    "settled_cash",
    "buying_power",
    "excess_liquidity",
    "maint_margin_req",
    "unrealized_pnl",
    "realized_pnl",
    "positions_value",
    "positions_count",
    "note",
]
SNAPSHOT_VALUES = (
    SnapshotSource.BROKER,
    "USD",
    *map(Decimal, ("250000.00", "40000.00", "39000.00", "500000.00", "180000.00", "20000.00", "1200.00", "300.00")),
)
POSITION_SNAPSHOT_FIELDS = [
    "snapshot_id",
    "instrument_id",
    "quantity",
    "average_price",
    "price",
    "market_value",
    "unrealized_pnl",
]
METRICS_FIELDS = [
    "account_id",
    "as_of",
    "window",
    "daily_return",
    "twr",
    "twr_index",
    "drawdown",
    "max_drawdown",
    "daily_pnl",
    "round_trips",
    "win_rate",
    "expectancy",
    "gross_profit",
    "gross_loss",
    "current_consecutive_losses",
    "max_consecutive_losses",
    "computed_at",
]
METRICS_VALUES = (
    *map(Decimal, ("0.001", "0.05", "1.05", "0", "-0.04", "125.00")),
    40,
    *map(Decimal, ("0.55", "3.10", "900.00", "-400.00")),
    1,
    4,
)


@dataclass
class _Day:
    """The moments of one day of the simulation, the same for every account."""

    ingest: list[tuple[datetime, str]] = field(default_factory=list)  # (start, OK/DOWN/FAILED)
    sync: list[tuple[datetime, str]] = field(default_factory=list)  # (start, OK/DOWN/EVENT)
    snapshots: list[tuple[datetime, date, str]] = field(default_factory=list)  # (taken_at, trade date, kind)
    closes: list[tuple[datetime, date]] = field(default_factory=list)  # (close, session)


@dataclass
class _Sizes:
    rows: dict[str, int]
    bytes: dict[str, int | None]


class Command(BaseCommand):
    help = (
        "Write a simulated --days of what the product writes for --accounts accounts (ids BENCHR...): an "
        "ingest run a minute, a position sync run every 5 minutes, an hourly snapshot run and snapshot with a "
        "position snapshot per open position, the close snapshot and its run, position events, metrics, "
        "sessions. Report row counts and on-disk sizes (PostgreSQL: pg_total_relation_size) before and after "
        "prune, after VACUUM and compacted (VACUUM FULL), then remove the bench data. Meant for a PostgreSQL "
        "database of its own: the sizes are of whole tables."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--accounts", type=int, default=10)
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--positions", type=int, default=20, help="open positions per account")
        parser.add_argument("--batch-size", type=int, default=PRUNE_BATCH, help="prune's keys per DELETE")
        parser.add_argument("--keep", action="store_true", help="keep the bench data afterwards")

    def handle(self, *args, accounts: int, days: int, positions: int, batch_size: int, keep: bool, **options):
        if min(accounts, days, positions, batch_size) < 1:
            raise CommandError("--accounts, --days, --positions and --batch-size must be at least 1")
        self._cleanup()
        # Start from compact tables: space freed by an earlier run would otherwise count as "before".
        self._vacuum(full=True)
        try:
            self._run(accounts=accounts, days=days, positions=positions, batch_size=batch_size)
        finally:
            if not keep:
                started = time.perf_counter()
                self._cleanup()
                self.stdout.write(f"bench data removed in {time.perf_counter() - started:.1f} s")

    # --- the benchmark ---------------------------------------------------------------------------
    def _run(self, *, accounts: int, days: int, positions: int, batch_size: int) -> None:
        self.now = timezone.now().replace(microsecond=0)
        self.start = (self.now - timedelta(days=days)).replace(minute=0, second=0)
        self.plan = self._plan(days)
        started = time.perf_counter()
        account_pks = self._accounts(accounts)
        instrument_pks = self._instruments(positions)
        written = dict.fromkeys((model._meta.db_table for model in TABLES), 0)
        for n, account in enumerate(account_pks, 1):
            position_pks = self._positions(account, instrument_pks)
            for first in range(0, days, CHUNK_DAYS):
                with transaction.atomic():
                    chunk = self._write_days(
                        account, position_pks, instrument_pks, self.plan[first : first + CHUNK_DAYS]
                    )
                for table, rows in chunk.items():
                    written[table] += rows
            if n % 10 == 0 and n < accounts:
                self.stdout.write(f"  {n} of {accounts} accounts written, {time.perf_counter() - started:.0f} s")
        shared = self._write_shared()
        total = sum(written.values()) + sum(shared.values())
        self.stdout.write(
            f"database: {connection.vendor}; {accounts} accounts x {days} days, {positions} open positions each; "
            f"{total:,} rows written in {time.perf_counter() - started:.1f} s"
        )
        self.stdout.write(
            "written per account per day: "
            + ", ".join(f"{table} {rows / accounts / days:,.1f}" for table, rows in written.items() if rows)
            + f"; {sum(written.values()) / accounts / days:,.1f} in all. Not per account, per day: "
            + ", ".join(f"{table} {rows / days:,.1f}" for table, rows in shared.items())
        )
        self._vacuum()
        before = self._sizes()

        timer = time.perf_counter()
        dry = prune(now=self.now, dry_run=True, batch_size=batch_size)
        seconds = time.perf_counter() - timer
        self.stdout.write(f"prune --dry-run: {sum(dry.deleted.values()):,} rows would be deleted ({seconds:.1f} s)")
        timer = time.perf_counter()
        report = prune(now=self.now, batch_size=batch_size)
        seconds = time.perf_counter() - timer
        deleted = sum(report.deleted.values())
        self.stdout.write(
            f"prune: {deleted:,} rows deleted in {seconds:.1f} s ({deleted / max(seconds, 1e-9):,.0f} rows/s, "
            f"{batch_size:,} keys per DELETE): "
            + ", ".join(f"{label} {rows:,}" for label, rows in [*report.deleted.items(), *report.unlinked.items()])
            + " (the last: set to NULL); "
            + ", ".join(f"{name} {step:.1f} s" for name, step in report.step_seconds.items())
        )
        if dry.deleted != report.deleted:
            self.stdout.write(f"  the dry run counted otherwise: {dry.deleted}")

        after = self._sizes()
        self._vacuum()
        vacuumed = self._sizes()
        compacted = self._sizes() if self._vacuum(full=True) else None
        self._report(before, after, vacuumed, compacted, accounts=accounts)

        # The steady state: the next day's prune deletes a day of what is now 90 days old.
        timer = time.perf_counter()
        daily = prune(now=self.now + timedelta(days=1), batch_size=batch_size)
        self.stdout.write(
            f"a day later, prune: {sum(daily.deleted.values()):,} rows deleted in {time.perf_counter() - timer:.1f} s "
            "(what the daily task does for these accounts)"
        )

    def _report(self, before: _Sizes, after: _Sizes, vacuumed: _Sizes, compacted: _Sizes | None, *, accounts: int):
        self.stdout.write(
            "tables (rows; MB = pg_total_relation_size, indexes and TOAST included): before the prune, right "
            "after it, after VACUUM (the space is reusable, the files do not shrink) and after VACUUM FULL "
            "(compacted: what the kept rows take, the size a pruned table stays at)"
        )
        header = ["rows before", "MB before", "rows after", "MB after", "MB vacuumed", "MB compacted"]
        self.stdout.write(f"  {'table':28s}" + "".join(f"{h:>14s}" for h in header))
        totals: list = [0, 0.0, 0, 0.0, 0.0, 0.0]
        for table in before.rows:
            cells = [
                before.rows[table],
                _mb(before.bytes[table]),
                after.rows[table],
                _mb(after.bytes[table]),
                _mb(vacuumed.bytes[table]),
                _mb(compacted.bytes[table]) if compacted else None,
            ]
            self.stdout.write(f"  {table:28s}" + "".join(_cell(c) for c in cells))
            totals = [None if t is None or c is None else t + c for t, c in zip(totals, cells, strict=True)]
        self.stdout.write(f"  {'total':28s}" + "".join(_cell(t) for t in totals))
        if accounts != 100:
            scale = 100 / accounts
            label = f"x {scale:g} = 100 accounts"
            scaled = [None if t is None else (round(t * scale) if isinstance(t, int) else t * scale) for t in totals]
            self.stdout.write(f"  {label:28s}" + "".join(_cell(t) for t in scaled) + "  (linear)")

    # --- sizes -------------------------------------------------------------------------------------
    @staticmethod
    def _sizes() -> _Sizes:
        rows, sizes = {}, {}
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            for model in TABLES:
                table = model._meta.db_table
                cursor.execute(f"SELECT count(*) FROM {qn(table)}")  # noqa: S608
                rows[table] = cursor.fetchone()[0]
                sizes[table] = None
                if connection.vendor == "postgresql":
                    cursor.execute("SELECT pg_total_relation_size(%s::regclass)", [table])
                    sizes[table] = cursor.fetchone()[0]
        return _Sizes(rows=rows, bytes=sizes)

    @staticmethod
    def _vacuum(*, full: bool = False) -> bool:
        """VACUUM (ANALYZE), or VACUUM FULL, the measured tables; False where it cannot (SQLite, a transaction)."""
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            return False
        command = "VACUUM (FULL, ANALYZE)" if full else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            for model in TABLES:
                cursor.execute(f"{command} {connection.ops.quote_name(model._meta.db_table)}")
        return True

    # --- data --------------------------------------------------------------------------------------
    def _plan(self, days: int) -> list[_Day]:
        """Each day of the simulation from ``start``: runs, snapshots and closes, for every account alike."""
        closes = sorted(
            (session_close(session), session) for session in nyse_sessions(self.start.date(), self.now.date())
        )
        sessions = {session for _, session in closes}
        plan = []
        for k in range(days):
            begin = self.start + timedelta(days=k)
            end = begin + timedelta(days=1)
            day = _Day()
            day.closes = closes[bisect_left(closes, (begin,)) : bisect_left(closes, (end,))]
            close_moments = {close for close, _ in day.closes}
            for s in range(0, 86_400, INGEST_EVERY):
                at = begin + timedelta(seconds=s + 5)
                minute = at.hour * 60 + at.minute
                failed = at.weekday() == 0 and minute == FAILED_MINUTE
                day.ingest.append((at, DOWN if minute in RESTART else FAILED if failed else OK))
            for s in range(0, 86_400, SYNC_EVERY):
                at = begin + timedelta(seconds=s + 10)
                minute = at.hour * 60 + at.minute
                changed = minute in EVENT_MINUTES and trade_date_of(at) in sessions
                day.sync.append((at, DOWN if minute in RESTART else EVENT if changed else OK))
            hours = [begin + timedelta(hours=h) for h in range(24)]
            moments = sorted({*hours, *close_moments})  # a close off the hour would be a snapshot of its own
            day.snapshots = [
                (at, trade_date_of(at), SnapshotKind.CLOSE if at in close_moments else SnapshotKind.HOURLY)
                for at in moments
            ]
            plan.append(day)
        return plan

    def _accounts(self, count: int) -> list[int]:
        Account.objects.bulk_create([Account(account_id=f"{PREFIX}{i:05d}", name="bench") for i in range(count)])
        return list(
            Account.objects.filter(account_id__startswith=PREFIX).order_by("account_id").values_list("pk", flat=True)
        )

    def _instruments(self, count: int) -> list[int]:
        symbols = [f"{PREFIX}{j:04d}" for j in range(count)]
        Instrument.objects.bulk_create(
            [Instrument(symbol=symbol, key=InstrumentSpec(symbol=symbol).key, exchange="SMART") for symbol in symbols]
        )
        by_symbol = dict(Instrument.objects.filter(symbol__in=symbols).values_list("symbol", "pk"))
        return [by_symbol[symbol] for symbol in symbols]

    def _positions(self, account: int, instrument_pks: list[int]) -> list[int]:
        created = Position.objects.bulk_create(
            [
                Position(
                    account_id=account,
                    instrument_id=instrument,
                    status=PositionStatus.OPEN,
                    quantity=Decimal(100 + n),
                    average_price=Decimal("50.00") + n,
                    opened_at=self.start,
                )
                for n, instrument in enumerate(instrument_pks)
            ]
        )
        return [p.pk for p in created]

    def _write_days(self, account: int, position_pks: list[int], instrument_pks: list[int], days: list[_Day]) -> dict:
        positions = len(position_pks)

        def run(kind, at, ms, status=SyncStatus.SUCCESS, skip=SkipReason.NONE, created=0, updated=0, message=""):
            unchanged = positions - updated if kind == SyncKind.POSITIONS and status == SyncStatus.SUCCESS else 0
            finished = at + timedelta(milliseconds=ms)
            counts = (created, updated, 0, unchanged)
            return (kind, account, SyncReason.SCHEDULE, status, skip, at, finished, ms, *counts, [], message)

        down = {"status": SyncStatus.SKIPPED, "skip": SkipReason.BROKER_UNREACHABLE, "message": DOWN_MESSAGE}
        runs, event_runs, snapshots, metrics = [], [], [], []
        for day in days:
            for at, state in day.ingest:
                if state == DOWN:
                    runs.append(run(SyncKind.EXECUTIONS, at, 4, **down))
                elif state == FAILED:
                    message = "OperationalError: could not serialize access due to concurrent update"
                    runs.append(run(SyncKind.EXECUTIONS, at, 900, status=SyncStatus.FAILED, message=message))
                else:
                    runs.append(run(SyncKind.EXECUTIONS, at, 180, message="0 fills: 0 new, 0 updated"))
            for at, state in day.sync:
                if state == DOWN:
                    runs.append(run(SyncKind.POSITIONS, at, 4, **down))
                elif state == EVENT:
                    event_runs.append(run(SyncKind.POSITIONS, at, 260, updated=1, message=f"{positions} rows; 1 event"))
                else:
                    runs.append(run(SyncKind.POSITIONS, at, 210, message=f"{positions} rows; 0 events"))
            for at, _, kind in day.snapshots:
                runs.append(run(SyncKind.SNAPSHOTS, at, 150, created=positions, message=f"BROKER {kind} snapshot"))
            for close, session in day.closes:
                message = "BROKER daily close snapshot"
                runs.append(
                    run(SyncKind.SNAPSHOTS, close + timedelta(seconds=20), 160, created=positions, message=message)
                )
                metrics += [(account, session, window, *METRICS_VALUES, close) for window in MetricsWindow.values]
            snapshots += day.snapshots

        # Runs that events point at, and snapshots that position snapshots point at, get their keys first.
        run_ids = reserve_ids(SyncRun, len(event_runs))
        bulk_insert(SyncRun, ["id", *RUN_FIELDS], [(pk, *row) for pk, row in zip(run_ids, event_runs, strict=True)])
        bulk_insert(SyncRun, RUN_FIELDS, runs)
        events = []
        for n, (pk, row) in enumerate(zip(run_ids, event_runs, strict=True)):
            grows = n % 2 == 0
            before, after = (Decimal(100), Decimal(110)) if grows else (Decimal(110), Decimal(100))
            kind = PositionEventKind.INCREASED if grows else PositionEventKind.DECREASED
            realized = None if grows else Decimal("21.00")
            position = position_pks[(n // 2) % positions]
            price = Decimal("52.10")
            events.append((position, kind, before, after, price, price, price, realized, False, row[5], pk, ""))
        bulk_insert(PositionEvent, EVENT_FIELDS, events)

        snapshot_ids = reserve_ids(AccountSnapshot, len(snapshots))
        rows = [
            (pk, account, at, kind, trade_date, *SNAPSHOT_VALUES, Decimal("210000.00"), positions, "")
            for pk, (at, trade_date, kind) in zip(snapshot_ids, snapshots, strict=True)
        ]
        bulk_insert(AccountSnapshot, SNAPSHOT_FIELDS, rows)
        held = [
            (instrument, Decimal(100 + n), Decimal(50 + n), Decimal(52 + n), Decimal(100 + n) * (52 + n), Decimal(200))
            for n, instrument in enumerate(instrument_pks)
        ]
        position_rows = [(pk, *row) for pk in snapshot_ids for row in held]
        bulk_insert(PositionSnapshot, POSITION_SNAPSHOT_FIELDS, position_rows)
        bulk_insert(PerformanceMetrics, METRICS_FIELDS, metrics)
        return {
            SyncRun._meta.db_table: len(runs) + len(event_runs),
            AccountSnapshot._meta.db_table: len(snapshots),
            PositionSnapshot._meta.db_table: len(position_rows),
            PositionEvent._meta.db_table: len(events),
            PerformanceMetrics._meta.db_table: len(metrics),
        }

    def _write_shared(self) -> dict:
        """What is not per account: the hourly accounts sync, logins (sessions), a few lapsed locks."""
        success = (SyncReason.SCHEDULE, SyncStatus.SUCCESS, SkipReason.NONE)
        runs = [
            (SyncKind.ACCOUNTS, None, *success, at, at + timedelta(milliseconds=300), 300, 0, 0, 0, 1, [], RUN_MARK)
            for day in self.plan
            for at, _, _ in day.snapshots
        ]
        bulk_insert(SyncRun, RUN_FIELDS, runs)
        data = "e30:" + "x" * 180  # about what a signed session of a logged-in user takes
        sessions = [
            (f"{KEY_PREFIX}{k:06d}{n:03d}", data, self.start + timedelta(days=k, hours=13 + n % 8) + SESSION_AGE)
            for k in range(len(self.plan))
            for n in range(LOGINS_PER_DAY)
        ]
        bulk_insert(Session, ["session_key", "session_data", "expire_date"], sessions)
        lapsed = self.start + timedelta(minutes=6)
        locks = [(f"{KEY_PREFIX}:lapsed:{n}", "a worker that died", self.start, lapsed) for n in range(3)]
        bulk_insert(TaskLock, ["name", "owner", "acquired_at", "expires_at"], locks)
        return {SyncRun._meta.db_table: len(runs), Session._meta.db_table: len(sessions)}

    # --- clean-up ----------------------------------------------------------------------------------
    @staticmethod
    def _cleanup() -> None:
        """Plain DELETEs: the ORM would load every row (and write history rows for positions)."""
        qn = connection.ops.quote_name
        accounts = f"SELECT id FROM {qn(Account._meta.db_table)} WHERE account_id LIKE %s"  # noqa: S608
        positions = f"SELECT id FROM {qn(Position._meta.db_table)} WHERE account_id IN ({accounts})"  # noqa: S608
        snapshots = f"SELECT id FROM {qn(AccountSnapshot._meta.db_table)} WHERE account_id IN ({accounts})"  # noqa: S608
        like = [f"{PREFIX}%"]
        statements = [
            (PositionEvent, f"position_id IN ({positions})", like),
            (PositionSnapshot, f"snapshot_id IN ({snapshots})", like),
            (AccountSnapshot, f"account_id IN ({accounts})", like),
            (Position, f"account_id IN ({accounts})", like),
            (PerformanceMetrics, f"account_id IN ({accounts})", like),
            (SyncRun, f"account_id IN ({accounts})", like),
            (SyncRun, "account_id IS NULL AND message = %s", [RUN_MARK]),
            (Account.history.model, "account_id LIKE %s", like),
            (Account, "account_id LIKE %s", like),
            (Instrument, "symbol LIKE %s", like),
            (Session, "session_key LIKE %s", [f"{KEY_PREFIX}%"]),
            (TaskLock, "name LIKE %s", [f"{KEY_PREFIX}:%"]),
        ]
        with connection.cursor() as cursor:
            for model, where, params in statements:
                cursor.execute(f"DELETE FROM {qn(model._meta.db_table)} WHERE {where}", params)  # noqa: S608


def _mb(size: int | None) -> float | None:
    return None if size is None else size / MB


def _cell(value: int | float | None) -> str:
    if value is None:
        return f"{'-':>14s}"
    if isinstance(value, int):
        return f"{value:>14,d}"
    return f"{value:>14,.1f}"
