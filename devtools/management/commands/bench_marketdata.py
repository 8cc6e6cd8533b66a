"""Measure market-data persistence: storing bars from broker answers, the quote and bars APIs, pruning.

Writes its own BENCHMD* instruments and bars and removes them afterwards. Run it against PostgreSQL.
"""

import io
import logging
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.management.base import BaseCommand
from django.db import connection, reset_queries
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.brokers.base import Bar as BrokerBar
from core.brokers.base import Quote as BrokerQuote
from core.brokers.contracts import InstrumentSpec
from core.brokers.memory import MemoryBroker
from core.calendars import nyse_sessions, session_open
from marketdata.models import Bar, Instrument, Quote
from marketdata.retention import market_data_prune
from marketdata.services import bars_store, instruments_resolve, quotes_store
from marketdata.services.sync import market_data_sync

PREFIX = "BENCHMD"
USER = "benchmd-user"


class Command(BaseCommand):
    help = (
        "Time storing 1,000,000 one-minute bars from broker answers (and the same again), the quote API "
        "(median), the bars API (10,000 bars) and pruning a month of one-minute bars."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--symbols", type=int, default=100, help="Symbols of the store benchmark (100)")
        parser.add_argument("--sessions", type=int, default=26, help="Sessions of 1m bars per symbol (26: ~1M bars)")
        parser.add_argument("--prune-symbols", type=int, default=500, help="Symbols with a month of 1m bars to prune")
        parser.add_argument("--prune-days", type=int, default=21, help="Sessions of 1m bars past retention per symbol")
        parser.add_argument("--requests", type=int, default=200, help="Quote API requests for the median")
        parser.add_argument("--skip-prune", action="store_true")
        parser.add_argument("--skip-sync", action="store_true", help="Skip the end-to-end sync measurement")
        parser.add_argument("--skip-apis", action="store_true", help="Skip the quote and bars API measurements")
        parser.add_argument(
            "--repeat", type=int, default=1, help="Store the bars this many times (from empty), then medians (1)"
        )

    def handle(self, *args, **options) -> None:
        self.stdout.write(f"database: {connection.vendor}")
        self._clean()
        try:
            timings: dict[str, list[float]] = {}
            for run in range(max(1, options["repeat"])):
                if run:  # from empty again, its dead rows vacuumed (as the first run found the table)
                    Bar.objects.filter(instrument__symbol__startswith=f"{PREFIX}S").delete()
                    if connection.vendor == "postgresql":
                        with connection.cursor() as cursor:
                            cursor.execute(f"VACUUM {Bar._meta.db_table}")
                for label, seconds in self._store(options["symbols"], options["sessions"]).items():
                    timings.setdefault(label, []).append(seconds)
            if options["repeat"] > 1:
                for label, values in timings.items():
                    self.stdout.write(
                        f"  {label}: median {statistics.median(values):.2f} s of {len(values)} "
                        f"(min {min(values):.2f}, max {max(values):.2f})"
                    )
            if not options["skip_sync"]:
                self._sync(min(options["symbols"], 20), min(options["sessions"], 5))
            if not options["skip_apis"]:
                self._apis(options["requests"])
            if not options["skip_prune"]:
                self._prune(options["prune_symbols"], options["prune_days"])
        finally:
            self._clean()

    # --- helpers ---------------------------------------------------------------------------------
    def _instruments(self, count: int, tag: str) -> list[Instrument]:
        specs = [InstrumentSpec(symbol=f"{PREFIX}{tag}{n}") for n in range(count)]
        return list(instruments_resolve(specs=specs).values())

    @staticmethod
    def _minute_bars(symbol: str, sessions: list, offset: int = 0) -> list[BrokerBar]:
        bars = []
        for day in sessions:
            opens = session_open(day)
            for minute in range(390):
                price = Decimal(100 + (minute + offset) % 50) + Decimal("0.25")
                bars.append(
                    BrokerBar(
                        symbol=symbol,
                        bar_size="1m",
                        start=opens + timedelta(minutes=minute),
                        open=price,
                        high=price + 1,
                        low=price - 1,
                        close=price,
                        volume=Decimal(1000 + minute),
                        wap=price,
                        trade_count=minute,
                    )
                )
        return bars

    def _clean(self) -> None:
        Bar.objects.filter(instrument__symbol__startswith=PREFIX).delete()
        Quote.objects.filter(instrument__symbol__startswith=PREFIX).delete()
        Instrument.objects.filter(symbol__startswith=PREFIX).delete()
        get_user_model().objects.filter(username=USER).delete()

    def _analyze(self) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {Bar._meta.db_table}")

    # --- storing ---------------------------------------------------------------------------------
    def _store(self, symbols: int, sessions_per_symbol: int) -> dict[str, float]:
        sessions = nyse_sessions(datetime(2026, 1, 2).date(), datetime(2026, 11, 30).date())[-sessions_per_symbol:]
        instruments = self._instruments(symbols, "S")
        answers = [(i.pk, self._minute_bars(i.symbol, sessions)) for i in instruments]
        total = sum(len(bars) for _pk, bars in answers)
        self.stdout.write(f"store: {symbols} symbols x {len(sessions)} sessions = {total:,} one-minute bars")
        timings = {}
        for label in ("first time", "the same bars again"):
            started = time.perf_counter()
            created = updated = unchanged = 0
            for instrument_id, bars in answers:  # one broker answer per symbol, as a backfill stores it
                result = bars_store(bars=[(instrument_id, b) for b in bars], source="bench")
                created, updated, unchanged = (
                    created + result.created,
                    updated + result.updated,
                    unchanged + result.unchanged,
                )
            seconds = timings[label] = time.perf_counter() - started
            self.stdout.write(
                f"  {label}: {seconds:.2f} s ({created:,} created, {updated:,} updated, {unchanged:,} unchanged)"
            )
            self._analyze()
        revised = [(pk, [b if n % 100 else _revised(b) for n, b in enumerate(bars)]) for pk, bars in answers]
        started = time.perf_counter()
        updated = sum(bars_store(bars=[(pk, b) for b in bars], source="bench").updated for pk, bars in revised)
        timings["1% of them revised"] = time.perf_counter() - started
        self.stdout.write(f"  1% of them revised: {timings['1% of them revised']:.2f} s ({updated:,} updated)")
        return timings

    def _sync(self, symbols: int, sessions_per_symbol: int) -> None:
        """End to end: the gap-free sync asks a broker in memory for one session per request (1m)."""
        last = datetime(2026, 11, 30).date()
        sessions = nyse_sessions(datetime(2026, 1, 2).date(), last)[-sessions_per_symbol:]
        instruments = self._instruments(symbols, "Y")
        broker = MemoryBroker(accounts=[], bars=[b for i in instruments for b in self._minute_bars(i.symbol, sessions)])
        symbols_ = [i.symbol for i in instruments]
        now = datetime(2026, 11, 30, 22, tzinfo=UTC)
        for label in ("backfill", "steady (nothing missing)"):
            started = time.perf_counter()
            run = market_data_sync(
                broker=broker, symbols=symbols_, bar_sizes=["1m"], since=sessions[0], quotes=False, now=now
            )
            self.stdout.write(
                f"sync {label}: {symbols} symbols x {len(sessions)} sessions: {time.perf_counter() - started:.2f} s, "
                f"{len(broker.bar_requests)} broker requests, {run.created:,} bars created"
            )
            broker.bar_requests.clear()

    # --- the APIs --------------------------------------------------------------------------------
    def _apis(self, requests: int) -> None:
        user = get_user_model().objects.create_user(username=USER, password="bench-password-1234")
        client = Client()
        client.force_login(user)
        instrument = self._instruments(1, "Q")[0]
        quotes_store(
            quotes=[
                (
                    instrument.pk,
                    BrokerQuote(symbol=instrument.symbol, bid=Decimal(1), ask=Decimal(2), last=Decimal(1), at=None),
                )
            ],
            source="bench",
        )
        url = f"/api/market-data/quote/{instrument.symbol}"
        for label, clear in (("cache", False), ("database", True)):
            timings = []
            cpu = time.process_time()
            for _ in range(requests):
                if clear:
                    cache.delete(f"marketdata:quote:{instrument.symbol}")
                started = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.content
            self.stdout.write(
                f"quote API from the {label}: median {statistics.median(timings):.2f} ms, "
                f"p95 {sorted(timings)[int(len(timings) * 0.95)]:.2f} ms, CPU {_per_request(cpu, requests):.2f} ms "
                f"({requests} requests; source {response.json()['source']})"
            )
        self._wsgi(client, url, requests)
        # The floor under any figure above: the same logged-in request for a symbol the pattern refuses
        # (a 404 before any cache or database lookup), so session, user and middleware only.
        floor = []
        request_log = logging.getLogger("django.request")
        level, request_log.level = request_log.level, logging.ERROR  # not a warning per 404
        cpu = time.process_time()
        try:
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get("/api/market-data/quote/!")
                floor.append((time.perf_counter() - started) * 1000)
        finally:
            request_log.level = level
        quotes_store(
            quotes=[
                (
                    instrument.pk,
                    BrokerQuote(symbol=instrument.symbol, bid=Decimal(1), ask=Decimal(2), last=Decimal(1), at=None),
                )
            ],
            source="bench",
        )
        with CaptureQueriesContext(connection) as queries:
            source = client.get(url).json()["source"]
        self.stdout.write(
            f"a logged-in request that looks nothing up (the floor): median {statistics.median(floor):.2f} ms, "
            f"CPU {_per_request(cpu, requests):.2f} ms; the quote API from the {source} makes {len(queries)} "
            f"queries ({', '.join(q['sql'].split(' FROM ')[1].split()[0] for q in queries.captured_queries)})"
        )
        bars_symbol = Instrument.objects.filter(symbol__startswith=f"{PREFIX}S").order_by("pk").first()
        if bars_symbol is None:
            return
        url = f"/api/market-data/bars/{bars_symbol.symbol}"
        timings = []
        for _ in range(20):
            reset_queries()
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url, {"bar_size": "1m", "page_size": 10_000})
                timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and len(response.json()["results"]) == 10_000
        self.stdout.write(
            f"bars API, 10,000 bars in one page: median {statistics.median(timings):.1f} ms, "
            f"best {min(timings):.1f} ms ({len(queries)} queries)"
        )

    def _wsgi(self, client: Client, url: str, requests: int) -> None:
        """The quote API through Django's WSGI handler, as gunicorn calls it: unlike the test client, it
        sends request_started/finished, so persistent connections are health-checked (CONN_HEALTH_CHECKS)
        as in production. No HTTP server in front. Sessions from the database and from the cache
        (cached_db) are measured interleaved, in batches of 25, so both see the same load."""
        cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        statuses: set[str] = set()
        engine = settings.SESSION_ENGINE
        handlers = {}
        try:
            for name in ("db", "cached_db"):  # SessionMiddleware picks its engine when the handler loads it
                settings.SESSION_ENGINE = f"django.contrib.sessions.backends.{name}"
                handlers[name] = WSGIHandler()
        finally:
            settings.SESSION_ENGINE = engine

        def get(handler: WSGIHandler) -> None:
            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": url,
                "QUERY_STRING": "",
                "SERVER_NAME": "localhost",
                "SERVER_PORT": "80",
                "HTTP_HOST": "localhost",
                "HTTP_COOKIE": cookie,
                "REMOTE_ADDR": "127.0.0.1",
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(b""),
                "wsgi.errors": io.StringIO(),
            }
            response = handler(environ, lambda status, headers, exc_info=None: statuses.add(status))
            b"".join(response)
            response.close()

        timings: dict[str, list[float]] = {name: [] for name in handlers}
        cpu = dict.fromkeys(handlers, 0.0)
        for handler in handlers.values():
            for _ in range(20):
                get(handler)
        for batch in range(max(2, requests // 25)):
            for name in sorted(handlers, reverse=bool(batch % 2)):
                started_cpu = time.process_time()
                for _ in range(25):
                    started = time.perf_counter()
                    get(handlers[name])
                    timings[name].append((time.perf_counter() - started) * 1000)
                cpu[name] += time.process_time() - started_cpu
        assert statuses == {"200 OK"}, statuses
        for name, values in timings.items():
            per_request = cpu[name] * 1000 / len(values)
            self.stdout.write(
                f"quote API from the cache through the WSGI handler, sessions {name}: median "
                f"{statistics.median(values):.2f} ms, CPU {per_request:.2f} ms ({len(values)} requests)"
            )

    # --- pruning ---------------------------------------------------------------------------------
    def _prune(self, symbols: int, days: int) -> None:
        """A month of 1m bars past the 30-day retention for ``symbols`` symbols, then the prune."""
        now = datetime(2026, 12, 31, 12, tzinfo=UTC)
        Bar.objects.filter(instrument__symbol__startswith=PREFIX).delete()  # only this step's bars are old
        old = nyse_sessions(datetime(2026, 10, 1).date(), datetime(2026, 11, 20).date())[-days:]
        instruments = self._instruments(symbols, "P")
        started = time.perf_counter()
        for instrument in instruments:
            bars_store(bars=[(instrument.pk, b) for b in self._minute_bars(instrument.symbol, old)], source="bench")
        self._analyze()
        total = Bar.objects.filter(instrument__symbol__startswith=f"{PREFIX}P").count()
        self.stdout.write(
            f"prune: {symbols} symbols x {len(old)} sessions = {total:,} one-minute bars past retention "
            f"(written in {time.perf_counter() - started:.1f} s)"
        )
        report = market_data_prune(now=now)
        self.stdout.write(
            f"  prune_market_data: {report.deleted.get('marketdata.Bar', 0):,} bars deleted in {report.seconds:.2f} s"
        )


def _per_request(cpu_started: float, requests: int) -> float:
    """This process's CPU milliseconds per request since ``cpu_started`` (the database's are not counted)."""
    return (time.process_time() - cpu_started) * 1000 / requests


def _revised(bar: BrokerBar) -> BrokerBar:
    return BrokerBar(
        symbol=bar.symbol,
        bar_size=bar.bar_size,
        start=bar.start,
        open=bar.open,
        high=bar.high + 1,
        low=bar.low,
        close=bar.close,
        volume=bar.volume + 1,
        wap=bar.wap,
        trade_count=bar.trade_count,
    )
