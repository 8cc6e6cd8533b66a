"""Benchmark the live path: a fill appears at the broker -> it is stored, through the event listener.

With ``--broker ibkr`` (default) an IB Gateway simulator serves a scratch state file on a free port and
the listener holds its own ib_async connection to it, as ``manage.py ibkr_listen`` does; with
``--broker simulated`` the listener watches the state file. Each round appends one fill to the file and
times until the execution row exists. The listener's work (the ingest task, run in place) is carried
out by this command's thread, standing for a Celery worker with nothing else queued, so the figure is
the listener's reaction (simulator poll + push, debounce) plus one ingest through the real adapter.
"""

import asyncio
import contextlib
import json
import queue
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from celery import current_app as celery_app
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection
from django.test.utils import override_settings

from core.brokers.events import IBKREventSource, StateFileEventSource
from core.brokers.gateway_sim import SimulatorThread
from core.live import Listener, ListenerWork
from core.models import SyncReason
from devtools.management.commands.bench_ledger import bench_account_delete
from trading.models import Account, Execution
from trading.tasks import executions_ingest_task

ACCOUNT = "BLIVE0001"
SYMBOL = "BLIVE"


def _state(fills: list[dict]) -> dict:
    return {
        "connected": True,
        "accounts": [
            {
                "account_id": ACCOUNT,
                "account_type": "MARGIN",
                "base_currency": "USD",
                "values": {"NetLiquidation": "100000.00", "TotalCashValue": "100000.00"},
                "positions": [],
                "executions": fills,
            }
        ],
    }


def _fill(n: int) -> dict:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return {
        "exec_id": f"blive.{n:05d}",
        "order_id": 1000 + n,
        "perm_id": 5_000_000 + n,
        "symbol": SYMBOL,
        "sec_type": "STK",
        "con_id": 99_000_001,
        "currency": "USD",
        "exchange": "ISLAND",
        "side": "BUY",
        "quantity": "1",
        "price": "10.00",
        "commission": "1.00",
        "time": at.isoformat().replace("+00:00", "Z"),
    }


class Command(BaseCommand):
    help = (
        "Time a fill from the broker to the database through the event listener (IB Gateway simulator or "
        "the simulated broker's state file): median, p95 and worst over the rounds. Bench data (account "
        f"{ACCOUNT}) is removed after."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rounds", type=int, default=10)
        parser.add_argument("--broker", choices=["ibkr", "simulated"], default="ibkr")
        parser.add_argument("--debounce", type=float, default=settings.LIVE_DEBOUNCE_SECONDS)

    def handle(self, *args, rounds: int, broker: str, debounce: float, **options) -> None:
        self._cleanup()
        Account.objects.create(account_id=ACCOUNT, name="bench")
        eager = celery_app.conf.task_always_eager
        celery_app.conf.task_always_eager = True  # the ingest and the sync after it run here, in order
        try:
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "state.json"
                self._write(path, [])
                latencies = self._measure(path, rounds=rounds, broker=broker, debounce=debounce)
        finally:
            celery_app.conf.task_always_eager = eager
            self._cleanup()
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        self.stdout.write(
            f"database: {connection.vendor}; broker: {broker}; debounce {debounce:g}s; {rounds} rounds\n"
            f"fill written at the broker -> stored: median {statistics.median(latencies):.2f}s, "
            f"p95 {p95:.2f}s, worst {latencies[-1]:.2f}s"
        )

    @staticmethod
    def _write(path: Path, fills: list[dict]) -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(_state(fills)), encoding="utf-8")
        temporary.replace(path)

    def _measure(self, path: Path, *, rounds: int, broker: str, debounce: float) -> list[float]:
        simulator = SimulatorThread(path, port=0) if broker == "ibkr" else None
        overrides = {"BROKER": broker, "BROKER_STATE_FILE": str(path)}
        if simulator is not None:
            port = simulator.start()
            overrides.update(
                IBKR_HOST="127.0.0.1", IBKR_PORT=port, IBKR_CLIENT_IDS=[91, 92], IBKR_ACCOUNT="", IBKR_TIMEOUT=5.0
            )
            source = IBKREventSource(host="127.0.0.1", port=port, client_id=90, timeout=5.0, backoff=(0.5,))
        else:
            source = StateFileEventSource(path, interval=settings.LIVE_WATCH_INTERVAL)
        work: queue.Queue = queue.Queue()
        listener = Listener(
            source=source,
            work=ListenerWork(
                ingest=lambda ids: executions_ingest_task(account_ids=ids, reason=SyncReason.BROKER_EVENT),
                sync=lambda ids: None,
            ),
            submit=work.put,
            debounce=debounce,
            max_wait=max(5.0, debounce),
        )
        loop = asyncio.new_event_loop()
        task = loop.create_task(listener.run())

        def run() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)

        thread = threading.Thread(target=run, daemon=True)
        fills: list[dict] = []
        latencies = []
        try:
            with override_settings(**overrides):
                thread.start()
                self._drain(work, until=lambda: bool(listener.dispatched), timeout=30)
                self._drain(work, until=lambda: work.empty(), timeout=30)
                for n in range(rounds):
                    fills.append(_fill(n))
                    written = time.monotonic()
                    self._write(path, fills)
                    exec_id = fills[-1]["exec_id"]
                    self._drain(work, until=lambda e=exec_id: Execution.objects.filter(exec_id=e).exists(), timeout=60)
                    latencies.append(time.monotonic() - written)
                    time.sleep(0.2)
        finally:
            loop.call_soon_threadsafe(task.cancel)
            thread.join(timeout=5)
            with contextlib.suppress(Exception):
                loop.close()
            if simulator is not None:
                simulator.close()
        return latencies

    @staticmethod
    def _drain(work: queue.Queue, *, until, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise RuntimeError(f"not reached within {timeout}s")
            with contextlib.suppress(queue.Empty):
                work.get(timeout=0.02)()

    @staticmethod
    def _cleanup() -> None:
        bench_account_delete(account_id=ACCOUNT, symbol_prefix=SYMBOL)
