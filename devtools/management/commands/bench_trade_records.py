"""Benchmark ``export_trade_records``: build N closed round trips, stream them out, measure memory and speed.

Memory is measured with ``tracemalloc`` (Python allocations: the rows, records and the driver's
buffers), sampled every 10% of the export, so a growing peak would show; the output goes to
/dev/null. Its rows are account BENCHTR's; ``--cleanup`` deletes them.
"""

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

    def handle(self, *args, count: int, fmt: str, reuse: bool, cleanup: bool, **options) -> None:
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
            self._build(account, count)
            self.stdout.write(f"built {count:,} round trips in {time.perf_counter() - started:.1f} s")
        total = RoundTrip.objects.filter(account=account).count()
        step = max(1, total // 10)
        peaks: list[int] = []

        def sampled():
            for n, record in enumerate(trade_records_iter(account_id=ACCOUNT), 1):
                if n % step == 0:
                    peaks.append(tracemalloc.get_traced_memory()[1])
                yield record

        tracemalloc.start()
        started = time.perf_counter()
        written = write_records(sampled(), _Null(), fmt)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        mib = [f"{p / 2**20:.1f}" for p in peaks]
        self.stdout.write(
            f"exported {written:,} records ({fmt}) in {elapsed:.1f} s ({written / elapsed:,.0f}/s); "
            f"peak traced memory {peak / 2**20:.1f} MiB; peak at each 10%: {', '.join(mib)} MiB"
        )

    def _build(self, account: Account, count: int) -> None:
        instrument = instrument_get_or_create(spec=InstrumentSpec(symbol="BTRX"))
        start = datetime(2025, 1, 2, 15, tzinfo=UTC)
        with transaction.atomic():
            fills = []
            for n, side in enumerate((Side.BUY, Side.SELL)):
                fills.append(
                    Execution.objects.create(
                        broker="bench",
                        exec_id=f"BENCHTR-{n}",
                        account=account,
                        instrument=instrument,
                        side=side,
                        quantity=Decimal(10),
                        price=Decimal(100),
                        commission=Decimal(1),
                        executed_at=start,
                        trade_date=start.date(),
                        source=ExecutionSource.API,
                    )
                )
        fields = ROUND_TRIP_COLUMNS
        for first in range(0, count, CHUNK):
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
