"""Benchmark the option Greeks refresh on the fallback path: N option positions, no broker Greeks, every
set computed with Black-Scholes-Merton from stored quotes (implied volatility first)."""

import statistics
import time
from datetime import date, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone

from core.brokers.base import AccountValues, BrokerAccount, BrokerPosition
from core.brokers.contracts import InstrumentSpec
from core.brokers.memory import MemoryBroker
from core.models import SyncRun
from marketdata.models import Instrument, Quote
from marketdata.services import instruments_resolve
from portfolio.models import AccountStatus, Position, PositionEvent, PositionGreeks
from portfolio.services.greeks import greeks_refresh
from portfolio.services.sync import positions_sync_accounts
from trading.models import Account

PREFIX = "BGRK"  # distinct from the other benchmarks' data
UNDERLYINGS = 10


class Command(BaseCommand):
    help = (
        "Build N option positions (accounts BGRK..., 100 positions each, over 10 underlyings with stored quotes, "
        "calls and puts across strikes and expiries), then time the Greeks refresh on the fallback path (no broker "
        "Greeks: every set computed). The broker is held in memory. Bench data is removed after."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--positions", type=int, default=1000)
        parser.add_argument("--repeat", type=int, default=3, help="time the refresh this many times")
        parser.add_argument("--keep", action="store_true", help="keep the bench data afterwards")

    def handle(self, *args, positions: int, repeat: int, keep: bool, **options) -> None:
        self._cleanup()
        broker, account_ids = self._build(positions)
        self.stdout.write(f"database: {connection.vendor}; {positions} option positions in {len(account_ids)} accounts")
        times = []
        for round_ in range(repeat):
            queries = 0

            def count(execute, sql, params, many, context):
                nonlocal queries
                queries += 1
                return execute(sql, params, many, context)

            with connection.execute_wrapper(count):
                started = time.perf_counter()
                result = greeks_refresh(broker=broker, account_ids=account_ids)
                elapsed = time.perf_counter() - started
            times.append(elapsed)
            self.stdout.write(
                f"refresh {round_ + 1}: {elapsed:6.3f} s  {queries} queries  "
                f"computed {result.computed}, from the broker {result.from_broker}, empty {result.empty}"
            )
        self.stdout.write(f"median {statistics.median(times):.3f} s, best {min(times):.3f} s over {repeat} refreshes")
        if not keep:
            self._cleanup()

    def _build(self, count: int) -> tuple[MemoryBroker, list[str]]:
        per_account = 100
        accounts = [
            BrokerAccount(f"{PREFIX}{i:04d}", "MARGIN", "USD", AccountValues(net_liquidation=Decimal(100000)))
            for i in range((count + per_account - 1) // per_account)
        ]
        Account.objects.bulk_create([Account(account_id=a.account_id, name="bench") for a in accounts])
        today = timezone.now().date()
        expiries = [today + timedelta(days=d) for d in (7, 21, 45, 90, 180)]
        spots = {f"{PREFIX}{u}": Decimal(50 + 25 * u) for u in range(UNDERLYINGS)}
        rows: dict[str, list[BrokerPosition]] = {a.account_id: [] for a in accounts}
        specs, prices = [], {}
        for n in range(count):
            symbol = f"{PREFIX}{n % UNDERLYINGS}"
            spot = spots[symbol]
            # Every position of an account a different contract: symbol, right, strike and expiry from n.
            right = "C" if (n // UNDERLYINGS) % 2 else "P"
            strike = (spot * Decimal("0.8")).quantize(Decimal(1)) + (n // 20) % 40
            expiry: date = expiries[(n // 800) % len(expiries)]
            spec = InstrumentSpec(
                symbol=symbol, sec_type="OPT", multiplier=Decimal(100), expiry=expiry, strike=strike, right=right
            )
            # A plausible premium: intrinsic value plus time value (about 30% volatility).
            years = Decimal((expiry - today).days) / 365
            intrinsic = max(spot - strike, Decimal(0)) if right == "C" else max(strike - spot, Decimal(0))
            premium = (intrinsic + spot * Decimal("0.12") * years.sqrt()).quantize(Decimal("0.01"))
            account_id = accounts[n // per_account].account_id
            quantity = Decimal(1 + n % 3) * (1 if n % 5 else -1)
            rows[account_id].append(BrokerPosition(account_id, spec, quantity, premium, premium))
            specs.append(spec)
            prices[spec.key] = premium
        broker = MemoryBroker(accounts=accounts, positions=rows)
        positions_sync_accounts(broker=broker, account_ids=[a.account_id for a in accounts])
        stocks = [InstrumentSpec(symbol=symbol) for symbol in spots]
        instruments = instruments_resolve(specs=specs + stocks)
        now = timezone.now()
        quotes = [
            Quote(
                instrument=instruments[spec.key],
                bid=prices[spec.key] - Decimal("0.05"),
                ask=prices[spec.key] + Decimal("0.05"),
                source="bench",
                fetched_at=now,
            )
            for spec in {s.key: s for s in specs}.values()
        ] + [
            Quote(
                instrument=instruments[s.key],
                bid=spots[s.symbol],
                ask=spots[s.symbol] + Decimal("0.02"),
                source="bench",
                fetched_at=now,
            )
            for s in stocks
        ]
        Quote.objects.bulk_create(quotes, batch_size=500)
        return broker, [a.account_id for a in accounts]

    @staticmethod
    def _cleanup() -> None:
        bench = Account.objects.filter(account_id__startswith=PREFIX)
        PositionGreeks.objects.filter(position__account__in=bench).delete()
        PositionEvent.objects.filter(position__account__in=bench).delete()
        Position.objects.filter(account__in=bench).delete()
        AccountStatus.objects.filter(account__in=bench).delete()
        SyncRun.objects.filter(account__in=bench).delete()
        bench.delete()
        Quote.objects.filter(instrument__symbol__startswith=PREFIX).delete()
        Instrument.objects.filter(symbol__startswith=PREFIX).delete()
