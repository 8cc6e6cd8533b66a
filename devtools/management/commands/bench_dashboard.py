"""Benchmark the dashboard pages: render them server-side against a big database and count their queries."""

import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from itertools import islice
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from core.brokers.contracts import InstrumentSpec
from core.bulk import bulk_insert
from core.models import SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus
from devtools.management.commands.bench_retention import METRICS_FIELDS
from marketdata.models import Instrument
from portfolio.models import (
    AccountSnapshot,
    AccountStatus,
    MetricsWindow,
    PerformanceMetrics,
    Position,
    PositionEvent,
    PositionSnapshot,
    PositionStatus,
    SnapshotKind,
    SnapshotSource,
)
from trading.models import Account, CashFlow, CashFlowKind, Execution, ExecutionSource, Side

PREFIX = "BENCHD"  # accounts and instruments
USERNAME = "benchd-trader"
BROKER = "benchd"  # the fills' exec_id namespace, so no real fill can collide with a bench one
PAGES = ["overview", "positions", "trades", "compliance", "performance", "sync-health"]
CHUNK = 100_000  # fills per COPY: keeps the tuples of one chunk, not of a million, in memory
RUNS_PER_ACCOUNT = 20
METRICS_DAYS = 60
TARGET_MS = 50
ZERO = Decimal(0)


@dataclass(frozen=True)
class PageFigures:
    median_ms: float
    p95_ms: float
    queries: int  # the same for every render, or the largest seen (see ``varied``)
    varied: bool


class Command(BaseCommand):
    help = (
        "Build a big dashboard database (account ids BENCHD...: by default 100 accounts x 100 open positions, "
        "1,000,000 fills, 100,000 account snapshots, daily metrics and sync runs), render every dashboard page "
        "server-side N times as a trader of one account (median and p95 ms, queries per page), double that "
        "account's data and render again to show the query count does not grow with it. Meant for "
        "PostgreSQL (fills go in with COPY). Bench data is removed after with plain DELETEs."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--accounts", type=int, default=100)
        parser.add_argument("--positions", type=int, default=100, help="open positions per account")
        parser.add_argument("--fills", type=int, default=1_000_000, help="fills in all, spread over the accounts")
        parser.add_argument("--snapshots", type=int, default=100_000, help="account snapshots in all")
        parser.add_argument("--renders", type=int, default=50, help="timed renders of each page")
        parser.add_argument("--keep", action="store_true", help="keep the bench data afterwards")

    def handle(self, *args, accounts: int, positions: int, fills: int, snapshots: int, renders: int, keep: bool, **_):
        if min(accounts, positions, renders) < 1 or min(fills, snapshots) < 0:
            raise CommandError("--accounts, --positions and --renders must be at least 1; sizes not negative")
        self._cleanup()
        try:
            self._run(accounts=accounts, positions=positions, fills=fills, snapshots=snapshots, renders=renders)
        finally:
            if not keep:
                started = time.perf_counter()
                self._cleanup()
                self.stdout.write(f"bench data removed in {time.perf_counter() - started:.1f} s")

    # --- the benchmark ---------------------------------------------------------------------------
    def _run(self, *, accounts: int, positions: int, fills: int, snapshots: int, renders: int) -> None:
        started = time.perf_counter()
        self.now = timezone.now().replace(microsecond=0)
        self.zone = ZoneInfo(settings.EXCHANGE_TIME_ZONE)
        account_pks = self._accounts(accounts)
        instrument_pks = self._instruments(positions, tag="")
        target = account_pks[0]
        user = get_user_model().objects.create_user(username=USERNAME, password=None)
        Account.users.through.objects.create(account_id=target, user_id=user.pk)

        per_account_fills = fills // accounts
        per_account_snapshots = snapshots // accounts
        self._positions(account_pks, instrument_pks)
        self._fills(account_pks, instrument_pks, count=fills, first=0)
        self._snapshots(account_pks, per_account=per_account_snapshots, skip_hours=0)
        self._metrics(account_pks, skip_days=0)
        self._runs(account_pks, skip=0)
        self._cash_flows(account_pks, first=0)
        self._analyze()
        target_id = Account.objects.get(pk=target).account_id
        self.stdout.write(
            f"database: {connection.vendor}; {accounts} accounts x {positions} open positions, {fills:,} fills, "
            f"{snapshots:,} snapshots, built in {time.perf_counter() - started:.1f} s"
        )
        self.stdout.write(
            f"pages of {target_id} ({per_account_fills:,} fills, {per_account_snapshots:,} snapshots, "
            f"{positions} positions, {RUNS_PER_ACCOUNT} sync runs, {METRICS_DAYS} metrics days), "
            f"{renders} renders each, DEBUG off"
        )
        client = Client()
        client.force_login(user)
        try:
            before = self._measure(client, renders)
            self._report(before)

            # Twice the data for the same account: more fills, snapshots, positions, runs and metrics days.
            extra = self._instruments(positions, tag="X")
            self._positions([target], extra)
            self._fills([target], instrument_pks + extra, count=per_account_fills, first=fills)
            self._snapshots([target], per_account=per_account_snapshots, skip_hours=per_account_snapshots)
            self._metrics([target], skip_days=METRICS_DAYS)
            self._runs([target], skip=RUNS_PER_ACCOUNT)
            self._cash_flows([target], first=1)
            self._analyze()
            self.stdout.write(
                f"{target_id} doubled ({2 * per_account_fills:,} fills, {2 * per_account_snapshots:,} snapshots, "
                f"{2 * positions} positions, {2 * RUNS_PER_ACCOUNT} sync runs, {2 * METRICS_DAYS} metrics days):"
            )
            after = self._measure(client, renders)
            self._report(after, before=before)
        finally:
            client.logout()  # the session row

        changed = [
            f"{page} {before[page].queries} -> {after[page].queries}" for page in PAGES if _changed(before, after, page)
        ]
        self.stdout.write(
            "queries per page independent of data size: "
            + ("yes" if not changed else "NO (" + ", ".join(changed) + ")")
        )
        overview = before["overview"].median_ms
        verdict = "met" if overview <= TARGET_MS else "MISSED"
        self.stdout.write(f"target: overview median {overview:.1f} ms <= {TARGET_MS} ms: {verdict}")

    def _measure(self, client: Client, renders: int) -> dict[str, PageFigures]:
        figures = {}
        # Production settings for the timing: DEBUG keeps every SQL statement in connection.queries.
        with override_settings(DEBUG=False):
            for page in PAGES:
                url = reverse(page)
                self._get(client, url)  # warm-up: template compilation, first-use imports
                times, counts = [], []
                for _ in range(renders):
                    queries = 0

                    def count(execute, sql, params, many, context):
                        nonlocal queries
                        queries += 1
                        return execute(sql, params, many, context)

                    with connection.execute_wrapper(count):
                        started = time.perf_counter()
                        self._get(client, url)
                        times.append((time.perf_counter() - started) * 1000)
                    counts.append(queries)
                figures[page] = PageFigures(
                    median_ms=statistics.median(times),
                    p95_ms=_p95(times),
                    queries=max(counts),
                    varied=len(set(counts)) > 1,
                )
        return figures

    @staticmethod
    def _get(client: Client, url: str) -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise CommandError(f"GET {url} answered {response.status_code}")
        response.content  # noqa: B018 - a streamed page would render here

    def _report(self, figures: dict[str, PageFigures], before: dict[str, PageFigures] | None = None) -> None:
        self.stdout.write(f"  {'page':12s} {'median ms':>10s} {'p95 ms':>8s} {'queries':>8s}")
        for page, f in figures.items():
            note = " (varies between renders)" if f.varied else ""
            if before is not None:
                note += f"  was {before[page].queries}" + (" CHANGED" if _changed(before, figures, page) else ", same")
            self.stdout.write(f"  {page:12s} {f.median_ms:10.1f} {f.p95_ms:8.1f} {f.queries:8d}{note}")

    # --- data --------------------------------------------------------------------------------------
    def _accounts(self, count: int) -> list[int]:
        Account.objects.bulk_create([Account(account_id=f"{PREFIX}{i:05d}", name="bench") for i in range(count)])
        return list(
            Account.objects.filter(account_id__startswith=PREFIX).order_by("account_id").values_list("pk", flat=True)
        )

    def _instruments(self, count: int, *, tag: str) -> list[int]:
        symbols = [f"{PREFIX}{tag}{j:04d}" for j in range(count)]
        Instrument.objects.bulk_create(
            [Instrument(symbol=symbol, key=InstrumentSpec(symbol=symbol).key, exchange="SMART") for symbol in symbols]
        )
        by_symbol = dict(Instrument.objects.filter(symbol__in=symbols).values_list("symbol", "pk"))
        return [by_symbol[symbol] for symbol in symbols]

    def _positions(self, account_pks: list[int], instrument_pks: list[int]) -> None:
        opened = self.now - timedelta(days=30)
        fields = [
            "account_id",
            "instrument_id",
            "status",
            "quantity",
            "average_price",
            "current_price",
            "market_value",
            "unrealized_pnl",
            "unrealized_pnl_pct",
            "realized_pnl",
            "realized_pnl_estimated",
            "opened_at",
            "last_synced_at",
        ]
        rows = []
        for account in account_pks:
            for n, instrument in enumerate(instrument_pks):
                quantity = Decimal(10 + n % 90)
                average, price = Decimal(100 + n % 50), Decimal(100 + n % 50) + Decimal(n % 7 - 3)
                pnl = (price - average) * quantity
                rows.append(
                    (
                        account,
                        instrument,
                        PositionStatus.OPEN,
                        quantity,
                        average,
                        price,
                        price * quantity,
                        pnl,
                        (pnl / (average * quantity)).quantize(Decimal("0.00000001")),
                        ZERO,
                        False,
                        opened,
                        self.now,
                    )
                )
        bulk_insert(Position, fields, rows)
        AccountStatus.objects.bulk_create(
            [
                AccountStatus(
                    account_id=account,
                    net_liquidation=Decimal("250000.00"),
                    total_cash=Decimal("40000.00"),
                    settled_cash=Decimal("39000.00"),
                    buying_power=Decimal("500000.00"),
                    day_trades_remaining=3,
                    read_at=self.now,
                )
                for account in account_pks
            ],
            ignore_conflicts=True,  # doubling: the account already has its row
        )

    def _fills(self, account_pks: list[int], instrument_pks: list[int], *, count: int, first: int) -> None:
        fields = [
            "broker",
            "exec_id",
            "account_id",
            "instrument_id",
            "order_id",
            "perm_id",
            "side",
            "quantity",
            "price",
            "commission",
            "commission_currency",
            "exchange",
            "executed_at",
            "trade_date",
            "settlement_date",
            "realized_pnl",
            "source",
            "raw",
            "staff_fields",
            "broker_disagreement",
            "created_at",
            "updated_at",
        ]
        rows = self._fill_rows(account_pks, instrument_pks, count=count, first=first)
        while chunk := list(islice(rows, CHUNK)):
            bulk_insert(Execution, fields, chunk)

    def _fill_rows(self, account_pks: list[int], instrument_pks: list[int], *, count: int, first: int) -> Iterator:
        """A year of fills, oldest first, dealt round the accounts; each account's go round its instruments."""
        span = timedelta(days=365).total_seconds()
        commission = Decimal("1.00")
        for n in range(count):
            index = first + n
            account = account_pks[n % len(account_pks)]
            instrument = instrument_pks[(n // len(account_pks)) % len(instrument_pks)]
            at = self.now - timedelta(seconds=span * (count - n) / count)
            trade_date = at.astimezone(self.zone).date()
            sell = n % 2 == 1
            yield (
                BROKER,
                f"{BROKER}.{index:09d}",
                account,
                instrument,
                index,
                index,
                Side.SELL if sell else Side.BUY,
                Decimal(1 + n % 100),
                Decimal(100 + n % 50) + Decimal(n % 100) / 100,
                commission,
                "USD",
                "SMART",
                at,
                trade_date,
                trade_date + timedelta(days=1),
                Decimal(n % 41 - 20) if sell else None,
                ExecutionSource.API,
                {},
                [],
                {},
                self.now,
                self.now,
            )

    def _snapshots(self, account_pks: list[int], *, per_account: int, skip_hours: int) -> None:
        fields = [
            "account_id",
            "taken_at",
            "kind",
            "trade_date",
            "source",
            "currency",
            "net_liquidation",
            "total_cash",
            "unrealized_pnl",
            "positions_value",
            "positions_count",
            "note",
        ]
        hour = self.now.replace(minute=0, second=0)
        moments = [hour - timedelta(hours=skip_hours + k) for k in range(per_account)]
        dates = [moment.astimezone(self.zone).date() for moment in moments]
        rows = (
            (
                account,
                moment,
                SnapshotKind.HOURLY,
                day,
                SnapshotSource.BROKER,
                "USD",
                Decimal(250_000 - k % 1000),
                Decimal("40000.00"),
                Decimal(k % 500 - 250),
                Decimal(210_000 - k % 1000),
                100,
                "",
            )
            for account in account_pks
            for k, (moment, day) in enumerate(zip(moments, dates, strict=True))
        )
        while chunk := list(islice(rows, CHUNK)):
            bulk_insert(AccountSnapshot, fields, chunk)

    def _metrics(self, account_pks: list[int], *, skip_days: int) -> None:
        fields = METRICS_FIELDS
        today = self.now.astimezone(self.zone).date()
        rows = []
        for account in account_pks:
            for day in range(skip_days, skip_days + METRICS_DAYS):
                index = Decimal(1) + Decimal(METRICS_DAYS * 2 - day) / 1000
                for window in (MetricsWindow.ALL, MetricsWindow.LAST_20):
                    rows.append(
                        (
                            account,
                            today - timedelta(days=day + 1),
                            window,
                            Decimal("0.001"),
                            index - 1,
                            index,
                            Decimal("-0.01") if day % 9 == 0 else ZERO,
                            Decimal("-0.05"),
                            Decimal("250.00"),
                            20 if window == MetricsWindow.LAST_20 else 400,
                            Decimal("0.55"),
                            Decimal("12.50"),
                            Decimal("9000.00"),
                            Decimal("-4000.00"),
                            1,
                            5,
                            self.now,
                        )
                    )
        bulk_insert(PerformanceMetrics, fields, rows)

    def _runs(self, account_pks: list[int], *, skip: int) -> None:
        """Every five minutes back from now; one in ten SKIPPED because the broker did not answer."""
        fields = [
            "kind",
            "account_id",
            "reason",
            "status",
            "started_at",
            "finished_at",
            "duration_ms",
            "created",
            "updated",
            "closed",
            "unchanged",
            "warnings",
            "message",
            "skip_reason",
        ]
        rows = []
        for account in account_pks:
            for k in range(skip, skip + RUNS_PER_ACCOUNT):
                at = self.now - timedelta(minutes=5 * k, seconds=30)
                down = k % 10 == 5
                rows.append(
                    (
                        SyncKind.POSITIONS,
                        account,
                        SyncReason.SCHEDULE,
                        SyncStatus.SKIPPED if down else SyncStatus.SUCCESS,
                        at,
                        at + timedelta(milliseconds=120),
                        120,
                        0,
                        3,
                        0,
                        97,
                        [],
                        "broker unreachable: bench" if down else "100 broker rows; 3 events",
                        SkipReason.BROKER_UNREACHABLE if down else SkipReason.NONE,
                    )
                )
        bulk_insert(SyncRun, fields, rows)

    def _cash_flows(self, account_pks: list[int], *, first: int) -> None:
        fields = ["account_id", "flow_id", "kind", "amount", "currency", "at", "source", "note"]
        rows = [
            (account, f"{BROKER}-{first}-{k}", CashFlowKind.DEPOSIT, Decimal("5000.00"), "USD", at, "API", "")
            for account in account_pks
            for k, at in enumerate((self.now - timedelta(days=200 + first), self.now - timedelta(hours=2 + first)))
        ]
        bulk_insert(CashFlow, fields, rows)

    @staticmethod
    def _analyze() -> None:
        """Planner statistics and a visibility map, as autovacuum gives a table this size in production.

        A table just filled by COPY has neither: its COUNTs would read the heap instead of an index.
        VACUUM cannot run inside a transaction (a test's), where ANALYZE alone has to do.
        """
        if connection.vendor != "postgresql":
            return
        models = (Execution, AccountSnapshot, Position, SyncRun, PerformanceMetrics, CashFlow, AccountStatus)
        command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            for model in models:
                cursor.execute(f"{command} {connection.ops.quote_name(model._meta.db_table)}")

    # --- clean-up ----------------------------------------------------------------------------------
    @staticmethod
    def _cleanup() -> None:
        """Plain DELETEs: the ORM's cascade would load a million fills and write history rows for them."""
        qn = connection.ops.quote_name
        accounts = f"SELECT id FROM {qn(Account._meta.db_table)} WHERE account_id LIKE %s"  # noqa: S608
        like = [f"{PREFIX}%"]
        by_account = [
            PositionEvent,  # through their position, below
            PositionSnapshot,  # through their snapshot, below
            Position,
            Position.history.model,
            AccountSnapshot,
            AccountStatus,
            PerformanceMetrics,
            SyncRun,
            CashFlow,
            CashFlow.history.model,
            Execution,
            Execution.history.model,
        ]
        with connection.cursor() as cursor:
            for model in by_account:
                table = qn(model._meta.db_table)
                if model is PositionEvent:
                    positions = f"SELECT id FROM {qn(Position._meta.db_table)} WHERE account_id IN ({accounts})"  # noqa: S608
                    cursor.execute(f"DELETE FROM {table} WHERE position_id IN ({positions})", like)  # noqa: S608
                elif model is PositionSnapshot:
                    owners = f"SELECT id FROM {qn(AccountSnapshot._meta.db_table)} WHERE account_id IN ({accounts})"  # noqa: S608
                    cursor.execute(f"DELETE FROM {table} WHERE snapshot_id IN ({owners})", like)  # noqa: S608
                else:
                    cursor.execute(f"DELETE FROM {table} WHERE account_id IN ({accounts})", like)  # noqa: S608
            users = qn(Account.users.through._meta.db_table)
            cursor.execute(f"DELETE FROM {users} WHERE account_id IN ({accounts})", like)  # noqa: S608
            cursor.execute(f"DELETE FROM {qn(Account.history.model._meta.db_table)} WHERE account_id LIKE %s", like)  # noqa: S608
            cursor.execute(f"DELETE FROM {qn(Account._meta.db_table)} WHERE account_id LIKE %s", like)  # noqa: S608
            cursor.execute(f"DELETE FROM {qn(Instrument._meta.db_table)} WHERE symbol LIKE %s", like)  # noqa: S608
        get_user_model().objects.filter(username=USERNAME).delete()


def _p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile: a value that was measured, never an interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _changed(before: dict[str, PageFigures], after: dict[str, PageFigures], page: str) -> bool:
    return after[page].queries != before[page].queries or after[page].varied or before[page].varied
