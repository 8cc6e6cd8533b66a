"""Interactive Brokers through ib_async 2.1.0 (docs: ib-async-notes.md, architecture.md "The broker boundary").

Every public call is one short session, the shape that is safe in a Celery worker: ``asyncio.run()`` of a
coroutine that creates the ``IB`` object, connects, asks, and disconnects in ``finally``. Nothing is
shared between calls, threads or processes. Calling from inside a running event loop (an async view,
ASGI) raises BrokerError instead of blocking that loop.

Failures never come back as empty results, since an empty position list reads as "the account is
flat": ``RaiseRequestErrors`` is on, every request has a deadline, an unreachable gateway, a timeout or
a lost connection raises BrokerUnavailable, and an error answer raises BrokerError. A connectivity-lost
notice (1100, 2110, 10276) not followed by a restore (1101/1102) makes any answer BrokerUnavailable;
an error during a request that has no request id (positions, account updates) fails that request.

Connect fetches nothing at start-up that the call does not need (``StartupFetchNONE``; ib_async still
asks for positions), is bounded by the timeout, and ends at once on error 326 (client id in use), when
a client-id pool moves on to its next free id. Timeout messages say how long was really waited.

IBKR quirks are normalised here and nowhere else:

- avgCost is per share for stocks but price x multiplier for OPT/FUT/FOP: divided by the multiplier
  (an empty multiplier means 1);
- sides BOT/SLD become BUY/SELL;
- account values are strings; "", NaN, infinity and 1.797e308 (max double, "unset") become None;
- floats become ``Decimal(str(x))``, quantized with the project's precision (core.fields);
- times become aware UTC datetimes; a daily bar's date becomes midnight UTC of that date;
- an expiry given as a contract month (YYYYMM) becomes the last day of that month;
- in option market data, -1 for a missing bid or ask is none, and the day volume becomes prints (the
  volume since the last poll at the last price: ``option_prints``), marked when IBKR sent delayed data.

A row that cannot be normalised (no symbol, a security type the project does not model, an option
without strike, a time that overflows) or that would not fit where it is stored (a 300-character
symbol, an id beyond 64 bits: core/brokers/validation.py) is skipped with a warning that names it, as the
simulated adapter does. An answer that is not a list of rows is a failed request (BrokerError).
"""

import asyncio
import calendar
import contextlib
import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from ib_async import (
    IB,
    Contract,
    ExecutionFilter,
    Forex,
    LimitOrder,
    MarketOrder,
    Option,
    RequestError,
    Stock,
    StopLimitOrder,
    StopOrder,
)
from ib_async.ib import StartupFetchNONE

from core.brokers import limits, validation
from core.brokers.base import (
    BAR_SIZES,
    AccountValues,
    Bar,
    BrokerAccount,
    BrokerCashFlow,
    BrokerError,
    BrokerExecution,
    BrokerOptionGreeks,
    BrokerPosition,
    BrokerUnavailable,
    Fetched,
    FxDay,
    OptionGreeks,
    OptionPrint,
    OptionVolumeKey,
    OrderAck,
    OrderRequest,
    PacingViolation,
    Quote,
)
from core.brokers.contracts import InstrumentSpec, SecType
from core.brokers.validation import ROW_ERRORS, RowRejected, shown
from core.fields import (
    MONEY_PLACES,
    PRICE_PLACES,
    QUANTITY_PLACES,
    quantize_money,
    quantize_price,
    quantize_quantity,
    quantize_ratio,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

# IBKR's "unset" double is sys.float_info.max (1.7976931348623157e308); anything this large is unset.
UNSET_THRESHOLD = 1.79e308
UNSET_INTEGER = 2**31 - 1

# Account-summary tags and the AccountValues field each fills (DayTradesRemaining is an int, apart).
VALUE_TAGS = {
    "NetLiquidation": "net_liquidation",
    "TotalCashValue": "total_cash",
    "SettledCash": "settled_cash",
    "BuyingPower": "buying_power",
    "ExcessLiquidity": "excess_liquidity",
    "MaintMarginReq": "maint_margin_req",
    "UnrealizedPnL": "unrealized_pnl",
    "RealizedPnL": "realized_pnl",
}
# Summary tags IBKR reports once per account, in the account's base currency (never "BASE").
BASE_CURRENCY_TAGS = (
    "NetLiquidation",
    "TotalCashValue",
    "BuyingPower",
    "ExcessLiquidity",
    "MaintMarginReq",
    "SettledCash",
    "EquityWithLoanValue",
    "AvailableFunds",
)
CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")

# avgCost is price x multiplier for these (per share for everything else), and they have an expiry.
DERIVATIVES = {SecType.OPTION, SecType.FUTURE, SecType.FUTURE_OPTION}
OPTIONS = {SecType.OPTION, SecType.FUTURE_OPTION}
RIGHTS = {"C": "C", "CALL": "C", "P": "P", "PUT": "P"}
SIDES = {"BOT": "BUY", "SLD": "SELL", "BUY": "BUY", "SELL": "SELL"}

BAR_SETTINGS = {"1m": "1 min", "5m": "5 mins", "15m": "15 mins", "1h": "1 hour", "1d": "1 day"}
# Duration asked for when bars() gets no start: enough bars to be useful, within IBKR's limits.
DEFAULT_DURATIONS = {"1m": "1 D", "5m": "1 W", "15m": "2 W", "1h": "1 M", "1d": "1 Y"}
# Market data types (reqMarketDataType): 1 live, 3 delayed; a ticker of type 3 or 4 holds delayed data.
DELAYED_TYPES = {3, 4}
NO_SUBSCRIPTION = 354
# Historical requests are slow at IBKR; they get at least ib_async's own default deadline.
HISTORICAL_MIN_TIMEOUT = 60.0
# reqExecutions' time filter is read in the gateway's local zone when no zone is given, so the filter
# is widened by a day (more than any UTC offset) and the exact cut is made here, on aware UTC times.
EXECUTION_FILTER_MARGIN = timedelta(days=1)

# Error codes (tied to a request) that mean the gateway has no connection to IBKR.
UNAVAILABLE_CODES = {502, 504, 1100, 1300, 2110, 10182}
CLIENT_ID_IN_USE = 326
CONNECTIVITY_LOST = 1100
# Notices that the gateway lost its connection to IBKR, and that it got it back. An answer that comes
# while the connection is lost (not followed by a restore) is doubtful: it may be empty for that reason.
CONNECTIVITY_LOST_CODES = {1100, 2110, 10276}
CONNECTIVITY_RESTORED_CODES = {1101, 1102}
# Market data types (MARKET_DATA_TYPE): 1 live, 2 frozen, 3 delayed, 4 delayed frozen.
DELAYED_DATA_TYPES = {3, 4}


class UnusableRowError(RowRejected):
    pass


@dataclass(frozen=True, slots=True)
class OptionsFlowLimits:
    """How much of each underlying's option chain ``option_prints`` follows, and how it asks.

    ``expiries`` nearest expiries (not yet expired) x ``strikes`` strikes nearest the underlying's
    price x calls and puts, at most ``max_contracts`` contracts in all per poll; at most
    ``market_data_lines`` streaming subscriptions open at once (IBKR's allowance is 100 lines by
    default, shared with TWS and other clients); ``market_data_type`` 1 live, 3 live where subscribed
    and delayed otherwise; ``tick_wait`` seconds a batch may go without another contract's volume
    arriving before the contracts still silent are given up."""

    expiries: int = 2
    strikes: int = 4
    max_contracts: int = 200
    market_data_lines: int = 40
    market_data_type: int = 3
    tick_wait: float = 3.0
    time_zone: str = "America/New_York"


def _listed(where: str, what: str, answer: Any) -> list:
    """The rows of an answer; anything but a list is a failed request, never "no rows"."""
    if not isinstance(answer, list | tuple):
        raise BrokerError(f"{where}: {what}: a {type(answer).__name__}, not a list")
    return list(answer)


# --- numbers and times ---------------------------------------------------------------------------
def _float(value: Any) -> Decimal | None:
    """A float from ib_async as a Decimal, or None for NaN, infinity and IBKR's max-double "unset"."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() and abs(value) < UNSET_THRESHOLD else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number) or abs(number) >= UNSET_THRESHOLD:
        return None
    return Decimal(str(value)) if isinstance(value, int) else Decimal(repr(number))


def _text_number(value: str) -> Decimal | None:
    """An account value (a string) as a Decimal; None when unset. Raises UnusableRowError when not a number."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise UnusableRowError(f"not a number: {shown(value)!r}") from None
    if not number.is_finite() or abs(number) >= UNSET_THRESHOLD:
        return None
    return number


def _fit(value: Decimal | None, places: int, quantize: Callable[[Decimal], Decimal]) -> Decimal | None:
    """Round to the project's precision only when there are more places than it keeps (100.0 stays 100.0)."""
    if value is None or value.as_tuple().exponent >= -places:
        return value
    return quantize(value)


def _price(value: Decimal | None) -> Decimal | None:
    return _fit(value, PRICE_PLACES, quantize_price)


def _quantity(value: Decimal | None) -> Decimal | None:
    return _fit(value, QUANTITY_PLACES, quantize_quantity)


def _money(value: Decimal | None) -> Decimal | None:
    return _fit(value, MONEY_PLACES, quantize_money)


def _text_or_none(number: Decimal | None) -> str | None:
    return None if number is None else str(number)


def _utc(moment: datetime | date) -> datetime:
    """Aware UTC; a naive datetime is taken as UTC (ib_async's default zone), a date as its midnight UTC."""
    if not isinstance(moment, datetime):
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _optional_id(value: Any) -> int | None:
    """Order and perm ids: 0 and IBKR's unset integer (manual TWS orders) mean "none"."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return None if number in (0, UNSET_INTEGER) else number


def _expiry(raw: str) -> date:
    """lastTradeDateOrContractMonth: YYYYMMDD is that day; YYYYMM (a contract month) its last day."""
    text = (raw or "").strip().split(" ")[0].replace("-", "")
    try:
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if len(text) == 6 and text.isdigit():
            year, month = int(text[:4]), int(text[4:])
            return date(year, month, calendar.monthrange(year, month)[1])
    except ValueError:
        pass
    raise UnusableRowError(f"expiry: not YYYYMMDD or YYYYMM: {raw!r}")


def _instrument(contract: Any) -> InstrumentSpec:
    if contract is None:
        raise UnusableRowError("no contract")
    symbol = (getattr(contract, "symbol", "") or "").strip().upper()
    if not symbol:
        raise UnusableRowError("missing symbol")
    sec_type = (getattr(contract, "secType", "") or "").strip().upper()
    if sec_type not in SecType.values:
        raise UnusableRowError(f"security type {sec_type!r} is not one the ledger models")
    raw_multiplier = str(getattr(contract, "multiplier", "") or "").strip()
    try:
        multiplier = Decimal(raw_multiplier) if raw_multiplier else Decimal(1)
    except InvalidOperation:
        raise UnusableRowError(f"multiplier: not a number: {raw_multiplier!r}") from None
    if not multiplier.is_finite() or multiplier <= 0:
        raise UnusableRowError(f"multiplier: must be positive, got {raw_multiplier!r}")
    expiry = None
    strike = None
    right = ""
    if sec_type in DERIVATIVES:
        expiry = _expiry(getattr(contract, "lastTradeDateOrContractMonth", ""))
    if sec_type in OPTIONS:
        strike = _float(getattr(contract, "strike", None))
        if strike is None or strike <= 0:
            raise UnusableRowError(f"strike: must be positive, got {getattr(contract, 'strike', None)!r}")
        raw_right = (getattr(contract, "right", "") or "").strip().upper()
        if raw_right not in RIGHTS:
            raise UnusableRowError(f"right: expected C or P, got {raw_right!r}")
        right = RIGHTS[raw_right]
    con_id = getattr(contract, "conId", 0) or None
    return InstrumentSpec(
        symbol=symbol,
        sec_type=sec_type,
        currency=(getattr(contract, "currency", "") or "USD").strip().upper(),
        con_id=int(con_id) if con_id else None,
        exchange=(getattr(contract, "primaryExchange", "") or getattr(contract, "exchange", "") or "SMART").strip(),
        multiplier=multiplier,
        expiry=expiry,
        strike=strike,
        right=right,
    )


def _contract_label(contract: Any) -> str:
    symbol = shown(getattr(contract, "symbol", "") or "").strip() or "?"
    sec_type = shown(getattr(contract, "secType", "") or "").strip() or "?"
    con_id = getattr(contract, "conId", 0) or "?"
    return f"{sec_type} {symbol} (conId {shown(con_id)})"


def _duration(start: datetime, end: datetime) -> str:
    """IBKR durationStr covering [start, end]: seconds up to a day, then days, then years."""
    seconds = max((end - start).total_seconds(), 60.0)
    if seconds <= 86_400:
        return f"{math.ceil(seconds)} S"
    days = math.ceil(seconds / 86_400)
    if days <= 365:
        return f"{days} D"
    return f"{math.ceil(days / 365)} Y"


# --- one connection ------------------------------------------------------------------------------
def _is_status_message(code: int) -> bool:
    """Farm status notices (21xx) and connectivity notices that say nothing about one request."""
    return 2100 <= code < 2200 or code in (1100, 1101, 1102, 1300, 10276)


def _is_informational(code: int) -> bool:
    """Notices that are not an error of anything: farm status (21xx, but 2110 "connectivity broken"),
    connectivity restored, delayed market data shown instead of live."""
    return (2100 <= code < 2200 and code != 2110) or code in CONNECTIVITY_RESTORED_CODES or code == 10167


class ClientIdInUse(BrokerUnavailable):
    """The gateway refused the client id with error 326: another connection holds it."""


class _Session:
    """One connected IB object and the errors the gateway reported while it was open."""

    def __init__(self, ib: Any, broker: "IBKRBroker") -> None:
        self.ib = ib
        self.broker = broker
        self.started = time.monotonic()
        self.error_codes: list[int] = []
        self.error_messages: list[str] = []
        self.error_req_ids: list[int] = []
        self.error_con_ids: list[int] = []  # the conId of the contract an error names (0: none)
        # The connectivity notice in force: (code, message) of a 1100/10276 not yet followed by 1101/1102.
        self.connectivity_lost: tuple[int, str] | None = None
        self.client_id_refused: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_error(self, req_id: int, code: int, message: str, *args: Any) -> None:
        code = int(code)
        self.error_codes.append(code)
        self.error_messages.append(f"error {code}: {message}")
        self.error_req_ids.append(req_id)
        self.error_con_ids.append(getattr(args[0], "conId", 0) or 0 if args else 0)
        if code in CONNECTIVITY_LOST_CODES:
            self.connectivity_lost = (code, message)
        elif code in CONNECTIVITY_RESTORED_CODES:
            self.connectivity_lost = None
        if code == CLIENT_ID_IN_USE and not self.client_id_refused.done():
            self.client_id_refused.set_result(message)

    def since_start(self) -> float:
        return time.monotonic() - self.started

    def check_connectivity(self, what: str) -> None:
        """An answer read while the gateway says it has no connection to IBKR is not trusted."""
        if self.connectivity_lost is not None:
            code, message = self.connectivity_lost
            raise BrokerUnavailable(
                f"{self.broker.where}: {what}: the gateway reported error {code} ({message}) and no restore "
                "(1101/1102) followed; its answer is not trusted"
            )

    async def call(
        self, what: str, awaitable: Awaitable[T], *, timeout: float | None = None, untagged: bool = False
    ) -> T:
        """Await one request with a deadline (ib_async's RequestTimeout does not apply to *Async calls).

        ``untagged``: the request has no request id (positions, account updates), so ib_async cannot tie
        an error to it and ends it as if it succeeded; any error that is not a notice reported while it
        ran then fails it.
        """
        limit = timeout or self.broker.timeout
        first_error = len(self.error_codes)
        began = time.monotonic()
        try:
            result = await asyncio.wait_for(awaitable, limit)
        except TimeoutError:
            codes = self.error_codes[first_error:]
            reported = [
                m for c, m in zip(codes, self.error_messages[first_error:], strict=True) if not _is_status_message(c)
            ]
            message = (
                f"{self.broker.where}: no answer to {what} within {limit:g}s (gave up after "
                f"{time.monotonic() - began:.1f}s; {self.since_start():.1f}s since the call began)"
            )
            if CONNECTIVITY_LOST in self.error_codes or self.connectivity_lost is not None or not reported:
                lost = (
                    " (the gateway reported error 1100: connectivity to IBKR lost)"
                    if CONNECTIVITY_LOST in self.error_codes
                    else ""
                )
                raise BrokerUnavailable(message + lost) from None
            # ib_async treats some rejections (321 and others) as warnings: the request then never ends.
            raise BrokerError(f"{message}; the gateway reported {'; '.join(reported)}") from None
        except RequestError as exc:
            raise self.broker.request_failure(what, exc) from exc
        except ConnectionError as exc:
            raise BrokerUnavailable(f"{self.broker.where}: connection lost during {what}: {exc}") from exc
        self.check_connectivity(what)
        if untagged:
            errors = [
                (code, message)
                for code, message in zip(self.error_codes[first_error:], self.error_messages[first_error:], strict=True)
                if not _is_informational(code) and code not in CONNECTIVITY_LOST_CODES  # lost: checked above
            ]
            unavailable = [m for c, m in errors if c in UNAVAILABLE_CODES]
            if unavailable:
                raise BrokerUnavailable(
                    f"{self.broker.where}: {what} failed, gateway not connected ({'; '.join(unavailable)})"
                )
            if errors:
                raise BrokerError(
                    f"{self.broker.where}: {what} failed: the gateway reported {'; '.join(m for _, m in errors)} "
                    "while the request ran"
                )
        return result

    def require_account(self, account_id: str) -> None:
        managed = _listed(self.broker.where, "managed accounts", self.ib.managedAccounts())
        if account_id not in managed:
            raise BrokerError(
                f"{self.broker.where}: account {account_id} is not managed by this login "
                f"(managed: {', '.join(managed) or 'none'})"
            )


class IBKRBroker:
    """The Broker protocol answered by IB Gateway / TWS through ib_async."""

    name = "ibkr"
    # Commission reports can trail the executions; wait this long for missing ones before answering.
    commission_grace_seconds = 0.5

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        account: str | None = None,
        timeout: float = 15.0,
        readonly: bool = True,
        ib_factory: Callable[[], Any] | None = None,
        client_id_lease: Callable[..., AbstractContextManager[int]] | None = None,
        options_flow: "OptionsFlowLimits | None" = None,
        pacer: Callable[..., None] | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.client_id = int(client_id)
        self.account = account or None
        self.timeout = float(timeout)
        self.readonly = readonly
        self.ib_factory = ib_factory or IB
        # Each live connection needs its own client id: with a lease, every call borrows a free one from
        # a pool shared by all processes (web, every worker), instead of all using the same id (error 326).
        # After a 326 it is called again with ``exclude=`` the refused ids.
        self.client_id_lease = client_id_lease
        self.options_flow = options_flow or OptionsFlowLimits()
        # Historical-data pacing shared by every process (core.brokers.pacing.pacing_acquire): called with
        # ``contract=`` and ``request=`` before each request; it waits, or raises PacingLimited.
        self.pacer = pacer

    def __repr__(self) -> str:
        return f"IBKRBroker({self.host}:{self.port}, client_id={self.client_id}, account={self.account!r})"

    @property
    def where(self) -> str:
        return f"IBKR {self.host}:{self.port} (client id {self.client_id})"

    # --- the session shape ------------------------------------------------------------------------
    def _run(self, what: str, job: Callable[[_Session], Awaitable[T]]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise BrokerError(
                f"IBKRBroker.{what}() was called inside a running event loop (async view or ASGI); it blocks, "
                "so call it from a worker or a synchronous thread (e.g. asgiref's sync_to_async)"
            )
        if self.client_id_lease is None:
            return asyncio.run(self._session(what, job))
        refused: list[int] = []
        while True:
            # After a 326 the next lease skips the refused ids: another connection (not one of ours, or
            # ours would hold the lock) has them.
            try:
                lease = self.client_id_lease(exclude=tuple(refused)) if refused else self.client_id_lease()
                with lease as client_id:
                    self.client_id = client_id  # one instance serves one thread (get_broker() makes a new one)
                    try:
                        return asyncio.run(self._session(what, job))
                    except ClientIdInUse:
                        refused.append(client_id)
                        logger.warning(
                            "%s: client id %s refused with error 326; trying the next one", self.where, client_id
                        )
            except BrokerUnavailable as exc:
                if refused and not isinstance(exc, ClientIdInUse):
                    raise BrokerUnavailable(
                        f"{exc}; the gateway refused client id(s) {', '.join(map(str, refused))} with error 326 "
                        "(in use by a connection outside this system's IBKR_CLIENT_IDS pool?)"
                    ) from exc
                raise

    async def _session(self, what: str, job: Callable[[_Session], Awaitable[T]]) -> T:
        ib = self.ib_factory()
        session = _Session(ib, self)
        ib.RaiseRequestErrors = True
        ib.RequestTimeout = self.timeout
        error_event = getattr(ib, "errorEvent", None)
        if error_event is not None:
            error_event += session.on_error
        try:
            await self._connect(session)
            result = await job(session)
            session.check_connectivity(what)  # lost while the call ran, and not restored: doubtful
            return result
        except (BrokerError, BrokerUnavailable):
            raise
        except RequestError as exc:
            raise self.request_failure(what, exc) from exc
        except (OSError, ConnectionError) as exc:
            raise BrokerUnavailable(f"{self.where}: connection failed during {what}: {exc!r}") from exc
        finally:
            try:
                ib.disconnect()
            except Exception:  # disconnecting must never hide the real outcome
                logger.exception("%s: disconnect failed", self.where)

    async def _connect(self, session: _Session) -> None:
        """Connect within the timeout, fetching nothing at start-up but what ib_async always asks for
        (positions); a client id in use (326) ends the wait at once."""
        connecting = asyncio.ensure_future(
            session.ib.connectAsync(
                self.host,
                self.port,
                clientId=self.client_id,
                timeout=self.timeout,
                readonly=self.readonly,
                account=self.account or "",
                fetchFields=StartupFetchNONE,
            )
        )
        done, _ = await asyncio.wait(
            {connecting, session.client_id_refused}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if session.client_id_refused in done:
            if not connecting.done():
                connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            raise self._client_id_in_use()
        if connecting not in done:
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            raise self._connect_failure(TimeoutError(), session)
        try:
            connecting.result()
        except (OSError, ConnectionError, RequestError) as exc:  # TimeoutError is an OSError
            raise self._connect_failure(exc, session) from exc
        session.check_connectivity("connect")

    def _client_id_in_use(self) -> ClientIdInUse:
        pool = (
            "IBKR_CLIENT_IDS names the pool every call borrows from; with more ids than processes that talk "
            "to IBKR at once, the next free one is tried"
            if self.client_id_lease is not None
            else "give every process that talks to IBKR its own id: IBKR_CLIENT_IDS (e.g. 17-40) is the pool "
            "every call borrows from"
        )
        return ClientIdInUse(
            f"{self.where}: client id {self.client_id} is already in use by another connection (error 326); {pool}"
        )

    def _connect_failure(self, exc: BaseException, session: _Session) -> BrokerUnavailable:
        if CLIENT_ID_IN_USE in session.error_codes or "already in use" in str(exc):
            return self._client_id_in_use()
        waited = session.since_start()
        if isinstance(exc, ConnectionRefusedError):
            reason = "connection refused (is IB Gateway/TWS running with the API enabled on this port?)"
        elif isinstance(exc, TimeoutError):
            client = getattr(session.ib, "client", None)
            if client is not None and client.isReady():
                reason = (
                    f"the API handshake completed but the gateway did not answer the start-up positions request "
                    f"within {self.timeout:g}s (gave up after {waited:.1f}s)"
                )
            else:
                reason = (
                    f"no API handshake within {self.timeout:g}s (gave up after {waited:.1f}s; the gateway also "
                    "drops a second connection with a client id that is in use)"
                )
        else:
            reason = f"{type(exc).__name__}: {exc}"
        if CONNECTIVITY_LOST in session.error_codes:
            reason += "; the gateway reported error 1100 (connectivity to IBKR lost)"
        return BrokerUnavailable(
            f"cannot connect to IBKR at {self.host}:{self.port} (client id {self.client_id}): {reason}"
        )

    def request_failure(self, what: str, exc: RequestError) -> Exception:
        code = getattr(exc, "code", None)
        message = getattr(exc, "message", str(exc))
        if code in UNAVAILABLE_CODES:
            return BrokerUnavailable(f"{self.where}: {what} failed, gateway not connected (error {code}: {message})")
        if code == 200:
            return BrokerError(f"{self.where}: {what}: no such security at IBKR (error 200: {message})")
        if code == 162 and "no data" not in str(message).lower():
            return PacingViolation(
                f"{self.where}: {what} refused (error 162, historical data pacing limit or an "
                f"invalid request): {message}"
            )
        if code == 354:
            return BrokerError(f"{self.where}: {what}: no market data subscription (error 354: {message})")
        return BrokerError(f"{self.where}: {what} failed (error {code}: {message})")

    # --- accounts -----------------------------------------------------------------------------------
    def accounts(self) -> Fetched[BrokerAccount]:
        """Managed accounts (only the configured one when ``account`` is set) with their summary values.

        Account type: IBKR has no reliable margin/cash flag in the account summary. The ``AccountType``
        tag naming CASH or MARGIN is taken; anything else (INDIVIDUAL, IRA...) is None: unknown, so
        the accounts sync never overwrites the type staff set in the admin.
        """

        async def job(session: _Session) -> tuple[list[str], list[Any]]:
            managed = _listed(self.where, "managed accounts", session.ib.managedAccounts())
            rows = await session.call("account summary", session.ib.accountSummaryAsync())
            return managed, _listed(self.where, "account summary", rows)

        managed, rows = self._run("accounts", job)
        if not managed:
            raise BrokerError(f"{self.where}: the gateway reported no managed accounts")
        if self.account:
            if self.account not in managed:
                raise BrokerError(
                    f"{self.where}: configured account {self.account} is not managed by this login "
                    f"(managed: {', '.join(managed)})"
                )
            managed = [self.account]
        warnings: list[str] = []
        items = []
        for account_id in managed:
            try:
                validation.text(account_id, field="account_id", max_length=limits.ACCOUNT_ID_LENGTH)
                account_rows = [r for r in rows if r.account == account_id and not getattr(r, "modelCode", "")]
                account = validation.checked_account(self._account(account_id, account_rows, warnings))
            except ROW_ERRORS as exc:
                message = f"account {shown(account_id)}: {validation.problem(exc)}; account skipped"
                logger.warning("ibkr broker: %s", message)
                warnings.append(message)
                continue
            if not account_rows:
                warnings.append(f"account {account_id}: the account summary has no values for it")
            items.append(account)
        return Fetched(items=tuple(items), warnings=tuple(warnings))

    @staticmethod
    def _base_currency(rows: list[Any]) -> str:
        for tag in BASE_CURRENCY_TAGS:
            for row in rows:
                currency = (row.currency or "").upper()
                if row.tag == tag and CURRENCY_CODE.match(currency) and currency != "BASE":
                    return currency
        for row in rows:  # a ledger row whose exchange rate to the base currency is 1
            currency = (row.currency or "").upper()
            if row.tag == "ExchangeRate" and currency != "BASE" and CURRENCY_CODE.match(currency):
                try:
                    if _text_number(row.value) == 1:
                        return currency
                except ValueError:
                    continue
        return "USD"

    @classmethod
    def _account(cls, account_id: str, rows: list[Any], warnings: list[str]) -> BrokerAccount:
        base = cls._base_currency(rows)

        def pick(tag: str) -> Any | None:
            # The BASE row first: with $LEDGER:ALL a row in a real currency holds only that currency's
            # slice (UnrealizedPnL of the EUR positions), while BASE is the whole account in base currency.
            by_currency = {(r.currency or "").upper(): r for r in rows if r.tag == tag}
            for currency in ("BASE", base, ""):
                if currency in by_currency:
                    return by_currency[currency]
            return None

        parsed: dict[str, Any] = {}
        for tag, attr in VALUE_TAGS.items():
            row = pick(tag)
            if row is None:
                continue
            try:
                parsed[attr] = validation.money(_text_number(row.value), field=tag)
            except ROW_ERRORS as exc:
                warnings.append(f"account {account_id}: {tag}: {validation.problem(exc)}; value ignored")
        row = pick("DayTradesRemaining")
        if row is not None:
            try:
                number = _text_number(row.value)
                if number is not None:
                    parsed["day_trades_remaining"] = validation.integer(number, field="DayTradesRemaining")
            except ROW_ERRORS as exc:
                warnings.append(f"account {account_id}: DayTradesRemaining: {validation.problem(exc)}; value ignored")
        cash_balances, fx_rates = cls._per_currency(account_id, rows, base, warnings)
        type_row = pick("AccountType")
        type_tag = (type_row.value or "").upper() if type_row is not None else ""
        account_type = "CASH" if "CASH" in type_tag else "MARGIN" if "MARGIN" in type_tag else None
        return BrokerAccount(
            account_id=account_id,
            account_type=account_type,
            base_currency=base,
            values=AccountValues(currency=base, cash_balances=cash_balances, fx_rates=fx_rates, **parsed),
        )

    @staticmethod
    def _per_currency(
        account_id: str, rows: list[Any], base: str, warnings: list[str]
    ) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        """The $LEDGER rows per currency: ``CashBalance`` (each currency's own cash) and ``ExchangeRate``
        (one unit of it in ``base``). The BASE rows are totals already converted (CashBalance) or 1
        (ExchangeRate), and the base currency's rate is 1: neither is listed."""
        cash: dict[str, Decimal] = {}
        rates: dict[str, Decimal] = {}
        for row in rows:
            if row.tag not in ("CashBalance", "ExchangeRate"):
                continue
            currency = (row.currency or "").upper()
            if currency == "BASE" or (row.tag == "ExchangeRate" and currency == base):
                continue
            try:
                if not CURRENCY_CODE.match(currency):
                    raise UnusableRowError(f"{shown(row.currency)!r} is not a currency code")
                number = _text_number(row.value)
                if number is None:
                    continue  # unset
                if row.tag == "ExchangeRate":
                    if number <= 0:
                        raise UnusableRowError(f"must be positive, got {number}")
                    rates[currency] = validation.price(number, field="ExchangeRate")
                else:
                    cash[currency] = validation.money(number, field="CashBalance")
            except ROW_ERRORS as exc:
                warnings.append(
                    f"account {account_id}: {row.tag} {shown(currency)}: {validation.problem(exc)}; value ignored"
                )
        return cash, rates

    # --- positions ----------------------------------------------------------------------------------
    def positions(self, account_id: str) -> Fetched[BrokerPosition]:
        """Positions from reqPositions (which also lists positions closed today, with quantity 0),
        market prices from the portfolio (account updates)."""

        async def job(session: _Session) -> tuple[list[Any], dict[int, Any], list[str]]:
            session.require_account(account_id)
            answer = _listed(
                self.where, "positions", await session.call("positions", session.ib.reqPositionsAsync(), untagged=True)
            )
            rows = [p for p in answer if p.account == account_id]
            notes: list[str] = []
            portfolio = _listed(self.where, "portfolio", session.ib.portfolio(account_id))
            if not portfolio and any(p.position for p in rows):
                # portfolio() is filled only for the account given at connect (or the only one).
                try:
                    await session.call(
                        f"account updates for {account_id}",
                        session.ib.reqAccountUpdatesAsync(account_id),
                        untagged=True,
                    )
                    portfolio = _listed(self.where, "portfolio", session.ib.portfolio(account_id))
                except (BrokerError, BrokerUnavailable) as exc:
                    notes.append(f"account {account_id}: market prices unavailable: {exc}")
            prices = {item.contract.conId: item for item in portfolio if item.contract is not None}
            return rows, prices, notes

        rows, portfolio, warnings = self._run("positions", job)
        items: dict[tuple, BrokerPosition] = {}
        for row in rows:
            label = f"account {account_id} position {_contract_label(getattr(row, 'contract', None))}"
            notes: list[str] = []
            try:
                position = self._position(account_id, row, portfolio.get(getattr(row.contract, "conId", 0)), notes)
            except ROW_ERRORS as exc:
                message = f"{label}: {validation.problem(exc)}; row skipped"
                logger.warning("ibkr broker: %s", message)
                warnings.append(message)
                continue
            for note in notes:
                logger.warning("ibkr broker: %s: %s", label, note)
                warnings.append(f"{label}: {note}")
            items[(position.instrument.con_id, position.instrument.key)] = position
        return Fetched(items=tuple(items.values()), warnings=tuple(warnings))

    @staticmethod
    def _position(account_id: str, row: Any, item: Any | None, notes: list[str]) -> BrokerPosition:
        instrument = _instrument(row.contract)
        quantity = _float(row.position)
        if quantity is None:
            raise UnusableRowError(f"quantity: not a number: {row.position!r}")
        avg_cost = _float(row.avgCost)
        if avg_cost is None:
            raise UnusableRowError(f"avgCost: not a number: {row.avgCost!r}")
        if avg_cost < 0:
            raise UnusableRowError(f"avgCost: must not be negative, got {row.avgCost!r}")
        if instrument.sec_type in DERIVATIVES:
            avg_cost = avg_cost / instrument.multiplier
        market_price = _float(item.marketPrice) if item is not None else None
        if market_price is not None and market_price < 0:
            market_price = None
        return validation.checked_position(
            BrokerPosition(
                account_id=account_id,
                instrument=instrument,
                quantity=quantity,  # rounded to the column's places there, a quantity that rounds to 0 noted
                average_price=_price(avg_cost),
                market_price=_price(market_price),
            ),
            notes,
        )

    # --- executions ---------------------------------------------------------------------------------
    def executions(self, account_id: str, since: datetime | None = None) -> Fetched[BrokerExecution]:
        """Fills from reqExecutions (recent days only; older ones come from Flex imports).

        The commission is None until IBKR's commission report for the fill has arrived.
        """
        since_utc = _utc(since) if since is not None else None
        filter_time = (since_utc - EXECUTION_FILTER_MARGIN).strftime("%Y%m%d %H:%M:%S") if since_utc else ""

        async def job(session: _Session) -> list[Any]:
            session.require_account(account_id)
            fills = await session.call(
                "executions",
                session.ib.reqExecutionsAsync(ExecutionFilter(acctCode=account_id, time=filter_time)),
            )
            fills = _listed(self.where, "executions", fills)
            # Reports are merged in place into the fill ib_async keeps in ib.fills(), so a short wait
            # catches late ones.
            waited = 0.0
            while waited < self.commission_grace_seconds and not all(
                _has_commission(f) for f in _with_known_reports(session.ib, fills)
            ):
                await asyncio.sleep(0.05)
                waited += 0.05
            return _with_known_reports(session.ib, fills)

        fills = self._run("executions", job)
        warnings: list[str] = []
        items: dict[str, BrokerExecution] = {}
        for fill in fills:
            execution = fill.execution
            if (execution.acctNumber or account_id) != account_id:
                continue
            try:
                parsed = self._execution(account_id, fill)
            except ROW_ERRORS as exc:
                message = (
                    f"account {account_id} execution {shown(execution.execId or '?')} "
                    f"{_contract_label(fill.contract)}: {validation.problem(exc)}; row skipped"
                )
                logger.warning("ibkr broker: %s", message)
                warnings.append(message)
                continue
            if since_utc is not None and parsed.executed_at < since_utc:
                continue
            items[parsed.exec_id] = parsed
        ordered = sorted(items.values(), key=lambda e: (e.executed_at, e.exec_id))
        return Fetched(items=tuple(ordered), warnings=tuple(warnings))

    @staticmethod
    def _execution(account_id: str, fill: Any) -> BrokerExecution:
        execution = fill.execution
        exec_id = (execution.execId or "").strip()
        if not exec_id:
            raise UnusableRowError("missing execId")
        side = SIDES.get((execution.side or "").strip().upper())
        if side is None:
            raise UnusableRowError(f"side: expected BOT or SLD, got {execution.side!r}")
        instrument = _instrument(fill.contract)
        quantity = _float(execution.shares)
        if quantity is None or quantity <= 0:
            raise UnusableRowError(f"shares: must be positive, got {execution.shares!r}")
        price = _float(execution.price)
        if price is None or price < 0:
            raise UnusableRowError(f"price: must not be negative, got {execution.price!r}")
        when = execution.time if isinstance(execution.time, datetime) else getattr(fill, "time", None)
        if not isinstance(when, datetime):
            raise UnusableRowError(f"time: not a datetime: {execution.time!r}")
        try:
            when = _utc(when)
        except OverflowError:  # 0001-01-01 00:00+14:00 is before year 1 in UTC
            raise UnusableRowError(f"time: {execution.time!r} is out of range once in UTC") from None
        commission = None
        commission_currency = instrument.currency
        report = fill.commissionReport
        if _has_commission(fill):
            commission = _money(_float(report.commission))
            commission_currency = (report.currency or instrument.currency).upper()
        raw = {
            "execId": exec_id,
            "time": when.isoformat(),
            "acctNumber": execution.acctNumber,
            "exchange": execution.exchange,
            "side": execution.side,
            "shares": str(quantity),
            "price": str(price),
            "permId": execution.permId,
            "clientId": execution.clientId,
            "orderId": execution.orderId,
            "cumQty": _text_or_none(_float(execution.cumQty)),
            "avgPrice": _text_or_none(_float(execution.avgPrice)),
            "orderRef": execution.orderRef,
            "conId": instrument.con_id,
            "symbol": instrument.symbol,
            "secType": str(instrument.sec_type),
            "commission": str(commission) if commission is not None else None,
            "commissionCurrency": commission_currency if commission is not None else None,
        }
        return validation.checked_execution(
            BrokerExecution(
                account_id=account_id,
                exec_id=exec_id,
                instrument=instrument,
                side=side,
                quantity=_quantity(quantity),
                price=_price(price),
                executed_at=when,
                commission=commission,
                commission_currency=commission_currency,
                order_id=_optional_id(execution.orderId),
                perm_id=_optional_id(execution.permId),
                exchange=execution.exchange or "",
                raw=raw,
            )
        )

    # --- cash flows ---------------------------------------------------------------------------------
    def cash_flows(self, account_id: str) -> Fetched[BrokerCashFlow]:
        """The TWS API does not report deposits or withdrawals; they come from Flex imports."""
        return Fetched(
            items=(),
            warnings=(
                f"account {account_id}: IBKR's TWS API does not report deposits or withdrawals; cash flows for "
                "IBKR accounts come from Flex imports",
            ),
        )

    # --- market data --------------------------------------------------------------------------------
    @staticmethod
    async def _stock(session: _Session, symbol: str) -> Any:
        contract = Stock(symbol, "SMART", "USD")
        what = f"contract lookup for {symbol}"
        qualified = _listed(
            session.broker.where, what, await session.call(what, session.ib.qualifyContractsAsync(contract))
        )
        found = qualified[0] if qualified else None
        if found is None or isinstance(found, list):
            raise BrokerError(
                f"{session.broker.where}: symbol {symbol} is unknown or ambiguous at IBKR "
                "(looked up as a SMART-routed USD stock)"
            )
        return found

    def bars(
        self, symbol: str, bar_size: str, start: datetime | None = None, end: datetime | None = None
    ) -> Fetched[Bar]:
        """TRADES bars, regular trading hours, times in UTC; bars in [start, end) by start time."""
        if bar_size not in BAR_SIZES:
            raise BrokerError(f"bar size {bar_size!r} is not one of {', '.join(BAR_SIZES)}")
        symbol = (symbol or "").strip().upper()
        if not symbol:
            raise BrokerError("bars: no symbol given")
        start_utc = _utc(start) if start is not None else None
        end_utc = _utc(end) if end is not None else None
        if start_utc and end_utc and end_utc <= start_utc:
            return Fetched(items=())
        duration = _duration(start_utc, end_utc or datetime.now(UTC)) if start_utc else DEFAULT_DURATIONS[bar_size]
        no_data: list[str] = []
        # Every worker shares IBKR's pacing budget: take a slot first (may wait; PacingLimited when too long).
        end_text = end_utc.isoformat() if end_utc else "now"
        if self.pacer is not None:
            self.pacer(contract=symbol, request=f"{symbol} TRADES {bar_size} {duration} to {end_text}")

        async def job(session: _Session) -> list[Any]:
            contract = await self._stock(session, symbol)
            what = f"historical {bar_size} bars for {symbol}"
            try:
                return _listed(
                    self.where,
                    what,
                    await session.call(
                        what,
                        session.ib.reqHistoricalDataAsync(
                            contract,
                            endDateTime=end_utc or "",
                            durationStr=duration,
                            barSizeSetting=BAR_SETTINGS[bar_size],
                            whatToShow="TRADES",
                            useRTH=True,
                            formatDate=2,
                            timeout=0,  # ib_async's own timeout returns an empty list; ours raises
                        ),
                        timeout=max(self.timeout, HISTORICAL_MIN_TIMEOUT),
                    ),
                )
            except BrokerError as exc:
                # 162 also says "HMDS query returned no data" for a range without bars: not a failure.
                cause = exc.__cause__
                if getattr(cause, "code", None) == 162 and "no data" in str(getattr(cause, "message", "")).lower():
                    no_data.append(
                        f"bars.{symbol}.{bar_size}: IBKR has no data for {duration} up to "
                        f"{end_utc.isoformat() if end_utc else 'now'}"
                    )
                    return []
                raise

        rows = self._run("bars", job)
        warnings = list(no_data)
        items: dict[datetime, Bar] = {}
        for index, row in enumerate(rows):
            try:
                bar = self._bar(symbol, bar_size, row)
            except ROW_ERRORS as exc:
                message = (
                    f"bars.{symbol}.{bar_size}[{index}] ({shown(getattr(row, 'date', '?'))}): "
                    f"{validation.problem(exc)}; row skipped"
                )
                logger.warning("ibkr broker: %s", message)
                warnings.append(message)
                continue
            if (start_utc is None or bar.start >= start_utc) and (end_utc is None or bar.start < end_utc):
                items[bar.start] = bar
        return Fetched(items=tuple(items[k] for k in sorted(items)), warnings=tuple(warnings))

    def fx_history(self, currency: str, base: str, start: date, end: date) -> Fetched[FxDay]:
        """Daily rates of ``currency`` in ``base``: the close of the cash pair's 1-day MIDPOINT bars
        (IDEALPRO) for the days in [start, end]. IBKR lists some pairs one way only (USD.JPY, not
        JPY.USD): when ``currency.base`` is not a security, ``base.currency`` is asked and inverted.
        Each request takes a slot of the shared historical-data pacing limiter first."""
        currency, base = (currency or "").strip().upper(), (base or "").strip().upper()
        if not (CURRENCY_CODE.match(currency) and CURRENCY_CODE.match(base)) or currency == base:
            raise BrokerError(f"fx_history: not a currency pair: {currency!r}/{base!r}")
        if end < start:
            return Fetched(items=())
        end_utc = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        now = datetime.now(UTC)
        ends_now = end_utc >= now
        duration = _duration(datetime.combine(start, datetime.min.time(), tzinfo=UTC), min(end_utc, now))
        no_data: list[str] = []

        def ask(pair: tuple[str, str]) -> list[Any]:
            symbol, quote = pair
            if self.pacer is not None:
                self.pacer(
                    contract=f"{symbol}.{quote}",
                    request=f"{symbol}.{quote} MIDPOINT 1d {duration} to {'now' if ends_now else end_utc.isoformat()}",
                )

            async def job(session: _Session) -> list[Any]:
                what = f"historical daily rates of {symbol}.{quote}"
                try:
                    return _listed(
                        self.where,
                        what,
                        await session.call(
                            what,
                            session.ib.reqHistoricalDataAsync(
                                Forex(symbol=symbol, currency=quote, exchange="IDEALPRO"),
                                endDateTime="" if ends_now else end_utc,
                                durationStr=duration,
                                barSizeSetting="1 day",
                                whatToShow="MIDPOINT",
                                useRTH=False,
                                formatDate=1,
                                timeout=0,
                            ),
                            timeout=max(self.timeout, HISTORICAL_MIN_TIMEOUT),
                        ),
                    )
                except BrokerError as exc:
                    cause = exc.__cause__
                    if getattr(cause, "code", None) == 162 and "no data" in str(getattr(cause, "message", "")).lower():
                        no_data.append(f"fx_history.{base}.{currency}: IBKR has no rates for {start}..{end}")
                        return []
                    raise

            return self._run("fx history", job)

        inverted = False
        try:
            rows = ask((currency, base))
        except BrokerError as exc:
            if "error 200" not in str(exc):
                raise
            rows, inverted = ask((base, currency)), True
        warnings = list(no_data)
        days: dict[date, FxDay] = {}
        for index, row in enumerate(rows):
            try:
                day = row.date.date() if isinstance(row.date, datetime) else row.date
                if not isinstance(day, date):
                    raise UnusableRowError(f"date: not a date: {row.date!r}")
                close = _float(row.close)
                if close is None or close <= 0:
                    raise UnusableRowError(f"close: not a rate: {row.close!r}")
                rate = validation.price(Decimal(1) / close if inverted else close, field="rate")
            except ROW_ERRORS as exc:
                message = f"fx_history.{base}.{currency}[{index}]: {validation.problem(exc)}; row skipped"
                logger.warning("ibkr broker: %s", message)
                warnings.append(message)
                continue
            if start <= day <= end:
                days[day] = FxDay(currency=currency, base=base, day=day, rate=rate.quantize(Decimal("1e-10")))
        return Fetched(items=tuple(days[d] for d in sorted(days)), warnings=tuple(warnings))

    @staticmethod
    def _bar(symbol: str, bar_size: str, row: Any) -> Bar:
        if not isinstance(row.date, date):
            raise UnusableRowError(f"date: not a date or datetime: {row.date!r}")
        prices = {}
        for name in ("open", "high", "low", "close"):
            value = _float(getattr(row, name))
            if value is None or value < 0:
                raise UnusableRowError(f"{name}: not a price: {getattr(row, name)!r}")
            prices[name] = _price(value)
        if prices["high"] < prices["low"]:
            raise UnusableRowError(f"high {prices['high']} is below low {prices['low']}")
        volume = _float(row.volume)
        # IBKR sends -1 when it has no volume for the bar.
        volume = _quantity(volume) if volume is not None and volume >= 0 else Decimal(0)
        try:
            # A daily bar comes as its session's date in the exchange's zone: kept as that date's midnight UTC.
            start = _utc(row.date)
        except OverflowError:
            raise UnusableRowError(f"date: {row.date!r} is out of range once in UTC") from None
        wap = _float(getattr(row, "average", None))
        count = getattr(row, "barCount", None)
        trade_count = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
        return validation.checked_bar(
            Bar(
                symbol=symbol,
                bar_size=bar_size,
                start=start,
                volume=volume,
                wap=_price(wap) if wap is not None and wap > 0 else None,  # -1 / 0: none
                trade_count=trade_count,
                **prices,
            )
        )

    def option_greeks(self, instruments: list[InstrumentSpec]) -> Fetched[BrokerOptionGreeks]:
        """IBKR's model Greeks of options: one market-data snapshot per contract (live where subscribed,
        delayed otherwise), read from the ticker's ``modelGreeks``. An option whose tick never came, or
        came with IBKR's "not computed" values only, is left out with a warning: the caller computes it."""
        options = [spec for spec in instruments if spec.sec_type in OPTIONS and spec.expiry and spec.strike]
        if not options:
            return Fetched(items=())

        async def job(session: _Session) -> list[Any]:
            session.ib.reqMarketDataType(MARKET_DATA_LIVE_ELSE_DELAYED)
            contracts = [_option_contract(spec) for spec in options]
            tickers = await session.call("option model Greeks", session.ib.reqTickersAsync(*contracts))
            return _listed(self.where, "option model Greeks", tickers)

        tickers = self._run("option model Greeks", job)
        by_con_id = {getattr(t.contract, "conId", 0): t for t in tickers if t.contract is not None}
        items, warnings = [], []
        for spec in options:
            ticker = by_con_id.get(spec.con_id or 0)
            greeks = _model_greeks(getattr(ticker, "modelGreeks", None)) if ticker is not None else None
            if greeks is None:
                warnings.append(f"{spec.key}: no model Greeks from IBKR (no option market data): computed instead")
                continue
            items.append(BrokerOptionGreeks(instrument=spec, greeks=greeks))
        return Fetched(items=tuple(items), warnings=tuple(warnings))

    def quote(self, symbol: str) -> Quote | None:
        """A snapshot of the SMART-routed USD stock; None when IBKR has no bid, ask or last for it.

        Without a live market-data subscription (error 354) the snapshot is asked again as delayed data
        (reqMarketDataType 3), and the quote says ``delayed``.
        """
        symbol = (symbol or "").strip().upper()
        if not symbol:
            raise BrokerError("quote: no symbol given")

        asked_delayed: list[bool] = []

        async def job(session: _Session) -> Any | None:
            contract = await self._stock(session, symbol)
            try:
                tickers = await session.call(f"quote for {symbol}", session.ib.reqTickersAsync(contract))
            except BrokerError as exc:
                if getattr(exc.__cause__, "code", None) != NO_SUBSCRIPTION:
                    raise
                session.ib.reqMarketDataType(3)
                asked_delayed.append(True)
                tickers = await session.call(f"delayed quote for {symbol}", session.ib.reqTickersAsync(contract))
            tickers = _listed(self.where, f"quote for {symbol}", tickers)
            return tickers[0] if tickers else None

        ticker = self._run("quote", job)
        if ticker is None:
            return None
        delayed = bool(asked_delayed) or getattr(ticker, "marketDataType", 1) in DELAYED_TYPES

        def size(value: Any) -> Decimal | None:
            number = _float(value)
            return _quantity(number) if number is not None and number >= 0 else None

        def price(value: Any) -> Decimal | None:
            number = _float(value)
            return _price(number) if number is not None and number >= 0 else None

        try:
            bid, ask, last = price(ticker.bid), price(ticker.ask), price(ticker.last)
            if bid is None and ask is None and last is None:
                return None
            at = ticker.time if isinstance(ticker.time, datetime) else None
            return validation.checked_quote(
                Quote(
                    symbol=symbol,
                    bid=bid,
                    ask=ask,
                    last=last,
                    at=_utc(at) if at else None,
                    bid_size=size(getattr(ticker, "bidSize", None)),
                    ask_size=size(getattr(ticker, "askSize", None)),
                    last_size=size(getattr(ticker, "lastSize", None)),
                    volume=size(getattr(ticker, "volume", None)),
                    delayed=delayed,
                )
            )
        except ROW_ERRORS as exc:
            logger.warning("ibkr broker: quote for %s: %s; quote skipped", symbol, validation.problem(exc))
            return None

    # --- options flow -------------------------------------------------------------------------------
    def option_prints(
        self, underlyings: list[str], known_volumes: Mapping[OptionVolumeKey, Decimal] | None = None
    ) -> Fetched[OptionPrint]:
        """Option prints of ``underlyings``, derived from the day volume of the contracts near the money.

        For each underlying: its option chains (reqSecDefOptParams), the price of the stock (a
        snapshot), the contracts of the ``expiries`` nearest expiries (one contract-details request
        per expiry) and of those the ``strikes`` strikes nearest the price, calls and puts. Each
        contract's market data is streamed with generic ticks 100 and 101 (volume and open interest),
        ``market_data_lines`` subscriptions at a time, until its volume has come (or ``tick_wait``).

        A print is the volume a contract traded beyond what ``known_volumes`` says was already reported
        for its session (the New York date of its last trade; nothing known: the whole day so far), at
        the last price, with the bid and ask of the moment (the side is read from them above the
        boundary), the last trade's time (the poll's when IBKR gives none), the stock's price, the
        contract's open interest and day volume, and whether IBKR served delayed data. Its id is the
        contract, the session and the day volume reached, so a poll that sees nothing new makes no
        print and the same volume is never reported twice. IBKR does not tell sweeps or blocks apart:
        ``kind`` is empty and ``exchanges`` unknown.

        An underlying IBKR does not know, without chain or price, is skipped with a warning; so is a
        contract whose data IBKR refuses (no subscription, too many lines). A lost gateway is
        BrokerUnavailable: a poll that could not be made is never "no flow".
        """
        limits_ = self.options_flow
        known = known_volumes or {}
        symbols = list(dict.fromkeys((s or "").strip().upper() for s in underlyings if (s or "").strip()))
        if not symbols:
            return Fetched(items=())
        warnings: list[str] = []
        zone = ZoneInfo(limits_.time_zone)

        async def job(session: _Session) -> list[tuple[str, Decimal | None, Any]]:
            session.ib.reqMarketDataType(limits_.market_data_type)
            followed: list[tuple[str, Decimal | None, Any]] = []
            for index, symbol in enumerate(symbols):
                room = limits_.max_contracts - len(followed)
                if room <= 0:
                    warnings.append(
                        f"options flow: {limits_.max_contracts} contracts followed (IBKR_OPTIONS_MAX_CONTRACTS); "
                        f"not polled this time: {', '.join(symbols[index:])}"
                    )
                    break
                try:
                    spot, contracts = await self._option_contracts(session, symbol, zone, warnings)
                except BrokerError as exc:
                    warnings.append(f"options flow: {symbol}: {exc}; underlying skipped")
                    continue
                if len(contracts) > room:
                    warnings.append(
                        f"options flow: {symbol}: {len(contracts) - room} of its contracts not followed "
                        f"(IBKR_OPTIONS_MAX_CONTRACTS is {limits_.max_contracts})"
                    )
                followed += [(symbol, spot, c) for c in contracts[:room]]
            tickers = await self._option_tickers(session, [c for _, _, c in followed], warnings)
            return [(symbol, spot, tickers[c.conId]) for symbol, spot, c in followed if c.conId in tickers]

        rows = self._run("option prints", job)
        polled_at = datetime.now(UTC)
        items: dict[str, OptionPrint] = {}
        for symbol, spot, ticker in rows:
            try:
                found = self._option_print(symbol, spot, ticker, known=known, zone=zone, polled_at=polled_at)
            except ROW_ERRORS as exc:
                message = f"options flow: {_contract_label(ticker.contract)}: {validation.problem(exc)}; row skipped"
                logger.warning("ibkr broker: %s", message)
                warnings.append(message)
                continue
            if found is not None:
                items[found.print_id] = found
        return Fetched(items=tuple(items.values()), warnings=tuple(warnings))

    async def _option_contracts(
        self, session: _Session, symbol: str, zone: ZoneInfo, warnings: list[str]
    ) -> tuple[Decimal | None, list[Any]]:
        """The stock's price and the option contracts to follow (qualified: with their conId)."""
        limits_ = self.options_flow
        stock = await self._stock(session, symbol)
        what = f"option chains of {symbol}"
        chains = _listed(
            self.where,
            what,
            await session.call(what, session.ib.reqSecDefOptParamsAsync(stock.symbol, "", "STK", stock.conId)),
        )
        # One chain per exchange; SMART (routed to all) of the symbol's own trading class first.
        chains.sort(key=lambda c: (c.exchange != "SMART", c.tradingClass != symbol))
        if not chains:
            raise BrokerError(f"{self.where}: IBKR lists no option chain for {symbol}")
        chain = chains[0]
        today = datetime.now(zone).date()
        expiries = []
        for raw in chain.expirations:
            try:
                expiry = _expiry(raw)
            except UnusableRowError:
                warnings.append(f"options flow: {symbol}: expiry {shown(raw)!r} of its chain is not a date; ignored")
                continue
            if expiry >= today:
                expiries.append(expiry)
        spot = await self._option_spot(session, stock, warnings)
        contracts: list[Any] = []
        for expiry in sorted(set(expiries))[: limits_.expiries]:
            what = f"option contracts of {symbol} expiring {expiry.isoformat()}"
            template = Option(
                symbol,
                expiry.strftime("%Y%m%d"),
                exchange="SMART",
                multiplier=chain.multiplier,
                currency=stock.currency or "USD",
                tradingClass=chain.tradingClass,
            )
            try:
                details = _listed(
                    self.where, what, await session.call(what, session.ib.reqContractDetailsAsync(template))
                )
            except BrokerError as exc:
                warnings.append(f"options flow: {symbol}: {exc}; expiry {expiry.isoformat()} skipped")
                continue
            found = [d.contract for d in details if d.contract is not None and d.contract.secType == "OPT"]
            strikes = sorted({s for s in (_float(c.strike) for c in found) if s is not None and s > 0})
            if not strikes:
                continue
            center = spot if spot is not None else strikes[len(strikes) // 2]
            near = set(sorted(strikes, key=lambda k: (abs(k - center), k))[: limits_.strikes])
            contracts += sorted(
                (c for c in found if _float(c.strike) in near and c.conId),
                key=lambda c: (_float(c.strike), c.right),
            )
        return spot, contracts

    @staticmethod
    async def _option_spot(session: _Session, stock: Any, warnings: list[str]) -> Decimal | None:
        """The underlying's price: last, else the bid/ask midpoint, else the previous close."""
        what = f"price of {stock.symbol}"
        try:
            tickers = _listed(session.broker.where, what, await session.call(what, session.ib.reqTickersAsync(stock)))
        except BrokerError as exc:
            tickers = []
            warnings.append(f"options flow: {stock.symbol}: {exc}")
        ticker = tickers[0] if tickers else None

        def positive(value: Any) -> Decimal | None:
            number = _float(value)
            return _price(number) if number is not None and number > 0 else None

        if ticker is not None:
            last, bid, ask, close = (positive(getattr(ticker, n, None)) for n in ("last", "bid", "ask", "close"))
            if last is not None:
                return last
            if bid is not None and ask is not None:
                return _price((bid + ask) / 2)
            if close is not None:
                return close
        warnings.append(
            f"options flow: {stock.symbol}: IBKR gave no price for the stock; strikes picked around the middle of "
            "the chain, prints without the underlying's price"
        )
        return None

    async def _option_tickers(self, session: _Session, contracts: list[Any], warnings: list[str]) -> dict[int, Any]:
        """Each contract's ticker (by conId), streamed ``market_data_lines`` at a time with generic ticks
        100 and 101; the tickers of contracts IBKR refused are left out, with a warning per error code."""
        limits_ = self.options_flow
        ib = session.ib
        result: dict[int, Any] = {}
        refused: dict[int, list[str]] = defaultdict(list)
        messages: dict[int, str] = {}
        silent: list[str] = []
        lines = max(limits_.market_data_lines, 1)
        for start in range(0, len(contracts), lines):
            batch = contracts[start : start + lines]
            first_error = len(session.error_codes)
            tickers = [ib.reqMktData(c, "100,101", False, False) for c in batch]
            failed: dict[int, int] = {}
            began, still_waiting = time.monotonic(), len(tickers)
            # ib_async paces what it sends (Client.MaxRequests a RequestsInterval: 45 a second), so a large
            # batch goes out over seconds: the wait counts from the last contract whose volume came, and
            # allows for the pacing on top of the tick wait.
            pace = getattr(ib.client, "MaxRequests", 0) or 0
            sending = len(batch) / pace * float(getattr(ib.client, "RequestsInterval", 1) or 1) if pace else 0.0
            try:
                while True:
                    await asyncio.sleep(0.05)
                    for code, con_id, message in zip(
                        session.error_codes[first_error:],
                        session.error_con_ids[first_error:],
                        session.error_messages[first_error:],
                        strict=True,
                    ):
                        if con_id and not _is_informational(code) and code not in CONNECTIVITY_LOST_CODES:
                            failed[con_id] = code
                            messages.setdefault(code, message)
                    if not ib.isConnected():
                        raise BrokerUnavailable(f"{self.where}: connection lost while streaming option market data")
                    session.check_connectivity("option market data")
                    waiting = [t for t in tickers if t.contract.conId not in failed and _float(t.volume) is None]
                    if not waiting:
                        await asyncio.sleep(0.1)  # open interest and the last trade's time may trail the volume
                        break
                    if len(waiting) < still_waiting:
                        still_waiting, began = len(waiting), time.monotonic()
                    elif time.monotonic() - began >= limits_.tick_wait + sending:
                        silent += [_contract_label(t.contract) for t in waiting]
                        break
            finally:
                for ticker in tickers:
                    with contextlib.suppress(Exception):  # a lost connection cancels every subscription anyway
                        ib.cancelMktData(ticker.contract)
            for ticker in tickers:
                code = failed.get(ticker.contract.conId)
                if code is not None:
                    refused[code].append(_contract_label(ticker.contract))
                else:
                    result[ticker.contract.conId] = ticker
        for code, labels in sorted(refused.items()):
            hint = " (lower IBKR_MARKET_DATA_LINES)" if code == 101 else ""
            warnings.append(
                f"options flow: IBKR refused market data for {len(labels)} contract(s) ({messages[code]}){hint}: "
                f"{', '.join(labels[:5])}{' ...' if len(labels) > 5 else ''}; skipped"
            )
        if silent:
            warnings.append(
                f"options flow: {len(silent)} contract(s) sent no volume within {limits_.tick_wait:g}s: "
                f"{', '.join(silent[:5])}{' ...' if len(silent) > 5 else ''}"
            )
        return result

    @staticmethod
    def _option_print(
        underlying: str,
        spot: Decimal | None,
        ticker: Any,
        *,
        known: Mapping[OptionVolumeKey, Decimal],
        zone: ZoneInfo,
        polled_at: datetime,
    ) -> OptionPrint | None:
        """The print of one contract's ticker: the volume beyond ``known`` at the last price; None when
        nothing traded since (or no volume came)."""
        instrument = _instrument(ticker.contract)
        if instrument.sec_type not in OPTIONS:
            raise UnusableRowError(f"not an option: {instrument.sec_type}")
        volume = _float(ticker.volume)
        if volume is None or volume <= 0:  # NaN or unset: no volume tick; IBKR's -1: none known
            return None
        volume = _quantity(volume)
        when = getattr(ticker, "lastTimestamp", None) or getattr(ticker, "delayedLastTimestamp", None)
        try:
            when = _utc(when) if isinstance(when, datetime) else polled_at
        except OverflowError:
            raise UnusableRowError(f"last trade time {when!r} is out of range once in UTC") from None
        session = when.astimezone(zone).date()
        key = (underlying, instrument.expiry, instrument.strike, instrument.right, session)
        reached = known.get(key) or Decimal(0)
        if volume <= reached:
            return None

        def positive(value: Any) -> Decimal | None:
            number = _float(value)  # NaN, infinity and 1.797e308 are None; IBKR's -1 "no bid" is not a price
            return _price(number) if number is not None and number > 0 else None

        last = positive(ticker.last)
        if last is None:
            raise UnusableRowError(f"day volume {volume} but no last price")
        interest = _float(ticker.callOpenInterest if instrument.right == "C" else ticker.putOpenInterest)
        if interest is None:
            interest = _float(getattr(ticker, "openInterest", None))
        con_id = instrument.con_id
        if not con_id:
            raise UnusableRowError("no conId")
        return OptionPrint(
            print_id=f"ibkr-{con_id}-{session:%Y%m%d}-{volume.normalize():f}",
            time=when,
            underlying=underlying,
            expiry=instrument.expiry,
            strike=instrument.strike,
            right=instrument.right,
            size=volume - reached,
            price=last,
            bid=positive(ticker.bid),
            ask=positive(ticker.ask),
            underlying_price=spot,
            open_interest=_quantity(interest) if interest is not None and interest >= 0 else None,
            volume=volume,
            multiplier=instrument.multiplier,
            delayed=getattr(ticker, "marketDataType", 1) in DELAYED_DATA_TYPES,
        )

    # --- orders ---------------------------------------------------------------------------------------
    # IBKR's order statuses as they cross the boundary. PendingSubmit/PreSubmitted/Submitted are working;
    # Inactive is a refusal (the reason comes as an error); ApiCancelled and Cancelled are both cancels.
    _STATUSES = {
        "Filled": "FILLED",
        "Cancelled": "CANCELLED",
        "ApiCancelled": "CANCELLED",
        "Inactive": "ERROR",
    }
    _ORDER_TIMEOUT_FLOOR = 2.0

    def _order_ack(self, trade: Any, errors: list[tuple[int, str]] = ()) -> OrderAck:
        order, status = trade.order, trade.orderStatus
        filled = _quantity(_float(status.filled) or Decimal(0))
        kind = self._STATUSES.get(status.status, "SUBMITTED")
        if kind == "SUBMITTED" and filled > 0:
            kind = "PARTIALLY_FILLED"
        average = _float(status.avgFillPrice)
        code, message = errors[-1] if errors else (None, "")
        if kind == "ERROR" and not message:
            message = f"IBKR order status {status.status}"
        return OrderAck(
            order_id=order.orderId or None,
            perm_id=order.permId or status.permId or None,
            status=kind,
            order_ref=order.orderRef or "",
            account_id=order.account or "",
            filled=filled,
            remaining=_quantity(_float(status.remaining) or Decimal(0)),
            average_fill_price=_price(average) if average else None,
            code=code,
            message=message,
        )

    @staticmethod
    def _ib_contract(spec: InstrumentSpec) -> Any:
        if spec.sec_type == SecType.STOCK:
            return Stock(spec.symbol, spec.exchange or "SMART", spec.currency, conId=spec.con_id or 0)
        if spec.sec_type == SecType.OPTION:
            return Option(
                spec.symbol,
                spec.expiry.strftime("%Y%m%d") if spec.expiry else "",
                float(spec.strike or 0),
                spec.right,
                spec.exchange or "SMART",
                f"{spec.multiplier.normalize():f}",
                spec.currency,
                conId=spec.con_id or 0,
            )
        return Contract(conId=spec.con_id or 0, symbol=spec.symbol, secType=spec.sec_type, currency=spec.currency)

    @staticmethod
    def _ib_order(request: OrderRequest) -> Any:
        quantity = float(request.quantity)
        if request.order_type == "LMT":
            order = LimitOrder(request.side, quantity, float(request.limit_price))
        elif request.order_type == "STP":
            order = StopOrder(request.side, quantity, float(request.stop_price))
        elif request.order_type == "STP_LMT":
            order = StopLimitOrder(request.side, quantity, float(request.limit_price), float(request.stop_price))
        else:
            order = MarketOrder(request.side, quantity)
        order.account = request.account_id
        order.tif = request.time_in_force
        order.outsideRth = request.outside_rth
        order.orderRef = request.order_ref
        return order

    def place_order(self, request: OrderRequest) -> OrderAck:
        """placeOrder, then wait for IBKR's first word on it (working, filled or refused).

        A read-only connection cannot place orders: refused here, before connecting. Without an answer
        within the timeout the order may still be at IBKR: BrokerUnavailable, and the caller looks it up
        by ``order_ref`` (``orders``) instead of placing it again.
        """
        if self.readonly:
            raise BrokerError(f"{self.where}: the connection is read-only (IBKR_READONLY=true): no order placed")

        async def job(session: _Session) -> OrderAck:
            session.require_account(request.account_id)
            contract = self._ib_contract(request.instrument)
            what = f"order {request.order_ref or '?'} for {request.instrument.symbol}"
            if not contract.conId:
                qualified = _listed(
                    self.where, what, await session.call(what, session.ib.qualifyContractsAsync(contract))
                )
                if not qualified or qualified[0] is None or isinstance(qualified[0], list):
                    raise BrokerError(f"{self.where}: {what}: the contract is unknown or ambiguous at IBKR")
                contract = qualified[0]
            first_error = len(session.error_codes)
            trade = session.ib.placeOrder(contract, self._ib_order(request))
            deadline = time.monotonic() + max(self.timeout, self._ORDER_TIMEOUT_FLOOR)
            while time.monotonic() < deadline:
                errors = [
                    (c, m)
                    for c, m, r in zip(
                        session.error_codes[first_error:],
                        session.error_messages[first_error:],
                        session.error_req_ids[first_error:],
                        strict=True,
                    )
                    if r == trade.order.orderId and not _is_informational(c)
                ]
                if errors and trade.orderStatus.status in ("PendingSubmit", "Inactive", ""):
                    code, message = errors[-1]
                    return OrderAck(
                        order_id=trade.order.orderId or None,
                        status="ERROR",
                        order_ref=request.order_ref,
                        account_id=request.account_id,
                        code=code,
                        message=message,
                    )
                acknowledged = trade.orderStatus.status not in ("PendingSubmit", "ApiPending", "") and (
                    trade.order.permId or trade.orderStatus.permId
                )
                if acknowledged and (trade.isDone() or trade.orderStatus.status in ("Submitted", "PreSubmitted")):
                    return self._order_ack(trade, errors)
                await asyncio.sleep(0.02)
            session.check_connectivity(what)
            raise BrokerUnavailable(f"{self.where}: no answer to {what} within the timeout; it may be at IBKR")

        return self._run("place_order", job)

    def cancel_order(self, account_id: str, order_id: int) -> OrderAck:
        """Cancel one of this client id's orders (IBKR lets only the client that placed it cancel it)."""
        if self.readonly:
            raise BrokerError(f"{self.where}: the connection is read-only (IBKR_READONLY=true): nothing cancelled")

        async def job(session: _Session) -> OrderAck:
            what = f"cancel of order {order_id}"
            await session.call(what, session.ib.reqOpenOrdersAsync())
            trade = next((t for t in session.ib.openTrades() if t.order.orderId == order_id), None)
            if trade is None:
                raise BrokerError(f"{self.where}: {what}: no such open order of client id {self.client_id}")
            session.ib.cancelOrder(trade.order)
            deadline = time.monotonic() + max(self.timeout, self._ORDER_TIMEOUT_FLOOR)
            while time.monotonic() < deadline and not trade.isDone():
                await asyncio.sleep(0.02)
            if not trade.isDone():
                raise BrokerUnavailable(f"{self.where}: {what}: no confirmation within the timeout")
            return self._order_ack(trade)

        return self._run("cancel_order", job)

    def orders(self, account_id: str) -> Fetched[OrderAck]:
        """Every client's open orders and today's completed ones of ``account_id``, each with its orderRef."""

        async def job(session: _Session) -> list[Any]:
            session.require_account(account_id)
            open_trades = _listed(
                self.where, "open orders", await session.call("open orders", session.ib.reqAllOpenOrdersAsync())
            )
            done = _listed(
                self.where,
                "completed orders",
                await session.call("completed orders", session.ib.reqCompletedOrdersAsync(False)),
            )
            return [*open_trades, *done]

        trades = self._run("orders", job)
        acks: dict[int, OrderAck] = {}
        for trade in trades:
            if trade.order.account and trade.order.account != account_id:
                continue
            ack = self._order_ack(trade)
            key = ack.perm_id or id(trade)
            if key not in acks or acks[key].status in ("SUBMITTED", "PARTIALLY_FILLED"):
                acks[key] = ack  # a completed answer wins over an open one
        return Fetched(items=tuple(acks.values()))


# --- option model Greeks ------------------------------------------------------------------------------
# IBKR's "not computed" values in an option computation: -2 for delta, gamma, vega and theta, -1 for the
# volatility and prices (ib_async maps some of them to None, but passes vega and theta's -2 through).
GREEK_UNSET = {"delta": -2, "gamma": -2, "vega": -2, "theta": -2, "impliedVol": -1, "undPrice": -1}
MARKET_DATA_LIVE_ELSE_DELAYED = 3  # live where the account subscribes, delayed (ticks 66.., 83) elsewhere


def _greek(computation: Any, name: str) -> Decimal | None:
    """One value of an option computation, or None for a sentinel, NaN or max-double."""
    value = _float(getattr(computation, name, None))
    if value is None or value == GREEK_UNSET.get(name):
        return None
    if name in ("impliedVol", "undPrice") and value <= 0:
        return None
    if name == "delta" and abs(value) > 1:
        return None
    return value


def _model_greeks(computation: Any) -> OptionGreeks | None:
    """IBKR's modelGreeks normalised: per share, theta per calendar day, vega per volatility point (as
    IBKR computes them); None when the tick never came or carries no Greek at all."""
    if computation is None:
        return None
    values = {
        "delta": _greek(computation, "delta"),
        "gamma": _greek(computation, "gamma"),
        "theta": _greek(computation, "theta"),
        "vega": _greek(computation, "vega"),
        "iv": _greek(computation, "impliedVol"),
    }
    if all(v is None for v in values.values()):
        return None
    greeks = {k: _fit(v, 10, quantize_ratio) for k, v in values.items()}
    return OptionGreeks(**greeks, underlying_price=_price(_greek(computation, "undPrice")))


def _option_contract(spec: InstrumentSpec) -> Any:
    return Option(
        symbol=spec.symbol,
        lastTradeDateOrContractMonth=spec.expiry.strftime("%Y%m%d") if spec.expiry else "",
        strike=float(spec.strike or 0),
        right=spec.right,
        exchange=spec.exchange or "SMART",
        multiplier=f"{spec.multiplier.normalize():f}",
        currency=spec.currency,
        conId=spec.con_id or 0,
    )


def _with_known_reports(ib: Any, fills: list[Any]) -> list[Any]:
    """The fills with the commission report ib_async holds for each execId.

    ib_async keeps one Fill per execId in ``ib.fills()`` and merges commission reports into that one.
    When the execution was already known to the session (an earlier executions request), reqExecutions
    returns a fresh Fill whose CommissionReport stays empty forever, even though the report arrived.
    """
    known = {f.execution.execId: f for f in ib.fills()}
    merged = []
    for fill in fills:
        canonical = known.get(fill.execution.execId)
        if canonical is not None and not _has_commission(fill) and _has_commission(canonical):
            fill = fill._replace(commissionReport=canonical.commissionReport)
        merged.append(fill)
    return merged


def _has_commission(fill: Any) -> bool:
    """A commission report has arrived: it carries the execId and a real (not max-double) commission."""
    report = getattr(fill, "commissionReport", None)
    return bool(report is not None and getattr(report, "execId", "") and _float(report.commission) is not None)
