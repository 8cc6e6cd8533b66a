"""The event listener's engine: broker events in, debounced work out, the connection state recorded.

``Listener`` runs an event source (``core.brokers.events``) on an asyncio loop and turns what it
reports into work for the apps above, through callables they pass in (core never names their tasks):

- account events are debounced per account: the work for an account is handed out once its events
  have been quiet for ``debounce`` seconds, or ``max_wait`` after the first (a burst of 50 partial
  fills is one ingest); an execution or commission asks for an ingest (which syncs positions after
  it), a position change alone for a position sync;
- a connection change is recorded (``connection_state_record``: the dashboard banner and
  ``/healthz`` read it; a loss and a restore raise alerts), and one that may have missed events (a
  connect, a reconnect, 1101/1102 restored, any way back from LOST or DISCONNECTED such as a farm's
  2104 after 2110) asks for a catch-up: an ingest and a sync of every account;
- a heartbeat refreshes the stored state, so a listener that died shows as "not listening".

Database work never runs on the event loop: it is handed to ``submit`` (a single worker thread in the
command), so a slow database never delays reading the socket.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.brokers.events import AccountEvent, ConnectionChange
from core.models import AlertKind, BrokerConnection, ConnectionState

logger = logging.getLogger(__name__)

Submit = Callable[[Callable[[], None]], None]


@dataclass
class _Pending:
    first: float
    last: float
    ingest: bool = False
    sync: bool = False
    events: int = 0


@dataclass
class ListenerWork:
    """What the apps above do for the listener. ``ingest(account_ids)`` fetches fills (and syncs the
    positions after new ones), ``sync(account_ids)`` syncs positions; None means every account."""

    ingest: Callable[[list[str] | None], None]
    sync: Callable[[list[str] | None], None]


@dataclass
class Listener:
    source: object  # IBKREventSource or StateFileEventSource: ``name`` and ``async run(emit)``
    work: ListenerWork
    submit: Submit
    debounce: float = 1.0
    max_wait: float = 5.0
    heartbeat: float = 10.0
    holder: str = ""
    pending: dict[str, _Pending] = field(default_factory=dict)
    state: str | None = None
    dispatched: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # what was handed out, for tests

    @property
    def name(self) -> str:
        return self.source.name  # type: ignore[attr-defined]

    # --- events ------------------------------------------------------------------------------------
    def emit(self, event: AccountEvent | ConnectionChange) -> None:
        if isinstance(event, ConnectionChange):
            self._connection(event)
            return
        now = time.monotonic()
        pending = self.pending.get(event.account_id)
        if pending is None:
            pending = self.pending[event.account_id] = _Pending(first=now, last=now)
        pending.last = now
        pending.events += 1
        if event.kind in ("execution", "commission"):
            pending.ingest = True
        else:
            pending.sync = True
        logger.debug("listener: %s %s %s", event.kind, event.account_id, event.detail)

    def _connection(self, change: ConnectionChange) -> None:
        if change.state != self.state:
            logger.info("listener %s: %s (%s)", self.name, change.state, change.message)
        back = change.state == ConnectionState.CONNECTED and self.state in (
            ConnectionState.LOST,
            ConnectionState.DISCONNECTED,
        )
        self.state = change.state
        name, holder = self.name, self.holder
        self.submit(
            lambda: connection_state_record(
                name=name, state=change.state, code=change.code, message=change.message, holder=holder
            )
        )
        if change.state == ConnectionState.CONNECTED and (change.catch_up or back):
            # Whatever happened while nobody listened: fetch everything once; pending work is part of it.
            self.pending.clear()
            self._hand_out("catch-up", None, ingest=True, sync=True)

    def flush(self, *, now: float | None = None, everything: bool = False) -> None:
        """Hand out the work of every account whose events have settled (or waited long enough)."""
        now = time.monotonic() if now is None else now
        due = [
            account_id
            for account_id, p in self.pending.items()
            if everything or now - p.last >= self.debounce or now - p.first >= self.max_wait
        ]
        ingest = sorted(a for a in due if self.pending[a].ingest)
        sync = sorted(a for a in due if not self.pending[a].ingest and self.pending[a].sync)
        for account_id in due:
            del self.pending[account_id]
        if ingest:
            self._hand_out("event", ingest, ingest=True, sync=False)
        if sync:
            self._hand_out("event", sync, ingest=False, sync=True)

    def _hand_out(self, why: str, account_ids: list[str] | None, *, ingest: bool, sync: bool) -> None:
        label = tuple(account_ids) if account_ids else ("*",)
        work = self.work
        if ingest:
            self.dispatched.append(("ingest", label))
            logger.info("listener %s: %s: ingest of %s", self.name, why, ", ".join(label))
            self.submit(lambda: work.ingest(account_ids))
        if sync:
            self.dispatched.append(("sync", label))
            logger.info("listener %s: %s: position sync of %s", self.name, why, ", ".join(label))
            self.submit(lambda: work.sync(account_ids))

    # --- the loop ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled: the source, the debounce clock and the heartbeat."""
        source = asyncio.ensure_future(self.source.run(self.emit))  # type: ignore[attr-defined]
        tick = min(0.05, self.debounce / 4) if self.debounce else 0.05
        beat = time.monotonic()
        try:
            while not source.done():
                await asyncio.sleep(tick)
                self.flush()
                if time.monotonic() - beat >= self.heartbeat:
                    beat = time.monotonic()
                    self.submit(lambda name=self.name: connection_heartbeat(name=name))
            source.result()  # a source that ended on its own ends the listener, with its error
        finally:
            # A listener whose process ended mid-loop (the loop stopped and closed under it) is only
            # collected later: nothing can be cancelled or handed out any more.
            if not source.get_loop().is_closed():
                source.cancel()
                self.flush(everything=True)


# --- the stored connection state ---------------------------------------------------------------
def connection_state_record(
    *, name: str, state: str, code: int | None = None, message: str = "", holder: str = ""
) -> BrokerConnection:
    """Store the connection's state; a loss (CONNECTED -> LOST/DISCONNECTED) and a restore raise
    alerts once per change, never per reconnect attempt."""
    now = timezone.now()
    with transaction.atomic():
        row = BrokerConnection.objects.select_for_update().filter(name=name).first()
        before = row.state if row is not None else None
        if row is None:
            row = BrokerConnection(name=name, state=state, since=now, checked_at=now)
        elif row.state != state:
            row.state, row.since = state, now
        row.checked_at, row.last_code, row.message, row.holder = now, code, message[:2000], holder
        row.save()
    down = (ConnectionState.LOST, ConnectionState.DISCONNECTED)
    if state != before:
        from core.alerts import alert_raise

        if before == ConnectionState.CONNECTED and state in down:
            alert_raise(
                kind=AlertKind.BROKER_LOST,
                key=f"{name}:{row.since.isoformat()}",
                title=f"Broker connection lost ({name})",
                body=message or state,
            )
        elif before in down and state == ConnectionState.CONNECTED:
            alert_raise(
                kind=AlertKind.BROKER_RESTORED,
                key=f"{name}:{row.since.isoformat()}",
                title=f"Broker connection restored ({name})",
                body=(message or "connected") + "; a catch-up ingest and sync are on their way",
            )
    return row


def connection_heartbeat(*, name: str) -> None:
    BrokerConnection.objects.filter(name=name).update(checked_at=timezone.now())


def connection_stop(*, name: str) -> None:
    """The listener stops: the state is not known any more (no alert: nobody lost anything yet)."""
    now = timezone.now()
    BrokerConnection.objects.filter(name=name).update(state=ConnectionState.STOPPED, since=now, checked_at=now)


def connection_status(*, now=None) -> list[dict]:
    """Every listened connection as the banner and /healthz show it: ``listening`` is False when the
    listener's heartbeat is older than three beats (it died, or was never started). One query."""
    now = now or timezone.now()
    limit = timedelta(seconds=3 * settings.LIVE_HEARTBEAT_SECONDS)
    rows = []
    for row in BrokerConnection.objects.order_by("name"):
        listening = row.state != ConnectionState.STOPPED and now - row.checked_at <= limit
        rows.append(
            {
                "name": row.name,
                "state": row.state if listening else ConnectionState.STOPPED,
                "label": row.get_state_display() if listening else "Not listening",
                "since": row.since,
                "checked_at": row.checked_at,
                "code": row.last_code,
                "message": row.message,
                "listening": listening,
                "ok": listening and row.state == ConnectionState.CONNECTED,
            }
        )
    return rows


def event_source_build(*, client_id: int | None = None):
    """The event source for ``settings.BROKER``: the gateway through ib_async, or the state file."""
    from core.brokers.events import IBKREventSource, StateFileEventSource

    if settings.BROKER.lower() == "ibkr":
        return IBKREventSource(
            host=settings.IBKR_HOST,
            port=settings.IBKR_PORT,
            client_id=client_id if client_id is not None else settings.IBKR_CLIENT_ID,
            account=settings.IBKR_ACCOUNT or None,
            timeout=settings.IBKR_TIMEOUT,
        )
    if settings.BROKER.lower() == "simulated":
        return StateFileEventSource(settings.BROKER_STATE_FILE, interval=settings.LIVE_WATCH_INTERVAL)
    raise ValueError(f"BROKER={settings.BROKER!r} is not one of: simulated, ibkr")


def listener_build(*, source, work: ListenerWork, submit: Submit, holder: str = "") -> Listener:
    return Listener(
        source=source,
        work=work,
        submit=submit,
        debounce=settings.LIVE_DEBOUNCE_SECONDS,
        max_wait=settings.LIVE_DEBOUNCE_MAX_SECONDS,
        heartbeat=settings.LIVE_HEARTBEAT_SECONDS,
        holder=holder,
    )
