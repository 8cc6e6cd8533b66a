"""Benchmark orders through the API: risk validation and a paper fill per request, and refusals."""

import os
import statistics
import time
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.brokers.contracts import InstrumentSpec
from marketdata.models import Instrument, Quote
from marketdata.services import instrument_get_or_create
from trading import hooks
from trading.models import Account, CashFlow, Execution, LedgerInstrument, Order, RiskEvent
from trading.services.accounts import paper_account_create

PREFIX = "BORD"
COUNTED = 3  # orders whose queries are counted, after the timed ones


class Command(BaseCommand):
    help = (
        "Place N paper orders through POST /api/trading/execute (a logged-in trader, a paper account, a "
        "stock with a fresh stored quote) and time each request: risk validation plus a paper fill, then "
        "refused orders. Prints the median, p90, p95 and queries per order. Bench data (BORD...) is removed after."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--orders", type=int, default=200)
        parser.add_argument("--history", type=int, default=0, help="paper fills placed first, untimed")
        parser.add_argument("--keep", action="store_true")

    def handle(self, *args, orders: int, history: int, keep: bool, **options) -> None:
        self.cpu: dict[bool, list[float]] = {}
        self._cleanup()
        user = get_user_model().objects.create_user(f"{PREFIX.lower()}-trader", password=None)
        account = paper_account_create(account_id=f"{PREFIX}0001", cash=Decimal(10_000_000), members=[user])
        instrument = instrument_get_or_create(spec=InstrumentSpec(symbol=f"{PREFIX}X"))
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        # The position build after fills is a worker's queued job, not part of the request: left out.
        saved, hooks._after_fills[:] = list(hooks._after_fills), []
        try:
            n = 0
            for _ in range(history):
                n += 1
                self._quote(instrument)
                self._post(client, account, instrument, n)
            filled, filled_queries = self._timed(client, account, instrument, orders, start=n)
            refused, refused_queries = self._timed(
                client, account, instrument, orders // 4, start=n + orders + COUNTED, refuse=True
            )
        finally:
            hooks._after_fills[:] = saved
            if not keep:
                self._cleanup()
                get_user_model().objects.filter(username=f"{PREFIX.lower()}-trader").delete()
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        self.stdout.write(
            f"database: {connection.vendor}; {history} fills before; {orders} orders timed; "
            f"load average {load} on {os.cpu_count()} CPUs (wall times grow with the load; 'cpu' is this "
            "process's own time, without the database server's)"
        )
        for label, times, queries, refusals in (
            ("paper order, validated and filled", filled, filled_queries, False),
            ("refused order (stored REJECTED)", refused, refused_queries, True),
        ):
            if not times:
                continue
            ordered = sorted(times)
            p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.90))]
            p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
            self.stdout.write(
                f"{label:36s} median {statistics.median(times) * 1000:6.1f} ms  p90 {p90 * 1000:6.1f} ms  "
                f"p95 {p95 * 1000:6.1f} ms  "
                f"cpu {statistics.median(self.cpu[refusals]) * 1000:5.1f} ms  queries {min(queries)}..{max(queries)}"
            )

    def _quote(self, instrument: Instrument) -> None:
        now = timezone.now()
        Quote.objects.update_or_create(
            instrument=instrument,
            defaults={
                "bid": Decimal("99.99"),
                "ask": Decimal("100.01"),
                "last": Decimal("100.00"),
                "at": now,
                "fetched_at": now,
                "source": "bench",
            },
        )

    def _post(self, client: Client, account: Account, instrument: Instrument, n: int, refuse: bool = False):
        answer = client.post(
            "/api/trading/execute",
            {
                "account": account.account_id,
                "client_order_id": f"bench-{n}",
                "symbol": instrument.symbol,
                # Buys only: alternating round trips at the spread lose, and five in a row trip the breaker.
                "side": "BUY",
                "quantity": "100000" if refuse else "10",
                "order_type": "MKT",
                "outside_rth": True,  # fills whatever the hour the bench runs at
                "decision_price": "100.00",
            },
            content_type="application/json",
            secure=True,
        )
        expected = 422 if refuse else 201
        if answer.status_code != expected:
            raise RuntimeError(f"order {n}: expected {expected}, got {answer.status_code}: {answer.content[:500]!r}")
        return answer

    def _timed(self, client, account, instrument, count: int, *, start: int, refuse: bool = False):
        """Time ``count`` orders, then count the queries of a few more (CaptureQueriesContext, as the
        tests' pins do). Not both at once: its debug cursor formats every statement's SQL, CPU time a
        production request does not spend."""
        times, queries, cpu = [], [], []
        for i in range(count):
            self._quote(instrument)  # a fresh quote, as the market-data task keeps it
            began, began_cpu = time.perf_counter(), time.process_time()
            self._post(client, account, instrument, start + i + 1, refuse=refuse)
            times.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        for i in range(count, count + COUNTED):
            self._quote(instrument)
            with CaptureQueriesContext(connection) as captured:
                self._post(client, account, instrument, start + i + 1, refuse=refuse)
            queries.append(len(captured))
        self.cpu[refuse] = cpu
        return times, queries

    @staticmethod
    def _cleanup() -> None:
        accounts = Account.objects.filter(account_id__startswith=PREFIX)
        RiskEvent.objects.filter(account__in=accounts).delete()
        Order.objects.filter(account__in=accounts).delete()
        Execution.objects.filter(account__in=accounts).delete()
        CashFlow.objects.filter(account__in=accounts).delete()
        LedgerInstrument.objects.filter(account__in=accounts).delete()
        accounts.delete()
        Quote.objects.filter(instrument__symbol__startswith=PREFIX).delete()
        Instrument.objects.filter(symbol__startswith=PREFIX).delete()
