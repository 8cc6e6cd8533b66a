"""An IB Gateway simulator: an asyncio server that speaks the TWS API socket protocol.

It answers from the broker state file (broker-state.md), read afresh for every request, so whoever
rewrites the file changes what "the gateway" says next. Its ``faults`` object scripts a failing
gateway per request (README, "IB Gateway simulator"). Many clients may be connected at once; a
client id that is already connected is refused with error 326, as IB Gateway does.

What it keeps in memory: the connected client ids, the orders placed through it (open and done),
and the next order id per client. Fills of those orders are written into the state file.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.brokers.contracts import SecType
from core.brokers.gateway_sim.messages import Encoder, WireContract, WireOrder
from core.brokers.gateway_sim.protocol import (
    MAX_SERVER_VERSION,
    MIN_SERVER_VERSION,
    Fields,
    In,
    ProtocolError,
    negotiate,
    parse_version_range,
    read_frame,
)
from core.brokers.gateway_sim.state import Fill, GatewayState, StateError, fill_record

logger = logging.getLogger(__name__)

# What IB Gateway says for the codes the simulator sends on its own.
MESSAGES = {
    162: "Historical Market Data Service error message:HMDS query returned no data: {what}",
    200: "No security definition has been found for the request",
    201: "Order rejected - reason:{what}",
    202: "Order Canceled - reason:",
    321: "Error validating request.-'{what}'",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2104: "Market data farm connection is OK:usfarm",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10147: "OrderId {what} that needs to be cancelled is not found.",
    10148: "OrderId {what} that needs to be cancelled cannot be cancelled, state: {state}.",
}
# Notices IB Gateway sends after every API connect (reqId -1): informational, nothing is wrong.
CONNECT_NOTICES = (2104, 2106, 2158)

BAR_SIZES = {"1 min": "1m", "5 mins": "5m", "15 mins": "15m", "1 hour": "1h", "1 day": "1d"}
DURATION_UNITS = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 31 * 86_400, "Y": 366 * 86_400}
ANSWERS = ("normal", "empty", "partial", "none")
# Live and delayed tick types: bid, ask, last, close; and their sizes.
TICKS = {1: (1, 2, 4, 9), 3: (66, 67, 68, 75)}
SIZE_TICKS = {1: (0, 3, 5), 3: (69, 70, 71)}
LAST_TIMESTAMP = 45
MODEL_GREEKS = {1: 13, 3: 83}  # the model option computation tick, live and delayed
OPTION_TYPES = {SecType.OPTION, SecType.FUTURE_OPTION}
# An option's day volume and last trade time, live and delayed; its open interest (generic tick 101:
# call open interest for a call, put open interest for a put).
VOLUME_TICK = {1: 8, 3: 74}
TIMESTAMP_TICK = {1: 45, 3: 88}
OPEN_INTEREST_TICK = {"C": 27, "P": 28}


def message_for(code: int, **what: Any) -> str:
    template = MESSAGES.get(code, f"simulated error {code}")
    try:
        return template.format(what=what.get("what", ""), state=what.get("state", ""))
    except (KeyError, IndexError):
        return template


# --- faults -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """What the state file's ``faults`` says for one request (README, "The faults object")."""

    delay: float = 0.0
    errors: tuple[tuple[int | None, int, str], ...] = ()  # (reqId or None for the request's, code, message)
    answer: str = "normal"
    drop: bool = False

    @classmethod
    def parse(cls, raw: Any, where: str, *, answer_after_errors: str = "none") -> "Fault":
        if not isinstance(raw, dict):
            return cls()
        errors = []
        listed = raw.get("errors")
        if raw.get("error") is not None:
            listed = [raw["error"], *(listed or [])]
        for item in listed or ():
            if isinstance(item, int) and not isinstance(item, bool):
                item = {"code": item}
            if not isinstance(item, dict) or not isinstance(item.get("code"), int):
                logger.warning("ibgateway_sim: faults.%s: error without an integer code ignored: %r", where, item)
                continue
            req_id = item.get("req_id")
            errors.append(
                (
                    req_id if isinstance(req_id, int) and not isinstance(req_id, bool) else None,
                    item["code"],
                    str(item.get("message") or message_for(item["code"], what=where)),
                )
            )
        answer = raw.get("answer", answer_after_errors if errors else "normal")
        if answer not in ANSWERS:
            logger.warning("ibgateway_sim: faults.%s.answer %r is not one of %s", where, answer, ", ".join(ANSWERS))
            answer = "normal"
        try:
            delay = max(float(raw.get("delay") or 0), 0.0)
        except (TypeError, ValueError):
            delay = 0.0
        return cls(delay=delay, errors=tuple(errors), answer=answer, drop=raw.get("drop") is True)


def fault_for(faults: dict, name: str, *, wildcard: bool = True) -> Fault:
    """The fault for one request name; ``"*"`` stands for every request not named (not for the handshake
    or the commission reports)."""
    if name in faults:
        # The handshake goes on after connect errors (notices sent after it) unless told otherwise.
        return Fault.parse(faults[name], name, answer_after_errors="normal" if name == "connect" else "none")
    if wildcard and "*" in faults:
        return Fault.parse(faults["*"], "*")
    return Fault()


@dataclass
class Answer:
    """A request's answer: rows, the end marker, and messages sent later (delay in seconds, frame)."""

    rows: list[bytes] = field(default_factory=list)
    end: list[bytes] = field(default_factory=list)
    later: list[tuple[float, bytes]] = field(default_factory=list)
    after: list[Callable[[], Any]] = field(default_factory=list)  # run once the answer is sent


# --- requests -----------------------------------------------------------------------------------
# message id -> (fault name, where the request id sits in the fields or None)
REQUESTS = {
    In.REQ_POSITIONS: ("positions", None),
    In.REQ_ACCOUNT_SUMMARY: ("account_summary", 2),
    In.REQ_ACCT_DATA: ("account_updates", None),
    In.REQ_ACCOUNT_UPDATES_MULTI: ("account_updates_multi", 2),
    In.REQ_EXECUTIONS: ("executions", 2),
    In.REQ_CONTRACT_DATA: ("contract_details", 2),
    In.REQ_HISTORICAL_DATA: ("historical_data", 1),
    In.REQ_MKT_DATA: ("market_data", 2),
    In.REQ_SEC_DEF_OPT_PARAMS: ("option_chains", 1),
    In.PLACE_ORDER: ("place_order", 1),
    In.CANCEL_ORDER: ("cancel_order", 2),
    In.REQ_OPEN_ORDERS: ("open_orders", None),
    In.REQ_ALL_OPEN_ORDERS: ("open_orders", None),
    In.REQ_COMPLETED_ORDERS: ("completed_orders", None),
    In.REQ_CURRENT_TIME: ("current_time", None),
    In.REQ_IDS: ("ids", None),
    In.REQ_MANAGED_ACCTS: ("managed_accounts", None),
    In.REQ_GLOBAL_CANCEL: ("global_cancel", None),
}
# Messages that need no answer: cancels and settings.
SILENT = {
    In.CANCEL_MKT_DATA,
    In.CANCEL_HISTORICAL_DATA,
    In.CANCEL_ACCOUNT_SUMMARY,
    In.CANCEL_POSITIONS,
    In.CANCEL_ACCOUNT_UPDATES_MULTI,
    In.REQ_MARKET_DATA_TYPE,
    In.REQ_AUTO_OPEN_ORDERS,
}


def _parse_ib_time(raw: str) -> datetime | None:
    """``20261120 14:32:15``, ``20261120 14:32:15 UTC``, ``20261120-14:32:15`` (UTC) or ``20261120``."""
    text = raw.strip()
    if not text:
        return None
    zone = None
    if "-" in text[:9]:
        text = text.replace("-", " ", 1)
    parts = text.split(" ")
    if len(parts) >= 3:
        zone = parts[2]
    try:
        if len(parts) == 1:
            moment = datetime.strptime(parts[0], "%Y%m%d")
        else:
            moment = datetime.strptime(f"{parts[0]} {parts[1]}", "%Y%m%d %H:%M:%S")
    except ValueError:
        return None
    if zone and zone.upper() not in ("UTC", "GMT"):
        from zoneinfo import ZoneInfo

        try:
            return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
        except Exception:
            return None
    return moment.replace(tzinfo=UTC)


def _duration(raw: str) -> timedelta | None:
    amount, _, unit = raw.strip().partition(" ")
    try:
        return timedelta(seconds=int(amount) * DURATION_UNITS[unit.strip().upper()])
    except (ValueError, KeyError):
        return None


def _commission(contract: WireContract, quantity: Decimal, price: Decimal) -> Decimal:
    """IBKR's fixed pricing, roughly: per share for stocks, per contract for options and futures."""
    if contract.sec_type in (SecType.OPTION, SecType.FUTURE_OPTION):
        fee = max(quantity * Decimal("0.65"), Decimal("1.00"))
    elif contract.sec_type == SecType.FUTURE:
        fee = quantity * Decimal("0.85")
    else:
        fee = min(max(quantity * Decimal("0.005"), Decimal("1.00")), quantity * price * Decimal("0.01"))
    return fee.quantize(Decimal("0.01"))


class _Connection:
    """One API client: the handshake, then every request in its own task."""

    def __init__(self, sim: "GatewaySimulator", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.encoder = Encoder(sim.server_version)
        self.client_id: int | None = None
        self.market_data_type = 1
        self.closed = False
        # reqPositions is a subscription at IBKR: later changes are pushed to whoever asked once.
        self.positions_subscribed = False
        self.tasks: set[asyncio.Task] = set()
        self.timers: list[asyncio.TimerHandle] = []

    # --- sending -----------------------------------------------------------------------------------
    def send(self, *frames: bytes) -> None:
        if self.closed or not frames:
            return
        self.writer.write(b"".join(frames))

    def send_later(self, delay: float, message: bytes) -> None:
        self.timers.append(asyncio.get_running_loop().call_later(delay, self.send, message))

    def drop(self) -> None:
        """Close the socket as a gateway that went away would."""
        if not self.closed:
            self.closed = True
            self.writer.close()  # what was already written still goes out, then the socket closes

    def error(self, req_id: int, code: int, message: str | None = None, **what: Any) -> bytes:
        return self.encoder.error(req_id, code, message or message_for(code, **what))

    # --- the connection ------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._handshake()
            while not self.closed:
                fields = await read_frame(self.reader)
                if not fields:
                    continue
                task = asyncio.create_task(self._request(fields))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            if isinstance(exc, ProtocolError):
                logger.warning("ibgateway_sim: %s", exc)
        finally:
            self.closed = True
            for timer in self.timers:
                timer.cancel()
            for task in list(self.tasks):
                task.cancel()
            if self.client_id is not None and self.sim.clients.get(self.client_id) is self:
                del self.sim.clients[self.client_id]
            self.sim.connections.discard(self)
            with contextlib.suppress(Exception):
                self.writer.close()

    def _state(self) -> GatewayState | None:
        """The state file now; None (and the connection dropped) when the gateway is "down"."""
        try:
            state = GatewayState(self.sim.state_path)
        except StateError as exc:
            logger.warning("ibgateway_sim: %s; dropping the connection", exc)
            self.drop()
            return None
        if not state.connected:
            logger.info("ibgateway_sim: connected is false in %s; dropping the connection", self.sim.state_path)
            self.drop()
            return None
        return state

    async def _handshake(self) -> None:
        state = self._state()
        if state is None:
            return
        fault = fault_for(state.faults, "connect", wildcard=False)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            self.drop()
            return
        prefix = await self.reader.readexactly(4)
        if prefix != b"API\0":
            raise ProtocolError(f"expected API\\0, got {prefix!r}")
        client_min, client_max = parse_version_range(await read_frame(self.reader))
        version = negotiate(client_min, client_max, self.sim.server_version)
        if version is None:
            logger.warning(
                "ibgateway_sim: client speaks %s..%s, the simulator %s..%s; closing",
                client_min,
                client_max,
                MIN_SERVER_VERSION,
                self.sim.server_version,
            )
            self.drop()
            return
        self.encoder = Encoder(version)
        if fault.answer == "none":  # a gateway that accepts and never answers the handshake
            await self.reader.read()
            self.drop()
            return
        self.send(self.encoder.handshake(datetime.now(UTC)))
        start = Fields(await read_frame(self.reader))
        if start.int() != In.START_API:
            raise ProtocolError(f"expected START_API, got {start.fields}")
        start.skip()  # version
        client_id = start.int()
        state = self._state()
        if state is None:
            return
        in_use = state.faults.get("client_ids_in_use")
        if client_id in self.sim.clients or (isinstance(in_use, list) and client_id in in_use):
            self.send(self.error(-1, 326))
            await asyncio.sleep(0.05)
            self.drop()
            return
        self.client_id = client_id
        self.sim.clients[client_id] = self
        self.send(
            self.encoder.next_valid_id(self.sim.next_order_id(client_id)),
            self.encoder.managed_accounts(state.account_ids()),
            *(self.error(-1, code) for code in CONNECT_NOTICES),
            *(self.error(-1 if req_id is None else req_id, code, message) for req_id, code, message in fault.errors),
        )

    async def _request(self, raw: list[str]) -> None:
        try:
            msg_id = int(raw[0])
        except ValueError:
            logger.warning("ibgateway_sim: not a message id: %r", raw[0])
            return
        if msg_id in SILENT:
            if msg_id == In.REQ_MARKET_DATA_TYPE and len(raw) > 2:
                self.market_data_type = 3 if raw[2] in ("3", "4") else 1
            return
        if msg_id not in REQUESTS:
            logger.warning("ibgateway_sim: message %s is not one the simulator speaks; answered with 321", msg_id)
            self.send(self.error(-1, 321, what=f"message id {msg_id} is not simulated"))
            return
        name, id_at = REQUESTS[msg_id]
        if msg_id == In.REQ_ACCT_DATA and (len(raw) < 3 or raw[2] not in ("1", "True")):
            return  # an unsubscribe
        state = self._state()
        if state is None:
            return
        req_id = -1
        if id_at is not None and len(raw) > id_at:
            with contextlib.suppress(ValueError):
                req_id = int(raw[id_at])
        fault = fault_for(state.faults, name)
        if fault.delay:
            await asyncio.sleep(fault.delay)
            state = self._state()
            if state is None:
                return
        self.send(*(self.error(req_id if rid is None else rid, code, message) for rid, code, message in fault.errors))
        if fault.answer != "none":
            try:
                answer = await getattr(self, f"_on_{name}")(state, Fields(raw), req_id)
            except Exception:
                logger.exception("ibgateway_sim: %s request failed: %s", name, raw)
                answer = Answer(end=[self.error(req_id, 321, what=f"simulator failure in {name}")])
            if fault.answer in ("normal", "partial"):
                self.send(*answer.rows)
            if fault.answer in ("normal", "empty"):
                self.send(*answer.end)
            if fault.answer == "normal":
                for delay, message in answer.later:
                    self.send_later(delay, message)
                for action in answer.after:
                    action()
        if fault.drop:
            await self.writer.drain()
            self.drop()

    # --- accounts and positions ---------------------------------------------------------------------
    async def _on_managed_accounts(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        return Answer(end=[self.encoder.managed_accounts(state.account_ids())])

    async def _on_current_time(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        return Answer(end=[self.encoder.current_time(datetime.now(UTC))])

    async def _on_ids(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        return Answer(end=[self.encoder.next_valid_id(self.sim.next_order_id(self.client_id or 0))])

    async def _on_positions(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        self.positions_subscribed = True
        rows = [
            self.encoder.position(p.account, p.contract, p.quantity, p.avg_cost)
            for account_id in state.account_ids()
            for p in state.positions(account_id)
        ]
        return Answer(rows=rows, end=[self.encoder.position_end()])

    async def _on_account_summary(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        f.skip(3)  # id, version, reqId
        group = f.next()
        tags = [t.strip() for t in f.next().split(",") if t.strip()]
        wanted = {t for t in tags if not t.startswith("$LEDGER")}
        ledger = [t for t in tags if t.startswith("$LEDGER")]
        rows = []
        if group and group != "All" and group not in state.account_ids():
            return Answer(end=[self.error(req_id, 321, what=f"account group {group} is not known")])
        for account_id in state.account_ids():
            for tag, value, currency in state.summary_values(account_id):
                if tag in wanted:
                    rows.append(self.encoder.account_summary(req_id, account_id, tag, value, currency))
            for spec in ledger:
                currencies = spec.partition(":")[2] or "BASE"
                for tag, value, currency in state.ledger_values(account_id, currencies.upper()):
                    rows.append(self.encoder.account_summary(req_id, account_id, tag, value, currency))
        return Answer(rows=rows, end=[self.encoder.account_summary_end(req_id)])

    async def _on_account_updates(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        f.skip(3)  # id, version, subscribe
        account_id = f.next() or (state.account_ids()[0] if len(state.account_ids()) == 1 else "")
        if state.account(account_id) is None:
            return Answer(end=[self.error(-1, 321, what=f"account {account_id!r} is not managed by this login")])
        rows = [self.encoder.account_value(t, v, c, account_id) for t, v, c in state.update_values(account_id)]
        for p in state.positions(account_id):
            if p.quantity == 0:
                continue
            rows.append(
                self.encoder.portfolio_value(
                    p.contract,
                    quantity=p.quantity,
                    market_price=p.market_price,
                    market_value=p.market_value,
                    average_cost=p.avg_cost,
                    unrealized_pnl=p.unrealized_pnl,
                    realized_pnl=Decimal(0),
                    account=account_id,
                )
            )
        rows.append(self.encoder.account_update_time(datetime.now(UTC)))
        return Answer(rows=rows, end=[self.encoder.account_download_end(account_id)])

    async def _on_account_updates_multi(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        f.skip(3)  # id, version, reqId
        account_id = f.next()
        model_code = f.next()
        accounts = state.account_ids() if account_id in ("", "All") else [account_id]
        rows = []
        for account in accounts:
            if state.account(account) is None:
                return Answer(end=[self.error(req_id, 321, what=f"account {account!r} is not managed by this login")])
            for tag, value, currency in state.update_values(account):
                rows.append(self.encoder.account_update_multi(req_id, account, model_code, tag, value, currency))
        return Answer(rows=rows, end=[self.encoder.account_update_multi_end(req_id)])

    # --- executions -----------------------------------------------------------------------------------
    async def _on_executions(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        f.skip(3)  # id, version, reqId
        client_id = f.int()
        account_filter = f.next()
        since = _parse_ib_time(f.next())
        symbol = f.next().upper()
        sec_type = f.next().upper()
        exchange = f.next().upper()
        side = f.next().upper()
        reports = fault_for(state.faults, "commission_reports", wildcard=False)
        answer = Answer(end=[self.encoder.execution_end(req_id)])
        for account_id in state.account_ids():
            if account_filter and account_filter != account_id:
                continue
            for e in state.executions(account_id):
                row = e.row
                if client_id and e.client_id != client_id:
                    continue
                if since is not None and row.executed_at < since:
                    continue
                if symbol and e.contract.symbol != symbol:
                    continue
                if sec_type and e.contract.sec_type != sec_type:
                    continue
                if exchange and (row.exchange or "").upper() != exchange:
                    continue
                if side and side not in (row.side, e.side):
                    continue
                answer.rows.append(
                    self.encoder.execution(
                        req_id,
                        e.contract,
                        order_id=row.order_id or 0,
                        exec_id=row.exec_id,
                        time=row.executed_at,
                        account=account_id,
                        exchange=row.exchange or "SMART",
                        side=e.side,
                        shares=row.quantity,
                        price=row.price,
                        perm_id=row.perm_id or 0,
                        client_id=e.client_id,
                        cum_qty=row.quantity,
                        avg_price=row.price,
                    )
                )
                if row.commission is None or reports.answer == "none":
                    continue  # a commission report that never comes
                report = self.encoder.commission_report(
                    row.exec_id, row.commission, row.commission_currency or e.contract.currency, e.realized_pnl
                )
                delay = e.commission_delay or reports.delay
                if delay:
                    answer.later.append((delay, report))
                else:
                    answer.rows.append(report)
        return answer

    # --- contracts and market data --------------------------------------------------------------------
    async def _on_contract_details(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        f.skip(3)  # id, version, reqId
        matches = state.lookup(f.contract())
        if not matches:
            return Answer(end=[self.error(req_id, 200)])
        rows = [self.encoder.contract_details(req_id, c) for c in matches]
        return Answer(rows=rows, end=[self.encoder.contract_details_end(req_id)])

    async def _on_historical_data(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        f.skip(2)  # id, reqId
        wanted = f.contract()
        f.skip()  # includeExpired
        end_text = f.next()
        bar_setting = f.next()
        duration_text = f.next()
        f.skip(2)  # useRTH, whatToShow
        format_date = f.int(1)
        if (wanted.get("secType") or "").upper() == "CASH":
            return self._fx_history(state, wanted, req_id, end_text, bar_setting, duration_text)
        matches = state.lookup(wanted)
        if not matches:
            return Answer(end=[self.error(req_id, 200)])
        contract = matches[0]
        bar_size = BAR_SIZES.get(bar_setting.strip())
        window = self._window(req_id, end_text, duration_text)
        if isinstance(window, Answer):
            return window
        start, end = window
        bars = [b for b in state.bars(contract.symbol, bar_size) if start <= b.start < end] if bar_size else []
        if not bars:
            what = f"{contract.symbol}@SMART Trades ({bar_setting}, {duration_text} up to {end_text or 'now'})"
            return Answer(end=[self.error(req_id, 162, what=what)])
        rows = []
        for bar in bars:
            if bar_size == "1d":
                stamp = bar.start.strftime("%Y%m%d")
            elif format_date == 2:
                stamp = str(int(bar.start.timestamp()))
            else:
                stamp = bar.start.strftime("%Y%m%d %H:%M:%S UTC")
            wap = ((bar.high + bar.low + bar.close) / 3).quantize(Decimal("0.0001"))
            rows.append((stamp, bar.open, bar.high, bar.low, bar.close, bar.volume, wap, 1))
        message = self.encoder.historical_data(
            req_id, start.strftime("%Y%m%d %H:%M:%S"), end.strftime("%Y%m%d %H:%M:%S"), rows
        )
        return Answer(end=[message])

    def _window(self, req_id: int, end_text: str, duration_text: str) -> tuple[datetime, datetime] | Answer:
        """A historical request's [start, end) from its end time (empty: now) and duration, or error 321."""
        duration = _duration(duration_text)
        if duration is None:
            return Answer(end=[self.error(req_id, 321, what=f"invalid duration {duration_text!r}")])
        end = _parse_ib_time(end_text) if end_text else datetime.now(UTC)
        if end is None:
            return Answer(end=[self.error(req_id, 321, what=f"invalid end date/time {end_text!r}")])
        return end - duration, end

    def _fx_history(
        self, state: GatewayState, wanted: dict, req_id: int, end_text: str, bar_setting: str, duration_text: str
    ) -> Answer:
        """A cash pair's daily MIDPOINT bars from the state file's ``fx_history`` (open = high = low = close
        = the day's rate), dated YYYYMMDD as IBKR dates daily bars."""
        symbol, quote = (wanted.get("symbol") or "").upper(), (wanted.get("currency") or "").upper()
        rates = state.fx_history(symbol, quote)
        if rates is None:
            return Answer(end=[self.error(req_id, 200)])
        window = self._window(req_id, end_text, duration_text)
        if isinstance(window, Answer):
            return window
        start, end = window
        days = [r for r in rates if start.date() <= r.day < end.date() or (r.day == end.date() and not end_text)]
        if BAR_SIZES.get(bar_setting.strip()) != "1d" or not days:
            what = f"{symbol}.{quote}@IDEALPRO Midpoint ({bar_setting}, {duration_text} up to {end_text or 'now'})"
            return Answer(end=[self.error(req_id, 162, what=what)])
        rows = [(r.day.strftime("%Y%m%d"), r.rate, r.rate, r.rate, r.rate, -1, -1, -1) for r in days]
        message = self.encoder.historical_data(
            req_id, start.strftime("%Y%m%d %H:%M:%S"), end.strftime("%Y%m%d %H:%M:%S"), rows
        )
        return Answer(end=[message])

    async def _on_market_data(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        f.skip(3)  # id, version, reqId
        wanted = f.contract()
        if wanted["secType"] == "BAG":
            f.skip(f.int() * 4)
        if f.int():
            f.skip(3)  # delta-neutral contract
        generic = {t.strip() for t in f.next().split(",") if t.strip()}
        snapshot = f.next() in ("1", "True")
        matches = state.lookup(wanted)
        if not matches:
            return Answer(end=[self.error(req_id, 200)])
        contract = matches[0]
        if contract.sec_type == SecType.OPTION:
            return self._option_market_data(state, contract, req_id, generic=generic, snapshot=snapshot)
        quote = state.quote(contract.symbol) if contract.sec_type == SecType.STOCK else None
        data_type = self.market_data_type
        rows = [self.encoder.market_data_type(req_id, data_type)]
        if quote is not None:
            bid, ask, last, _close = TICKS[data_type]
            for tick, price in ((bid, quote.bid), (ask, quote.ask), (last, quote.last)):
                if price is not None:
                    rows.append(self.encoder.tick_price(req_id, tick, price, 100))
            if quote.at is not None:
                rows.append(self.encoder.tick_string(req_id, LAST_TIMESTAMP, str(int(quote.at.timestamp()))))
        rows += self._model_greeks(state, contract, req_id, data_type)  # a future option's
        return Answer(rows=rows, end=[self.encoder.tick_snapshot_end(req_id)] if snapshot else [])

    def _model_greeks(self, state: GatewayState, contract: WireContract, req_id: int, data_type: int) -> list[bytes]:
        """The option's model Greeks (its position row's ``greeks``) as an option computation tick."""
        model = state.model_greeks(contract.con_id) if contract.sec_type in OPTION_TYPES else None
        if model is None:
            return []
        greeks, option_price = model
        return [
            self.encoder.tick_option_computation(
                req_id,
                MODEL_GREEKS[data_type],
                iv=greeks.iv,
                delta=greeks.delta,
                option_price=option_price,
                gamma=greeks.gamma,
                vega=greeks.vega,
                theta=greeks.theta,
                underlying_price=greeks.underlying_price,
            )
        ]

    def _option_market_data(
        self, state: GatewayState, contract: WireContract, req_id: int, *, generic: set[str], snapshot: bool
    ) -> Answer:
        """An option's ticks as IBKR sends them: bid and ask (price -1 with size 0 when there is none),
        last price and size, the day's volume, the last trade's time and, with generic tick 101, its
        open interest; delayed tick types when delayed data was asked for."""
        market = state.option_market(contract)
        data_type = self.market_data_type
        bid_tick, ask_tick, last_tick, _close = TICKS[data_type]
        rows = [self.encoder.market_data_type(req_id, data_type)]
        for tick, price in ((bid_tick, market.bid), (ask_tick, market.ask)):
            rows.append(
                self.encoder.tick_price(
                    req_id, tick, price if price is not None else Decimal(-1), 0 if price is None else 10
                )
            )
        if market.last is not None:
            rows.append(self.encoder.tick_price(req_id, last_tick, market.last, market.last_size or 0))
        rows.append(self.encoder.tick_size(req_id, VOLUME_TICK[data_type], market.volume))
        if market.last_time is not None:
            rows.append(
                self.encoder.tick_string(req_id, TIMESTAMP_TICK[data_type], str(int(market.last_time.timestamp())))
            )
        if "101" in generic and market.open_interest is not None:
            rows.append(self.encoder.tick_size(req_id, OPEN_INTEREST_TICK[contract.right], market.open_interest))
        rows += self._model_greeks(state, contract, req_id, data_type)
        return Answer(rows=rows, end=[self.encoder.tick_snapshot_end(req_id)] if snapshot else [])

    async def _on_option_chains(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        f.skip(2)  # id, reqId
        symbol = f.next().upper()
        f.skip()  # futFopExchange
        sec_type = f.next().upper()
        con_id = f.int()
        chain = state.option_chains().get(symbol)
        if chain is None or sec_type not in ("", SecType.STOCK):
            # IB Gateway answers an underlying without options with an empty list.
            return Answer(end=[self.encoder.option_chain_end(req_id)])
        row = self.encoder.option_chain(
            req_id,
            exchange="SMART",
            underlying_con_id=con_id,
            trading_class=symbol,
            multiplier=f"{chain.multiplier.normalize():f}",
            expirations=[e.strftime("%Y%m%d") for e in chain.expiries],
            strikes=chain.strikes,
        )
        return Answer(rows=[row], end=[self.encoder.option_chain_end(req_id)])

    # --- orders ---------------------------------------------------------------------------------------
    async def _on_place_order(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        f.skip()
        order_id = f.int()
        wanted = f.contract()
        f.skip(2)  # secIdType, secId
        action = f.next().upper()
        quantity = f.decimal() or Decimal(0)
        order_type = f.next().upper()
        limit_price = f.decimal()
        aux_price = f.decimal()
        tif = f.next() or "DAY"
        f.skip()  # ocaGroup
        account = f.next()
        f.skip(2)  # openClose, origin
        order_ref = f.next()
        client_id = self.client_id or 0
        accounts = state.account_ids()
        if not account and len(accounts) == 1:
            account = accounts[0]
        if account not in accounts:
            return Answer(end=[self.error(order_id, 201, what=f" account {account!r} is not managed by this login")])
        if action not in ("BUY", "SELL") or quantity <= 0:
            return Answer(end=[self.error(order_id, 201, what=f" invalid action {action!r} or quantity {quantity}")])
        matches = state.lookup(wanted)
        if len(matches) != 1:
            return Answer(end=[self.error(order_id, 200)])
        existing = self.sim.orders.get((client_id, order_id))
        if existing is not None and existing.done:
            return Answer(end=[self.error(order_id, 103, "Duplicate order id")])
        if existing is not None:  # a modification of an open order
            existing.quantity, existing.order_type = quantity, order_type
            existing.limit_price, existing.aux_price = limit_price, aux_price
            order = existing
        else:
            order = WireOrder(
                order_id=order_id,
                client_id=client_id,
                perm_id=self.sim.next_perm_id(),
                account=account,
                contract=matches[0],
                action=action,
                quantity=quantity,
                order_type=order_type,
                limit_price=limit_price,
                aux_price=aux_price,
                tif=tif,
                order_ref=order_ref,
                status="Submitted",
            )
            self.sim.orders[(client_id, order_id)] = order
            self.sim.note_order_id(client_id, order_id)
        answer = Answer(rows=[self.encoder.open_order(order), self.encoder.order_status(order)])
        answer.after.append(lambda: self.sim.try_fill(order, state))
        return answer

    async def _on_cancel_order(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        order = self.sim.orders.get((self.client_id or 0, req_id))
        if order is None:
            return Answer(end=[self.error(req_id, 10147, what=req_id)])
        if order.done:
            return Answer(end=[self.error(req_id, 10148, what=req_id, state=order.status)])
        self.sim.cancel(order)
        return Answer()

    async def _on_global_cancel(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        for order in list(self.sim.orders.values()):
            if not order.done:
                self.sim.cancel(order)
        return Answer()

    async def _on_open_orders(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        everyone = f.fields[0] == str(In.REQ_ALL_OPEN_ORDERS) or self.client_id == 0
        rows = []
        for order in self.sim.orders.values():
            if order.done or (not everyone and order.client_id != self.client_id):
                continue
            rows += [self.encoder.open_order(order), self.encoder.order_status(order)]
        return Answer(rows=rows, end=[self.encoder.open_order_end()])

    async def _on_completed_orders(self, state: GatewayState, f: Fields, req_id: int) -> Answer:
        rows = [self.encoder.completed_order(o) for o in self.sim.orders.values() if o.done]
        return Answer(rows=rows, end=[self.encoder.completed_orders_end()])


class GatewaySimulator:
    """The server: ``await start()`` binds (port 0 picks a free one), ``await stop()`` closes everything."""

    def __init__(
        self,
        state_path: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 4002,
        server_version: int = MAX_SERVER_VERSION,
        write_fills: bool = True,
        watch_interval: float | None = 0.2,
    ) -> None:
        if not MIN_SERVER_VERSION <= server_version <= MAX_SERVER_VERSION:
            raise ValueError(f"server version must be within {MIN_SERVER_VERSION}..{MAX_SERVER_VERSION}")
        self.state_path = Path(state_path)
        self.host = host
        self.port = port
        self.server_version = server_version
        self.write_fills = write_fills
        self.server: asyncio.Server | None = None
        self.connections: set[_Connection] = set()
        self.clients: dict[int, _Connection] = {}
        self.orders: dict[tuple[int, int], WireOrder] = {}
        self._next_ids: dict[int, int] = {}
        self._perm_id = 1_000_000 + int(time.time()) % 1_000_000
        # Pushing events when the state file changes (IB Gateway pushes fills and position changes).
        self.watch_interval = watch_interval
        self._watcher: asyncio.Task | None = None
        self._seen: StateSnapshot | None = None
        self._own_exec_ids: set[str] = set()  # fills of orders placed here: already sent to their owner

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        logger.info("ibgateway_sim: serving %s on %s:%s", self.state_path, self.host, self.port)
        if self.watch_interval and (self._watcher is None or self._watcher.done()):
            if self._seen is None:
                self._seen = StateSnapshot.read(self.state_path)
            self._watcher = asyncio.create_task(self._watch())
        return self.port

    async def stop(self) -> None:
        """Stop listening and drop every connection (a gateway that was shut down)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(BaseException):
                await self._watcher
            self._watcher = None
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.drop()
        for _ in range(200):  # the connections notice the close and end
            if not self.connections:
                break
            await asyncio.sleep(0.01)
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None
        self.clients.clear()

    async def serve_forever(self) -> None:
        if self.server is None:
            await self.start()
        assert self.server is not None
        await self.server.serve_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        self.connections.add(connection)
        await connection.run()

    # --- events pushed when the state file changes -------------------------------------------------
    async def _watch(self) -> None:
        """Poll the state file; when it changes, push what IB Gateway would push on its own: each new
        execution (EXECUTION_DATA with request id -1, then its COMMISSION_REPORT) to every connected
        client, as to a master API client, and each changed position (POSITION_DATA; quantity 0 for
        one that went away) to the clients subscribed to positions."""
        assert self.watch_interval
        while True:
            await asyncio.sleep(self.watch_interval)
            try:
                self.push_changes()
            except Exception:  # the watcher must outlive one bad read
                logger.exception("ibgateway_sim: pushing the state file's changes failed")

    def push_changes(self) -> int:
        """Compare the state file with the last look at it and push the differences; the number of
        messages pushed (0 when nothing changed or the file cannot be read)."""
        previous = self._seen
        current = StateSnapshot.read(self.state_path, unchanged=previous)
        if current is previous or current is None:
            return 0
        if not current.connected:
            # The gateway went down: its clients' sockets close (they see it at once, not at their
            # next request). What it held is remembered, so what appears while down is new when it is back.
            for connection in list(self.connections):
                connection.drop()
            self._seen = replace(previous, stamp=current.stamp) if previous is not None else current
            return 0
        self._seen = current
        if previous is None:
            return 0
        sent = 0
        live = [c for c in self.connections if c.client_id is not None and not c.closed]
        for exec_id, e in current.executions.items():
            if exec_id in previous.executions or exec_id in self._own_exec_ids:
                continue
            row = e.row
            for connection in live:
                frames = [
                    connection.encoder.execution(
                        -1,
                        e.contract,
                        order_id=row.order_id or 0,
                        exec_id=row.exec_id,
                        time=row.executed_at,
                        account=e.account,
                        exchange=row.exchange or "SMART",
                        side=e.side,
                        shares=row.quantity,
                        price=row.price,
                        perm_id=row.perm_id or 0,
                        client_id=e.client_id,
                        cum_qty=row.quantity,
                        avg_price=row.price,
                    )
                ]
                if row.commission is not None:
                    report = connection.encoder.commission_report(
                        row.exec_id, row.commission, row.commission_currency or e.contract.currency, e.realized_pnl
                    )
                    if e.commission_delay:
                        connection.send_later(e.commission_delay, report)
                    else:
                        frames.append(report)
                connection.send(*frames)
                sent += len(frames)
        changed = [
            p for key, p in current.position_rows.items() if previous.positions.get(key) != current.positions[key]
        ]
        gone = [p for key, p in previous.position_rows.items() if key not in current.positions]
        for connection in live:
            if not connection.positions_subscribed:
                continue
            frames = [connection.encoder.position(p.account, p.contract, p.quantity, p.avg_cost) for p in changed]
            frames += [connection.encoder.position(p.account, p.contract, Decimal(0), p.avg_cost) for p in gone]
            connection.send(*frames)
            sent += len(frames)
        return sent

    def notice(self, code: int, message: str | None = None) -> None:
        """Send a notice without a request (1100 connectivity lost, 1102 restored, 2110 ...) to every client."""
        for connection in list(self.connections):
            if connection.client_id is not None:
                connection.send(connection.error(-1, code, message))

    # --- ids ---------------------------------------------------------------------------------------
    def next_order_id(self, client_id: int) -> int:
        return self._next_ids.setdefault(client_id, 1)

    def note_order_id(self, client_id: int, order_id: int) -> None:
        self._next_ids[client_id] = max(self._next_ids.get(client_id, 1), order_id + 1)

    def next_perm_id(self) -> int:
        self._perm_id += 1
        return self._perm_id

    # --- orders ------------------------------------------------------------------------------------
    def _owner(self, order: WireOrder) -> "_Connection | None":
        return self.clients.get(order.client_id)

    def _broadcast_status(self, order: WireOrder) -> None:
        owner = self._owner(order)
        if owner is not None:
            owner.send(owner.encoder.open_order(order), owner.encoder.order_status(order))

    def cancel(self, order: WireOrder) -> None:
        order.status = "Cancelled"
        order.completed_time = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
        order.completed_status = "Cancelled by the API"
        owner = self._owner(order)
        if owner is not None:
            owner.send(owner.encoder.order_status(order), owner.error(order.order_id, 202))

    def try_fill(self, order: WireOrder, state: GatewayState) -> None:
        """Fill a marketable order at the quote: MKT at the ask (buy) or bid (sell), or the last price;
        LMT when the limit reaches that price. Other order types rest until cancelled."""
        if order.done or order.order_type not in ("MKT", "LMT"):
            return
        quote = state.quote(order.contract.symbol)
        if quote is None:
            return
        touch = (quote.ask if order.action == "BUY" else quote.bid) or quote.last
        if touch is None:
            return
        if order.order_type == "LMT":
            if order.limit_price is None:
                return
            if order.action == "BUY" and order.limit_price < touch:
                return
            if order.action == "SELL" and order.limit_price > touch:
                return
        now = datetime.now(UTC)
        quantity = order.remaining
        commission = _commission(order.contract, quantity, touch)
        exec_id = f"{order.perm_id:08x}.{int(now.timestamp()):08x}.{len(order.exec_ids) + 1:02d}.01"
        fill = Fill(
            account=order.account,
            contract=order.contract,
            exec_id=exec_id,
            order_id=order.order_id,
            perm_id=order.perm_id,
            client_id=order.client_id,
            side=order.action,
            quantity=quantity,
            price=touch,
            commission=commission,
            time=now,
        )
        if self.write_fills:
            try:
                fill_record(self.state_path, fill)
            except (OSError, ValueError, StateError) as exc:
                logger.error("ibgateway_sim: the fill of order %s was not written: %s", order.order_id, exc)
                return
        order.exec_ids.append(exec_id)
        self._own_exec_ids.add(exec_id)
        order.filled += quantity
        order.avg_fill_price = order.last_fill_price = touch
        order.status = "Filled"
        order.completed_time = now.strftime("%Y%m%d %H:%M:%S UTC")
        order.completed_status = "Filled"
        owner = self._owner(order)
        if owner is None:
            return
        encoder = owner.encoder
        owner.send(
            encoder.execution(
                -1,
                order.contract,
                order_id=order.order_id,
                exec_id=exec_id,
                time=now,
                account=order.account,
                exchange=fill.exchange,
                side="BOT" if order.action == "BUY" else "SLD",
                shares=quantity,
                price=touch,
                perm_id=order.perm_id,
                client_id=order.client_id,
                cum_qty=order.filled,
                avg_price=touch,
                order_ref=order.order_ref,
            ),
            encoder.order_status(order),
            encoder.open_order(order),
            encoder.commission_report(exec_id, commission, order.contract.currency),
        )


@dataclass(frozen=True)
class StateSnapshot:
    """What the watcher remembers of the state file: its stamp, executions by exec id, and each
    position's (quantity, avgCost) by (account, conId)."""

    stamp: tuple[int, int]
    connected: bool
    executions: dict[str, Any]
    positions: dict[tuple[str, int], Any]
    position_rows: dict[tuple[str, int], Any]

    @classmethod
    def read(cls, path: Path, *, unchanged: "StateSnapshot | None" = None) -> "StateSnapshot | None":
        """The file now; ``unchanged`` itself when its stamp has not moved; None when unreadable."""
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if unchanged is not None and unchanged.stamp == stamp:
            return unchanged
        try:
            state = GatewayState(path)
        except StateError:
            return None
        executions: dict[str, Any] = {}
        positions: dict[tuple[str, int], Any] = {}
        rows: dict[tuple[str, int], Any] = {}
        if state.connected:
            for account_id in state.account_ids():
                for e in state.executions(account_id):
                    executions[e.row.exec_id] = e
                for p in state.positions(account_id):
                    positions[(account_id, p.contract.con_id)] = (p.quantity, p.avg_cost)
                    rows[(account_id, p.contract.con_id)] = p
        return cls(stamp, state.connected, executions, positions, rows)


class SimulatorThread:
    """The simulator on its own event loop in a background thread: for tests and for tools that call
    the blocking IBKR adapter (which runs its own ``asyncio.run``) in the foreground.

    ``start()`` returns the port (0 binds a free one); ``restart()`` comes back on the same port.
    """

    def __init__(self, state_path: str | Path, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.sim = GatewaySimulator(state_path, host=host, port=port, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ibgateway-sim", daemon=True)

    @property
    def port(self) -> int:
        return self.sim.port

    def _call(self, coroutine: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> int:
        if not self.thread.is_alive():
            self.thread.start()
        return self._call(self.sim.start())

    def stop(self) -> None:
        self._call(self.sim.stop())

    def notice(self, code: int, message: str | None = None) -> None:
        self.loop.call_soon_threadsafe(self.sim.notice, code, message)

    def restart(self) -> None:
        """A gateway restart: every connection dropped, open orders kept, then listening again."""
        self.stop()
        self._call(self.sim.start())

    def close(self) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                self.stop()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        self.loop.close()

    def __enter__(self) -> "SimulatorThread":
        self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()
