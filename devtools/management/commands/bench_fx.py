"""Benchmark the exchange-rate backfill: N currency pairs x Y years of daily rates, first and steady runs."""

import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone

from core.brokers.base import FxDay
from core.brokers.memory import MemoryBroker
from core.models import SyncStatus
from marketdata.models import FxRate, Instrument
from marketdata.services.fx import fx_rates_sync, fx_trading_days
from trading.calendars import trade_date_of
from trading.models import Account, Execution

PREFIX = "BFX"
# Made-up currency codes (no real pair is touched): the bench accounts' base, and one code per pair.
BASE = "QZZ"


def _code(i: int) -> str:
    return "Q" + chr(ord("A") + i // 26) + chr(ord("A") + i % 26)


class Command(BaseCommand):
    help = (
        "Build N accounts in a made-up base currency, each with a fill Y years ago in its own made-up currency, "
        "then time the backfill of their daily rates from a broker held in memory: first run (every day asked), "
        "steady run (nothing missing, nothing asked) and a run with one day missing per pair. Every pair the "
        "ledger holds is backfilled, so run it on a database without other fills. Bench data is removed after."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--pairs", type=int, default=20)
        parser.add_argument("--years", type=int, default=2)
        parser.add_argument("--repeat", type=int, default=3)

    def handle(self, *args, pairs: int, years: int, repeat: int, **options) -> None:
        figures: dict[str, list[float]] = {}
        for round_ in range(repeat):
            for label, seconds in self._round(pairs, years).items():
                figures.setdefault(label, []).append(seconds)
                self.stdout.write(f"round {round_ + 1}: {label:40s} {seconds:7.3f} s")
        self.stdout.write(f"-- {connection.vendor}; seconds over {repeat} rounds (median, best, worst)")
        for label, times in figures.items():
            self.stdout.write(f"{label:40s} {statistics.median(times):7.3f} {min(times):7.3f} {max(times):7.3f}")

    def _round(self, pairs: int, years: int) -> dict[str, float]:
        self._cleanup()
        now = timezone.now()
        first = now - timedelta(days=365 * years)
        days = fx_trading_days(first.date(), now.date() - timedelta(days=1))
        history, fills = [], []
        for i in range(pairs):
            code = _code(i)
            account = Account.objects.create(account_id=f"{PREFIX}{i:04d}", name="bench", base_currency=BASE)
            instrument = Instrument.objects.create(symbol=f"{PREFIX}{i}", currency=code, key=f"{PREFIX}:{i}")
            fills.append(
                Execution(
                    exec_id=f"{PREFIX}-{i}",
                    account=account,
                    instrument=instrument,
                    side="BUY",
                    quantity=Decimal(1),
                    price=Decimal(1),
                    executed_at=datetime.combine(first.date(), datetime.min.time(), tzinfo=UTC),
                    trade_date=trade_date_of(first),
                )
            )
            history += [FxDay(currency=code, base=BASE, day=d, rate=Decimal("1.1") + i) for d in days]
        Execution.objects.bulk_create(fills)
        broker = MemoryBroker(accounts=[], fx_history=history)
        figures = {}
        for label in ("first run (every day asked)", "steady run (nothing asked)"):
            started = time.perf_counter()
            run = fx_rates_sync(broker=broker, now=now)
            figures[label] = time.perf_counter() - started
            assert run.status == SyncStatus.SUCCESS, run.message
        self.stdout.write(f"{len(broker.fx_requests)} requests, {FxRate.objects.filter(base=BASE).count()} rates")
        middle = days[len(days) // 2]
        FxRate.objects.filter(base=BASE, day=middle).delete()
        started = time.perf_counter()
        fx_rates_sync(broker=broker, now=now)
        figures["one day missing per pair"] = time.perf_counter() - started
        self._cleanup()
        return figures

    def _cleanup(self) -> None:
        Execution.objects.filter(exec_id__startswith=PREFIX).delete()
        Account.objects.filter(account_id__startswith=PREFIX).delete()
        Instrument.objects.filter(key__startswith=f"{PREFIX}:").delete()
        FxRate.objects.filter(base=BASE).delete()
