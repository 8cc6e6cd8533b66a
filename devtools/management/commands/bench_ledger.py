"""Benchmark the executions ledger: N fills ingested with everything derived, then ingested again; and
the positions built from them, as portfolio's after-fills task does after such an ingest."""

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import connection

from core.brokers.base import AccountValues, BrokerAccount, BrokerExecution
from core.brokers.contracts import InstrumentSpec
from core.brokers.memory import MemoryBroker
from core.models import SyncRun, SyncStatus
from marketdata.models import Instrument
from portfolio.models import Position, PositionEvent
from portfolio.services.holdings import positions_build_pending
from trading.models import (
    Account,
    CashAccountState,
    CashFlow,
    CashViolation,
    DayTrade,
    Execution,
    LedgerInstrument,
    Lot,
    LotMatch,
    RoundTrip,
    SettlementTracking,
    TradeFrequencyTracking,
)
from trading.services.executions import executions_ingest

ACCOUNT = "BENCHLEDGER"
SYMBOL_PREFIX = "BL"


class Command(BaseCommand):
    help = (
        "Ingest N fills for one account (20 instruments, about a year of sessions, day trades included) with "
        "lots, realized P&L, round trips, settlement, day trades and trade frequency; then ingest the same fills "
        "again. The broker is held in memory so the figures are the ledger's own. Bench data is removed after."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--fills", type=int, default=100_000)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--keep", action="store_true")

    def handle(self, *args, fills: int, seed: int, keep: bool, **options) -> None:
        self._cleanup()
        account = Account.objects.create(account_id=ACCOUNT, name="bench")
        rows = _fills(fills, seed)
        broker = MemoryBroker(
            accounts=[BrokerAccount(ACCOUNT, "MARGIN", "USD", AccountValues())], executions={ACCOUNT: rows}
        )
        self.stdout.write(f"database: {connection.vendor}; {len(rows)} fills, 20 instruments, one account")
        self._timed("first ingest (everything derived)", account, broker)
        self._timed_build("positions from the fills (after-fills)", account)
        self._timed("same fills again (writes nothing)", account, broker)
        self._timed_build("positions again (nothing to build)", account)
        if not keep:
            self._cleanup()

    def _timed(self, label: str, account: Account, broker: MemoryBroker) -> None:
        queries = 0

        def count(execute, sql, params, many, context):
            nonlocal queries
            queries += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            started = time.perf_counter()
            run = executions_ingest(account=account, broker=broker)
            elapsed = time.perf_counter() - started
        note = "" if run.status == SyncStatus.SUCCESS else f"  {run.status}: {run.message}"
        self.stdout.write(
            f"{label:36s} {elapsed:7.2f} s  {queries:6d} queries  created={run.created} updated={run.updated} "
            f"unchanged={run.unchanged}{note}"
        )

    def _timed_build(self, label: str, account: Account) -> None:
        """What the after-fills task does once an ingest committed: build the positions of what changed."""
        queries = 0

        def count(execute, sql, params, many, context):
            nonlocal queries
            queries += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            started = time.perf_counter()
            result = positions_build_pending(account=account)
            elapsed = time.perf_counter() - started
        self.stdout.write(
            f"{label:36s} {elapsed:7.2f} s  {queries:6d} queries  positions created={result.created} "
            f"changed={result.changed} events={result.events_written}"
        )

    @staticmethod
    def _cleanup() -> None:
        bench_account_delete(account_id=ACCOUNT, symbol_prefix=SYMBOL_PREFIX)


def bench_account_delete(*, account_id: str, symbol_prefix: str) -> None:
    """A bench account and everything under it, by plain DELETEs (the ORM's delete would write a history
    row per bench fill); its instruments by symbol prefix."""
    account_ids = list(Account.objects.filter(account_id=account_id).values_list("pk", flat=True))
    if not account_ids:
        return
    tables = [
        m._meta.db_table
        for m in (
            SettlementTracking,
            LotMatch,
            Lot,
            RoundTrip,
            DayTrade,
            TradeFrequencyTracking,
            CashAccountState,
            CashViolation,
            CashFlow,
            SyncRun,
            Execution,
        )
    ]
    positions, events = Position._meta.db_table, PositionEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {events} WHERE position_id IN (SELECT id FROM {positions} WHERE account_id = %s)",  # noqa: S608
            [account_ids[0]],
        )
        for table in (positions, Position.history.model._meta.db_table, LedgerInstrument._meta.db_table):
            cursor.execute(f"DELETE FROM {table} WHERE account_id = %s", [account_ids[0]])  # noqa: S608
        for table in tables:
            cursor.execute(f"DELETE FROM {table} WHERE account_id = %s", [account_ids[0]])  # noqa: S608
        cursor.execute(
            f"DELETE FROM {Execution.history.model._meta.db_table} WHERE account_id = %s",  # noqa: S608
            [account_ids[0]],
        )
    Account.objects.filter(pk__in=account_ids).delete()
    Instrument.objects.filter(symbol__startswith=symbol_prefix).delete()


def _fills(count: int, seed: int) -> list[BrokerExecution]:
    rng = random.Random(seed)
    specs = [InstrumentSpec(symbol=f"{SYMBOL_PREFIX}{i:02d}", con_id=900_000 + i) for i in range(20)]
    position = {s.key: 0 for s in specs}
    price = {s.key: Decimal(rng.randint(20, 400)) for s in specs}
    moment = datetime(2025, 11, 3, 14, 35, tzinfo=UTC)
    out = []
    for n in range(count):
        spec = rng.choice(specs)
        key = spec.key
        qty = rng.choice([1, 5, 10, 25, 50, 100])
        held = position[key]
        # Lean towards closing what is held so positions go flat often (round trips, day trades).
        side = ("SELL" if held > 0 else "BUY") if held and rng.random() < 0.6 else rng.choice(["BUY", "SELL"])
        position[key] += qty if side == "BUY" else -qty
        price[key] = max(Decimal(1), price[key] + Decimal(rng.randint(-50, 50)) / 100)
        moment += timedelta(seconds=rng.randint(5, 90))
        if moment.hour >= 21:  # next weekday, 14:35 UTC
            moment = (moment + timedelta(days=1)).replace(hour=14, minute=35)
            while moment.weekday() >= 5:
                moment += timedelta(days=1)
        out.append(
            BrokerExecution(
                account_id=ACCOUNT,
                exec_id=f"bench.{seed}.{n:07d}",
                instrument=spec,
                side=side,
                quantity=Decimal(qty),
                price=price[key],
                executed_at=moment,
                commission=max(Decimal("1.00"), Decimal(qty) * Decimal("0.005")),
                order_id=n,
                perm_id=1_000_000 + n,
            )
        )
    return out
