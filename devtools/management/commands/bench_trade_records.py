"""Benchmark ``export_trade_records``: build N closed round trips, stream them out, measure memory and speed.

Memory: the process's resident set size (``/proc/self/statm``) sampled at every 10% of the export, so
growth would show, and its peak; with ``--tracemalloc`` also Python's own allocations (the rows, records
and the driver's buffers), which slows the export several times (the rate is then not the real one).
The output goes to /dev/null. Its rows are account BENCHTR's; a second run with a larger ``--count``
adds the difference; ``--cleanup`` deletes them.
"""

import os
import resource
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from core.brokers.contracts import InstrumentSpec
from core.bulk import bulk_insert
from marketdata.services import instrument_get_or_create
from trading.management.commands.export_trade_records import write_records
from trading.models import Account, AccountMode, Execution, ExecutionSource, RoundTrip, Side
from trading.selectors import trade_records_iter
from trading.services.ledger import ROUND_TRIP_COLUMNS

ACCOUNT = "BENCHTR"
CHUNK = 50_000


class _Null:
    def write(self, text: str) -> int:
        return len(text)


class Command(BaseCommand):
    help = "Build N round trips for account BENCHTR and time export_trade_records over them, with peak memory."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--count", type=int, default=1_000_000)
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", dest="fmt")
        parser.add_argument("--reuse", action="store_true", help="export the rows a previous run built")
        parser.add_argument("--cleanup", action="store_true")
        parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slow)")

    def handle(self, *args, count: int, fmt: str, reuse: bool, cleanup: bool, **options) -> None:
        trace = options["tracemalloc"]
        account, _ = Account.objects.get_or_create(
            account_id=ACCOUNT, defaults={"mode": AccountMode.PAPER, "name": "trade record bench"}
        )
        if cleanup:
            RoundTrip.objects.filter(account=account).delete()
            Execution.objects.filter(account=account).delete()
            self.stdout.write("bench rows deleted")
            return
        if not reuse:
            started = time.perf_counter()
            built = self._build(account, count)
            self.stdout.write(f"built {built:,} round trips in {time.perf_counter() - started:.1f} s")
        total = RoundTrip.objects.filter(account=account).count()
        step = max(1, total // 10)
        rss: list[int] = []
        traced: list[int] = []

        def sampled():
            for n, record in enumerate(trade_records_iter(account_id=ACCOUNT), 1):
                if n % step == 0:
                    rss.append(_rss())
                    if trace:
                        traced.append(tracemalloc.get_traced_memory()[1])
                yield record

        if trace:
            tracemalloc.start()
        before = _rss()
        started = time.perf_counter()
        written = write_records(sampled(), _Null(), fmt)
        elapsed = time.perf_counter() - started
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        line = (
            f"exported {written:,} records ({fmt}) in {elapsed:.1f} s ({written / elapsed:,.0f}/s); "
            f"RSS before {before / 2**20:.1f} MiB, at each 10%: {', '.join(f'{r / 2**20:.1f}' for r in rss)} MiB; "
            f"peak RSS {peak_rss / 2**20:.1f} MiB"
        )
        if trace:
            line += (
                f"; peak traced {tracemalloc.get_traced_memory()[1] / 2**20:.1f} MiB, at each 10%: "
                f"{', '.join(f'{p / 2**20:.1f}' for p in traced)} MiB"
            )
            tracemalloc.stop()
        self.stdout.write(line)

    def _build(self, account: Account, count: int) -> int:
        """Round trips up to ``count`` in all: a larger count than the last run's adds the difference."""
        instrument = instrument_get_or_create(spec=InstrumentSpec(symbol="BTRX"))
        start = datetime(2025, 1, 2, 15, tzinfo=UTC)
        with transaction.atomic():
            fills = []
            for n, side in enumerate((Side.BUY, Side.SELL)):
                fill, _ = Execution.objects.get_or_create(
                    broker="bench",
                    exec_id=f"BENCHTR-{n}",
                    defaults={
                        "account": account,
                        "instrument": instrument,
                        "side": side,
                        "quantity": Decimal(10),
                        "price": Decimal(100),
                        "commission": Decimal(1),
                        "executed_at": start,
                        "trade_date": start.date(),
                        "source": ExecutionSource.API,
                    },
                )
                fills.append(fill)
        fields = ROUND_TRIP_COLUMNS
        existing = RoundTrip.objects.filter(account=account).count()
        for first in range(existing, count, CHUNK):
            rows = []
            for n in range(first, min(count, first + CHUNK)):
                opened = start + timedelta(minutes=n)
                pnl = Decimal((n % 7) - 3)
                outcome = "WIN" if pnl > 0 else "LOSS" if pnl < 0 else "BREAKEVEN"
                rows.append(
                    (
                        account.pk,
                        instrument.pk,
                        "LONG",
                        opened,
                        opened + timedelta(seconds=90),
                        Decimal(10),
                        Decimal(100),
                        Decimal(100) + pnl / 10,
                        pnl - 2,
                        Decimal(2),
                        outcome,
                        90,
                        fills[0].pk,
                        fills[1].pk,
                    )
                )
            with transaction.atomic():
                bulk_insert(RoundTrip, fields, rows)
        return max(0, count - existing)


def _rss() -> int:
    """The resident set size now, in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
