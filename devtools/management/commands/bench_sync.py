"""Benchmark the position sync: N accounts x M positions, first sync and steady-state syncs."""

import statistics
import time
from datetime import date
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import connection

from core.brokers.base import AccountValues, BrokerAccount, BrokerPosition
from core.brokers.contracts import InstrumentSpec
from core.brokers.memory import MemoryBroker
from core.models import SyncRun, SyncStatus
from marketdata.models import Instrument
from portfolio.models import AccountStatus, Position, PositionEvent
from portfolio.services.sync import positions_sync_accounts
from trading.models import Account

PREFIX = "BSYNC"  # distinct from the other benchmarks' BENCH... data


class Command(BaseCommand):
    help = (
        "Build N accounts x M positions (account ids BENCH...), then time a first sync, a steady sync "
        "(nothing changed), a sync where every price moved and one where every quantity changed. "
        "The broker is held in memory so the figures are the sync's own. Bench data is removed after."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--accounts", type=int, default=100)
        parser.add_argument("--positions", type=int, default=100, help="positions per account")
        parser.add_argument("--keep", action="store_true", help="keep the bench data afterwards")
        parser.add_argument(
            "--repeat", type=int, default=1, help="build and time everything this many times; print each and the median"
        )

    def handle(self, *args, accounts: int, positions: int, keep: bool, repeat: int, **options) -> None:
        self.figures: dict[str, list[float]] = {}
        for round_ in range(repeat):
            if repeat > 1:
                self.stdout.write(f"-- round {round_ + 1} of {repeat}")
            self._round(accounts, positions, keep=keep and round_ == repeat - 1)
        if repeat > 1:
            self.stdout.write(f"-- seconds over {repeat} rounds (median, best, worst)")
            for label, times in self.figures.items():
                self.stdout.write(f"{label:34s} {statistics.median(times):7.3f} {min(times):7.3f} {max(times):7.3f}")

    def _round(self, accounts: int, positions: int, *, keep: bool) -> None:
        self._cleanup()
        account_rows = [
            BrokerAccount(f"{PREFIX}{i:05d}", "MARGIN", "USD", AccountValues(net_liquidation=Decimal("100000")))
            for i in range(accounts)
        ]
        Account.objects.bulk_create([Account(account_id=a.account_id, name="bench") for a in account_rows])
        broker = MemoryBroker(accounts=account_rows, positions=self._positions(account_rows, positions, "10.00", 0))
        ids = [a.account_id for a in account_rows]
        self.stdout.write(
            f"database: {connection.vendor}; {accounts} accounts x {positions} positions "
            f"= {accounts * positions} positions"
        )
        self._timed("first sync (all new)", broker, ids, accounts)
        self._timed("steady sync (unchanged)", broker, ids, accounts)
        broker.position_rows = self._positions(account_rows, positions, "10.50", 0)
        self._timed("steady sync (every price moved)", broker, ids, accounts)
        broker.position_rows = self._positions(account_rows, positions, "10.50", 5)
        self._timed("sync (every quantity changed)", broker, ids, accounts)
        if not keep:
            self._cleanup()

    @staticmethod
    def _positions(account_rows, per_account: int, price: str, bump: int) -> dict:
        out = {}
        for a in account_rows:
            rows = []
            for j in range(per_account):
                if j % 10 == 9:
                    spec = InstrumentSpec(
                        symbol=f"{PREFIX}O",
                        sec_type="OPT",
                        multiplier=Decimal(100),
                        expiry=date(2027, 1, 15),
                        strike=Decimal(100 + j),
                        right="C",
                    )
                else:
                    spec = InstrumentSpec(symbol=f"{PREFIX}{j:04d}")
                rows.append(BrokerPosition(a.account_id, spec, Decimal(100 + bump), Decimal("9.75"), Decimal(price)))
            out[a.account_id] = rows
        return out

    def _timed(self, label: str, broker, ids: list[str], accounts: int) -> None:
        # Count with an execute wrapper: the debug cursor's SQL formatting would dominate the timing.
        queries = 0

        def count(execute, sql, params, many, context):
            nonlocal queries
            queries += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            started = time.perf_counter()
            runs = positions_sync_accounts(broker=broker, account_ids=ids)
            elapsed = time.perf_counter() - started
        self.figures.setdefault(label, []).append(elapsed)
        failed = [r for r in runs if r.status != SyncStatus.SUCCESS]
        self.stdout.write(
            f"{label:34s} {elapsed:7.3f} s   {queries:6d} queries ({queries / max(accounts, 1):.1f} per account)"
            + (f"   {len(failed)} runs not SUCCESS: {failed[0].message}" if failed else "")
        )

    @staticmethod
    def _cleanup() -> None:
        bench = Account.objects.filter(account_id__startswith=PREFIX)
        PositionEvent.objects.filter(position__account__in=bench).delete()
        Position.objects.filter(account__in=bench).delete()
        AccountStatus.objects.filter(account__in=bench).delete()
        SyncRun.objects.filter(account__in=bench).delete()
        bench.delete()
        Instrument.objects.filter(symbol__startswith=PREFIX).delete()
