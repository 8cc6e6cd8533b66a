"""Benchmark the performance metrics: one account with N round trips and M hourly snapshots."""

import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import islice

from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone

from core.brokers.contracts import InstrumentSpec
from core.bulk import bulk_insert
from marketdata.models import Instrument
from portfolio.models import AccountSnapshot, PerformanceMetrics, SnapshotKind, SnapshotSource
from portfolio.services.metrics import metrics_compute, metrics_compute_series
from trading.calendars import nyse_sessions, session_close, trade_date_of
from trading.models import (
    Account,
    CashFlow,
    CashFlowKind,
    Execution,
    ExecutionSource,
    RiskEvent,
    RoundTrip,
    RoundTripDirection,
    RoundTripOutcome,
    Side,
)
from trading.services.ledger import ROUND_TRIP_COLUMNS

ACCOUNT = "BENCHMETRICS"
SYMBOL = "BENCHMETRICS"
CHUNK = 100_000


class Command(BaseCommand):
    help = (
        "Build one account (BENCHMETRICS) with N round trips and M hourly account snapshots (with deposits and "
        "withdrawals), time metrics_compute for its last day, and remove the bench data after."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--round-trips", type=int, default=1_000_000)
        parser.add_argument("--snapshots", type=int, default=100_000)
        parser.add_argument("--seed", type=int, default=11)
        parser.add_argument("--series", action="store_true", help="also time metrics_compute_series (a backfill)")
        parser.add_argument("--keep", action="store_true", help="keep the bench data afterwards")

    def handle(self, *args, round_trips: int, snapshots: int, seed: int, series: bool, keep: bool, **options) -> None:
        self._cleanup()
        rng = random.Random(seed)
        started = time.perf_counter()
        account = Account.objects.create(account_id=ACCOUNT, name="bench")
        instrument = Instrument.objects.create(key=InstrumentSpec(symbol=SYMBOL).key, symbol=SYMBOL)
        end = timezone.now().replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(hours=snapshots - 1)
        flows = self._build_snapshots(account, start, snapshots, rng)
        self._build_round_trips(account, instrument, start, end, round_trips, rng)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # what autovacuum would have done after such a load
                cursor.execute(f"ANALYZE {RoundTrip._meta.db_table}")
                cursor.execute(f"ANALYZE {AccountSnapshot._meta.db_table}")
        as_of = AccountSnapshot.objects.filter(account=account).latest("taken_at").trade_date
        self.stdout.write(
            f"database: {connection.vendor}; {round_trips:,} round trips, {snapshots:,} hourly snapshots "
            f"({start:%Y-%m-%d} to {end:%Y-%m-%d}), {flows} deposits/withdrawals; built in "
            f"{time.perf_counter() - started:.1f} s"
        )
        self._timed("metrics_compute (first run)", lambda: metrics_compute(account=account, as_of=as_of))
        rows = self._timed("metrics_compute (again)", lambda: metrics_compute(account=account, as_of=as_of))
        for row in rows:
            self.stdout.write(
                f"  {row.window:>3}: twr={row.twr} max_dd={row.max_drawdown} mwr={row.mwr} sharpe={row.sharpe} "
                f"trips={row.round_trips} win_rate={row.win_rate} pf={row.profit_factor} "
                f"max_losses={row.max_consecutive_losses}"
            )
        if series:
            written = self._timed("metrics_compute_series (backfill)", lambda: metrics_compute_series(account=account))
            self.stdout.write(f"  {len(written):,} rows")
        if not keep:
            self._cleanup()

    def _timed(self, label: str, call):
        # Count with an execute wrapper: the debug cursor's SQL formatting would distort the timing.
        queries = 0

        def count(execute, sql, params, many, context):
            nonlocal queries
            queries += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            started = time.perf_counter()
            result = call()
            elapsed = time.perf_counter() - started
        self.stdout.write(f"{label:36s} {elapsed:7.3f} s  {queries:4d} queries")
        return result

    @staticmethod
    def _build_snapshots(account: Account, start: datetime, count: int, rng: random.Random) -> int:
        """Hourly values: a random walk while the market is open, a deposit or withdrawal every few weeks."""
        first_day = trade_date_of(start)
        last_day = trade_date_of(start + timedelta(hours=count - 1))
        closes = {session_close(day) for day in nyse_sessions(first_day, last_day)}
        value = Decimal("100000")
        snapshot_rows, flow_rows = [], []
        for hour in range(count):
            at = start + timedelta(hours=hour)
            if at.weekday() < 5 and 14 <= at.hour <= 21:
                value = (value * Decimal(1 + rng.gauss(0.00002, 0.002))).quantize(Decimal("0.01"))
            if hour % (24 * 30) == 12:
                kind = CashFlowKind.WITHDRAWAL if hour % (24 * 90) == 12 else CashFlowKind.DEPOSIT
                amount = Decimal("3000") if kind == CashFlowKind.WITHDRAWAL else Decimal("5000")
                value += amount if kind == CashFlowKind.DEPOSIT else -amount
                flow_rows.append(
                    (
                        account.pk,
                        f"bench-{hour}",
                        kind,
                        amount,
                        "USD",
                        at - timedelta(minutes=30),
                        ExecutionSource.STAFF,
                        "",
                    )
                )
            snapshot_rows.append(
                (
                    account.pk,
                    at,
                    SnapshotKind.CLOSE if at in closes else SnapshotKind.HOURLY,
                    trade_date_of(at),
                    SnapshotSource.BROKER,
                    "USD",
                    value,
                    Decimal(0),
                    0,
                    "",
                )
            )
        bulk_insert(
            AccountSnapshot,
            [
                "account_id",
                "taken_at",
                "kind",
                "trade_date",
                "source",
                "currency",
                "net_liquidation",
                "positions_value",
                "positions_count",
                "note",
            ],
            snapshot_rows,
        )
        bulk_insert(
            CashFlow, ["account_id", "flow_id", "kind", "amount", "currency", "at", "source", "note"], flow_rows
        )
        return len(flow_rows)

    @staticmethod
    def _build_round_trips(
        account: Account, instrument: Instrument, start: datetime, end: datetime, count: int, rng: random.Random
    ) -> None:
        """``count`` trips closing evenly over the period, all pointing at one opening and one closing fill."""
        opening, closing = (
            Execution.objects.create(
                broker="bench",
                exec_id=f"{ACCOUNT}.{side}",
                account=account,
                instrument=instrument,
                side=side,
                quantity=Decimal(100),
                price=Decimal(10),
                executed_at=start,
                trade_date=trade_date_of(start),
                source=ExecutionSource.STAFF,
            )
            for side in (Side.BUY, Side.SELL)
        )
        step = (end - start) / max(count, 1)

        def rows() -> Iterator[tuple]:
            for n in range(count):
                closed_at = start + step * (n + 1)
                pnl = Decimal(round(rng.gauss(5, 100), 2))
                outcome = (
                    RoundTripOutcome.WIN
                    if pnl > 0
                    else RoundTripOutcome.LOSS
                    if pnl < 0
                    else RoundTripOutcome.BREAKEVEN
                )
                yield (
                    account.pk,
                    instrument.pk,
                    RoundTripDirection.LONG,
                    closed_at - timedelta(minutes=5),
                    closed_at,
                    Decimal(100),
                    Decimal(10),
                    Decimal(10) + pnl / 100,
                    pnl,
                    Decimal(2),
                    outcome,
                    300,
                    opening.pk,
                    closing.pk,
                )

        source = rows()
        while chunk := list(islice(source, CHUNK)):
            bulk_insert(RoundTrip, ROUND_TRIP_COLUMNS, chunk)

    @staticmethod
    def _cleanup() -> None:
        """Plain DELETEs: the ORM would cascade row by row and write history rows for the bench data."""
        account_ids = list(Account.objects.filter(account_id=ACCOUNT).values_list("pk", flat=True))
        if account_ids:
            tables = [
                m._meta.db_table
                for m in (RoundTrip, AccountSnapshot, PerformanceMetrics, RiskEvent, CashFlow, Execution)
            ] + [CashFlow.history.model._meta.db_table, Execution.history.model._meta.db_table]
            with connection.cursor() as cursor:
                for table in tables:
                    cursor.execute(f"DELETE FROM {table} WHERE account_id = %s", [account_ids[0]])  # noqa: S608
            Account.objects.filter(pk__in=account_ids).delete()
        Instrument.objects.filter(symbol=SYMBOL).delete()
