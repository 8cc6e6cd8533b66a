"""The event listener (core/live.py, core/brokers/events.py) against the IB Gateway simulator, which
pushes executions and position changes when its state file changes.

The listener runs on its own event loop in a background thread, as ``manage.py ibkr_listen`` runs it;
the work it hands out (record the connection state, queue an ingest or a sync) is carried out by the
test's thread, standing for the command's database thread and the Celery worker, so the test database
(one connection on SQLite) sees it. The ingest is the real task through the real IBKR adapter.
"""

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from core.brokers.events import DISCONNECTED, IBKREventSource, StateFileEventSource
from core.live import Listener, ListenerWork
from core.models import BrokerConnection, ConnectionState, SyncReason
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT
from tests.factories import AccountFactory, ExecutionRowFactory
from trading.models import Execution
from trading.tasks import executions_ingest_task

pytestmark = pytest.mark.django_db
LISTEN_CLIENT_ID = 30  # not in the pool the ingest borrows from (17-20)


class RunningListener:
    def __init__(self, source, *, debounce: float = 0.3, max_wait: float = 3.0) -> None:
        self.work_queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self.ingests: list[list[str] | None] = []
        self.syncs: list[list[str] | None] = []

        def ingest(ids):
            self.ingests.append(ids)
            executions_ingest_task(account_ids=ids, reason=SyncReason.BROKER_EVENT)

        self.listener = Listener(
            source=source,
            work=ListenerWork(ingest=ingest, sync=self.syncs.append),
            submit=self.work_queue.put,
            debounce=debounce,
            max_wait=max_wait,
            heartbeat=60,
        )
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Future | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.listener.run())
        with contextlib.suppress(asyncio.CancelledError, BaseException):
            self.loop.run_until_complete(self.task)

    def start(self) -> "RunningListener":
        self.thread.start()
        return self

    def kill(self) -> None:
        """The process ends: the loop is stopped where it stands (pending work is not handed out)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def stop(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=5)

    def drain(self, until: Callable[[], bool], timeout: float = 30.0) -> None:
        """Carry out the listener's work until ``until()`` holds."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached within {timeout}s; dispatched: {self.listener.dispatched}")
            with contextlib.suppress(queue.Empty):
                self.work_queue.get(timeout=0.05)()

    def drain_idle(self, quiet: float = 1.0) -> None:
        """Carry out work until none has come for ``quiet`` seconds."""
        while True:
            try:
                self.work_queue.get(timeout=quiet)()
            except queue.Empty:
                return


def state_of(name: str) -> str | None:
    row = BrokerConnection.objects.filter(name=name).first()
    return row.state if row else None


def add_fills(gateway, *rows: dict, quantity_delta: int = 0) -> None:
    with gateway.state.edit() as state:
        account = gateway.state.account(state, ACCOUNT)
        account["executions"] = [*account["executions"], *rows]
        if quantity_delta:
            aapl = next(p for p in account["positions"] if p["symbol"] == "AAPL")
            aapl["quantity"] = str(int(aapl["quantity"]) + quantity_delta)


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def listening(gateway, account):
    source = IBKREventSource(
        host="127.0.0.1", port=gateway.port, client_id=LISTEN_CLIENT_ID, timeout=3.0, backoff=(0.2, 0.5)
    )
    running = RunningListener(source).start()
    # Connected: the catch-up ingest stores what the broker has (the example's one fill).
    running.drain(lambda: running.ingests and Execution.objects.count() == 1)
    running.drain_idle(0.3)
    assert state_of(source.name) == ConnectionState.CONNECTED
    yield running
    running.stop()


def test_a_fill_pushed_by_the_gateway_is_stored_within_seconds(gateway, listening, capsys):
    fill = ExecutionRowFactory(exec_id="live.0001", quantity="10", time="2026-11-20T15:00:00Z")
    pushed = time.monotonic()
    add_fills(gateway, fill, quantity_delta=10)

    listening.drain(lambda: Execution.objects.filter(exec_id="live.0001").exists())

    latency = time.monotonic() - pushed
    with capsys.disabled():
        print(f"\nlive fill: state file written -> fill stored in {latency:.2f} s")
    assert listening.ingests[-1] == [ACCOUNT]  # one account's ingest, not everyone's
    assert Execution.objects.get(exec_id="live.0001").commission is not None


def test_a_burst_of_partial_fills_is_one_ingest(gateway, listening):
    before = len(listening.ingests)
    for burst in range(5):  # 50 partial fills of one order, pushed in 5 quick writes
        rows = [
            ExecutionRowFactory(
                exec_id=f"burst.{burst * 10 + n:02d}",
                order_id=77,
                perm_id=77_777,
                quantity="2",
                time=f"2026-11-20T15:{burst:02d}:{n:02d}Z",
            )
            for n in range(10)
        ]
        add_fills(gateway, *rows, quantity_delta=20)
        time.sleep(0.05)

    listening.drain(lambda: Execution.objects.filter(exec_id__startswith="burst.").count() == 50)
    listening.drain_idle(1.0)

    assert len(listening.ingests) - before == 1
    assert [d for d in listening.listener.dispatched if d[0] == "ingest"][-1] == ("ingest", (ACCOUNT,))
    assert Execution.objects.count() == 51


def test_a_disconnect_and_reconnect_catches_up_on_what_was_missed(gateway, listening):
    name = listening.listener.name
    gateway.stop()
    listening.drain(lambda: state_of(name) == ConnectionState.DISCONNECTED)
    add_fills(gateway, ExecutionRowFactory(exec_id="while.down", time="2026-11-20T16:00:00Z"), quantity_delta=100)
    ingests = len(listening.ingests)

    gateway.restart()  # nothing is pushed about the fill: the gateway saw it before the listener was back
    listening.drain(lambda: Execution.objects.filter(exec_id="while.down").exists())

    assert state_of(name) == ConnectionState.CONNECTED
    assert listening.ingests[ingests:][0] is None  # the catch-up: every account
    assert ("sync", ("*",)) in listening.listener.dispatched


def test_a_gateway_that_goes_down_drops_the_listener_which_comes_back_and_catches_up(gateway, listening):
    name = listening.listener.name
    with gateway.state.edit() as state:
        state["connected"] = False
    listening.drain(lambda: state_of(name) == ConnectionState.DISCONNECTED)
    with gateway.state.edit() as state:
        state["connected"] = True
        gateway.state.account(state, ACCOUNT)["executions"].append(
            ExecutionRowFactory(exec_id="after.outage", time="2026-11-20T16:00:00Z")
        )
    listening.drain(lambda: Execution.objects.filter(exec_id="after.outage").exists())
    assert state_of(name) == ConnectionState.CONNECTED
    assert Execution.objects.count() == 2


def test_connectivity_lost_and_restored_notices_are_followed(gateway, listening):
    name = listening.listener.name
    gateway.thread.notice(1100)
    listening.drain(lambda: state_of(name) == ConnectionState.LOST)
    assert BrokerConnection.objects.get(name=name).last_code == 1100
    ingests = len(listening.ingests)

    gateway.thread.notice(1102)
    listening.drain(lambda: state_of(name) == ConnectionState.CONNECTED and len(listening.ingests) > ingests)
    assert listening.ingests[-1] is None  # restored: a catch-up


def test_the_listener_killed_and_restarted_loses_and_doubles_nothing(gateway, listening, account):
    add_fills(gateway, ExecutionRowFactory(exec_id="before.kill", time="2026-11-20T16:00:00Z"), quantity_delta=100)
    listening.drain(lambda: Execution.objects.filter(exec_id="before.kill").exists())
    listening.kill()
    # The dead process's socket is closed by its operating system: the gateway sees the client go.
    dead = gateway.sim.clients[LISTEN_CLIENT_ID]
    gateway.thread.loop.call_soon_threadsafe(dead.drop)
    # While no listener runs: a fill nobody hears of.
    add_fills(gateway, ExecutionRowFactory(exec_id="while.dead", time="2026-11-20T16:30:00Z"), quantity_delta=100)

    source = IBKREventSource(host="127.0.0.1", port=gateway.port, client_id=LISTEN_CLIENT_ID, timeout=3.0)
    again = RunningListener(source).start()
    try:
        again.drain(lambda: Execution.objects.filter(exec_id="while.dead").exists())
        again.drain_idle(0.5)
    finally:
        again.stop()

    stored = list(Execution.objects.values_list("exec_id", flat=True))
    assert sorted(stored) == sorted(set(stored))  # nothing doubled
    assert {"before.kill", "while.dead"} <= set(stored)
    assert len(stored) == 3


# --- the simulated broker: the state file watched directly ----------------------------------------
def test_the_state_file_watcher_reports_fills_positions_and_the_broker_going_away(broker_state, account):
    source = StateFileEventSource(broker_state.path, interval=0.05)
    running = RunningListener(source, debounce=0.2).start()
    try:
        running.drain(lambda: running.ingests == [None])  # the start is a catch-up
        with broker_state.edit() as state:
            broker_state.account(state, ACCOUNT)["executions"].append(ExecutionRowFactory(exec_id="sim.1"))
        running.drain(lambda: Execution.objects.filter(exec_id="sim.1").exists())
        assert running.ingests[-1] == [ACCOUNT]

        with broker_state.edit() as state:
            broker_state.account(state, ACCOUNT)["positions"][0]["quantity"] = "250"
        running.drain(lambda: running.syncs == [None, [ACCOUNT]])

        with broker_state.edit() as state:
            state["connected"] = False
        running.drain(lambda: state_of("simulated") == DISCONNECTED)
        with broker_state.edit() as state:
            state["connected"] = True
        running.drain(lambda: state_of("simulated") == ConnectionState.CONNECTED and len(running.ingests) == 3)
        assert running.ingests[-1] is None
    finally:
        running.stop()


def test_debounce_hands_out_one_ingest_per_account_and_waits_at_most_max_wait():
    from core.brokers.events import AccountEvent

    handed: list = []
    listener = Listener(
        source=SimpleNamespace(name="test"),
        work=ListenerWork(ingest=handed.append, sync=handed.append),
        submit=lambda fn: fn(),
        debounce=1.0,
        max_wait=5.0,
    )
    for _ in range(50):
        listener.emit(AccountEvent("execution", "U1"))
    listener.emit(AccountEvent("position", "U2"))
    start = listener.pending["U1"].first
    listener.flush(now=start + 0.5)
    assert handed == []
    listener.flush(now=start + 1.5)
    assert handed == [["U1"], ["U2"]]  # U1: one ingest for 50 events; U2: a sync
    # Events that never settle still go out after max_wait.
    listener.emit(AccountEvent("commission", "U1"))
    first = listener.pending["U1"].first
    listener.pending["U1"].last = first + 4.9
    listener.flush(now=first + 5.0)
    assert handed[-1] == ["U1"]


def test_a_position_change_and_its_fill_are_one_ingest_not_an_ingest_and_a_sync():
    from core.brokers.events import AccountEvent

    ingests, syncs = [], []
    listener = Listener(
        source=SimpleNamespace(name="test"),
        work=ListenerWork(ingest=ingests.append, sync=syncs.append),
        submit=lambda fn: fn(),
        debounce=1.0,
        max_wait=5.0,
    )
    listener.emit(AccountEvent("position", "U1"))
    listener.emit(AccountEvent("execution", "U1"))
    listener.flush(everything=True)
    assert ingests == [["U1"]] and syncs == []  # the ingest syncs the positions after new fills


def test_any_way_back_from_a_loss_catches_up():
    from core.brokers.events import ConnectionChange

    handed: list = []
    listener = Listener(
        source=SimpleNamespace(name="test"),
        work=ListenerWork(ingest=handed.append, sync=handed.append),
        submit=lambda fn: fn(),
    )
    listener.emit(ConnectionChange("CONNECTED", catch_up=True))
    listener.emit(ConnectionChange("CONNECTED", code=2104))  # a farm notice while connected: nothing
    assert handed == [None, None]
    listener.emit(ConnectionChange("LOST", code=2110))
    listener.emit(ConnectionChange("CONNECTED", code=2104))  # the farm is back: what was missed is fetched
    assert handed == [None, None, None, None]
