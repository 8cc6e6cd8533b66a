"""Broker events as they cross the boundary, and the two sources that produce them.

A source runs until cancelled, holds its own connection, reconnects with backoff, and reports two
frozen types through one callback:

- ``AccountEvent``: something changed in an account (a fill, its commission report, a position), so
  that account's fills or positions should be fetched again. It carries no figures: the ingest and
  the sync read them through the ordinary adapter, so an event can be lost or doubled without any
  record being lost or doubled.
- ``ConnectionChange``: the connection's state (CONNECTED, LOST: the gateway is up but its link to
  IBKR is not, DISCONNECTED: the gateway cannot be reached); ``catch_up`` says that events may have
  been missed before it (a (re)connect, 1101/1102 restored), so everything should be fetched again.

``IBKREventSource`` listens to IB Gateway / TWS through ib_async; ``StateFileEventSource`` watches the
simulated broker's state file, so the demo is live too.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

CONNECTED, LOST, DISCONNECTED = "CONNECTED", "LOST", "DISCONNECTED"
# IBKR codes: 1100 connectivity between IB and TWS lost; 1101 restored, data lost; 1102 restored, data
# maintained; 2110 connectivity between TWS and the server is broken (restored when a 2104/2106/2158
# "farm connection is OK" or 1102 follows).
LOST_CODES = {1100, 2110}
RESTORED_CODES = {1101, 1102}
FARM_OK_CODES = {2104, 2106, 2158}
DEFAULT_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class AccountEvent:
    kind: Literal["execution", "commission", "position"]
    account_id: str
    detail: str = ""  # an exec id, a contract: for the log


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    state: str  # CONNECTED, LOST or DISCONNECTED
    code: int | None = None
    message: str = ""
    catch_up: bool = False


Emit = Callable[[AccountEvent | ConnectionChange], None]


def _backoff(backoff: Sequence[float], attempt: int) -> float:
    return backoff[min(attempt, len(backoff) - 1)]


class IBKREventSource:
    """One long-lived ib_async connection subscribed to executions, commission reports and positions.

    ib_async emits ``execDetailsEvent`` only for fills of orders this client placed, and
    ``commissionReportEvent`` only for those; fills of other clients (TWS, the order work, another
    login session) are pushed by the gateway to the master API client all the same. So the wrapper's
    own ``execDetails`` and ``commissionReport`` are observed (after ib_async has handled them), and
    the reqPositions subscription ib_async opens at connect gives ``positionEvent``.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        account: str | None = None,
        timeout: float = 15.0,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        ib_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.host, self.port, self.client_id = host, int(port), int(client_id)
        self.account = account or ""
        self.timeout = float(timeout)
        self.backoff = tuple(backoff)
        self.ib_factory = ib_factory
        self.name = f"ibkr {host}:{port}"

    async def run(self, emit: Emit) -> None:
        from ib_async import IB
        from ib_async.ib import StartupFetchNONE

        attempt = 0
        while True:
            ib = (self.ib_factory or IB)()
            closed = asyncio.Event()
            try:
                await ib.connectAsync(
                    self.host,
                    self.port,
                    clientId=self.client_id,
                    timeout=self.timeout,
                    readonly=True,
                    account=self.account,
                    fetchFields=StartupFetchNONE,  # ib_async still opens the positions subscription
                )
            except (OSError, ConnectionError, TimeoutError) as exc:
                with contextlib.suppress(Exception):
                    ib.disconnect()
                wait = _backoff(self.backoff, attempt)
                attempt += 1
                emit(
                    ConnectionChange(
                        DISCONNECTED,
                        message=f"cannot connect to {self.host}:{self.port} (client id {self.client_id}): "
                        f"{type(exc).__name__}: {exc}; next try in {wait:g}s",
                    )
                )
                await asyncio.sleep(wait)
                continue
            attempt = 0
            self._subscribe(ib, emit, closed)
            emit(ConnectionChange(CONNECTED, message="connected", catch_up=True))
            try:
                await closed.wait()
            finally:
                with contextlib.suppress(Exception):
                    ib.disconnect()
            emit(ConnectionChange(DISCONNECTED, message=f"the connection to {self.host}:{self.port} closed"))
            await asyncio.sleep(_backoff(self.backoff, 0))

    def _subscribe(self, ib: Any, emit: Emit, closed: asyncio.Event) -> None:
        wrapper = ib.wrapper
        exec_details, commission_report = wrapper.execDetails, wrapper.commissionReport
        futures = wrapper._futures  # request ids of answers being collected: those are not pushed events

        def on_exec_details(req_id: int, contract: Any, execution: Any) -> None:
            pushed = req_id not in futures
            exec_details(req_id, contract, execution)
            if pushed and execution.acctNumber:
                emit(AccountEvent("execution", execution.acctNumber, execution.execId))

        def on_commission_report(report: Any) -> None:
            commission_report(report)
            fill = wrapper.fills.get(report.execId)
            if fill is not None and fill.execution.acctNumber:
                emit(AccountEvent("commission", fill.execution.acctNumber, report.execId))

        def on_position(position: Any) -> None:
            emit(AccountEvent("position", position.account, getattr(position.contract, "symbol", "")))

        def on_error(req_id: int, code: int, message: str, *_args: Any) -> None:
            if code in LOST_CODES:
                emit(ConnectionChange(LOST, code=code, message=message))
            elif code in RESTORED_CODES:
                emit(ConnectionChange(CONNECTED, code=code, message=message, catch_up=True))
            elif code in FARM_OK_CODES:
                emit(ConnectionChange(CONNECTED, code=code, message=message))

        wrapper.execDetails = on_exec_details
        wrapper.commissionReport = on_commission_report
        ib.positionEvent += on_position
        ib.errorEvent += on_error
        ib.disconnectedEvent += closed.set


class StateFileEventSource:
    """The simulated broker's live face: polls its state file and reports what changed per account
    (a new execution or commission, a position's quantity or average cost; not prices, which the
    demo moves every few seconds and the periodic sync brings). ``"connected": false`` (or a file
    that cannot be read) is DISCONNECTED; coming back is CONNECTED with a catch-up."""

    def __init__(self, path: str | Path, *, interval: float = 0.5) -> None:
        self.path = Path(path)
        self.interval = interval
        self.name = "simulated"

    def _read(self) -> dict[str, dict[str, str]] | bool | None:
        """Per account: a fingerprint per execution and per position; None when the broker is "down";
        False when the file cannot be read right now (missing, or caught half-written)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if not isinstance(raw, dict) or raw.get("connected", True) is not True:
            return None
        seen: dict[str, dict[str, str]] = {}
        for account in raw.get("accounts") or ():
            if not isinstance(account, dict) or not isinstance(account.get("account_id"), str):
                continue
            prints: dict[str, str] = {}
            for row in account.get("executions") or ():
                if isinstance(row, dict):
                    prints[f"execution:{row.get('exec_id')}"] = str(row.get("commission"))
            for row in account.get("positions") or ():
                if isinstance(row, dict):
                    key = f"position:{row.get('con_id') or row.get('symbol')}:{row.get('expiry')}:{row.get('strike')}"
                    prints[key] = f"{row.get('quantity')}@{row.get('avg_cost')}"
            seen[account["account_id"]] = prints
        return seen

    def _read_settled(self, unreadable: list[int]) -> dict[str, dict[str, str]] | bool | None:
        """``_read``, but a file unreadable fewer than ``UNREADABLE_LIMIT`` looks in a row is "no news"
        (False): a writer that replaces the file in place is caught half-way now and then."""
        current = self._read()
        if current is False:
            unreadable[0] += 1
            return None if unreadable[0] >= self.UNREADABLE_LIMIT else False
        unreadable[0] = 0
        return current

    UNREADABLE_LIMIT = 3

    async def run(self, emit: Emit) -> None:
        unreadable = [0]
        previous = self._read_settled(unreadable)
        while previous is False:
            await asyncio.sleep(self.interval)
            previous = self._read_settled(unreadable)
        if previous is None:
            emit(ConnectionChange(DISCONNECTED, message=f"the broker state file {self.path} says the broker is down"))
        else:
            emit(ConnectionChange(CONNECTED, message=f"watching {self.path}", catch_up=True))
        while True:
            await asyncio.sleep(self.interval)
            current = self._read_settled(unreadable)
            if current is False:
                continue
            if current is None:
                if previous is not None:
                    emit(
                        ConnectionChange(
                            DISCONNECTED, message=f"the broker state file {self.path} says the broker is down"
                        )
                    )
                previous = None
                continue
            if previous is None:
                emit(ConnectionChange(CONNECTED, message=f"watching {self.path}", catch_up=True))
                previous = current
                continue
            for account_id, prints in current.items():
                before = previous.get(account_id, {})
                for key, value in prints.items():
                    if before.get(key) == value:
                        continue
                    kind, _, detail = key.partition(":")
                    if kind == "execution":
                        emit(AccountEvent("execution" if key not in before else "commission", account_id, detail))
                    else:
                        emit(AccountEvent("position", account_id, detail))
                for key in before.keys() - prints.keys():
                    if key.startswith("position:"):
                        emit(AccountEvent("position", account_id, key.partition(":")[2]))
            previous = current
