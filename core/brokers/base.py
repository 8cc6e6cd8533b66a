"""What crosses the broker boundary: a protocol and frozen, already-normalised dataclasses.

Everything here is clean: ``Decimal`` numbers, timezone-aware UTC datetimes, sides ``BUY``/``SELL``,
per-unit average prices. No broker quirk (avgCost x multiplier, BOT/SLD, string account values,
NaN or 1.797e308 sentinels) survives past an adapter.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Generic, Protocol, TypeVar, runtime_checkable

from core.brokers.contracts import InstrumentSpec

T = TypeVar("T")


class BrokerUnavailable(Exception):  # noqa: N818 - the name the architecture gives it
    """The broker cannot be reached (gateway down, file missing, connection lost, timeout).

    Callers must treat this as "unknown", never as "the account is empty".
    """


class BrokerError(Exception):
    """The broker answered, but with an error for this request."""


class PacingViolation(BrokerError):  # noqa: N818 - IBKR's name for it
    """The broker refused a historical-data request for pacing (IBKR error 162): retry later."""


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """Rows from one broker call plus a warning for each row that was skipped as malformed."""

    items: tuple[T, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AccountValues:
    net_liquidation: Decimal | None = None
    total_cash: Decimal | None = None
    settled_cash: Decimal | None = None
    buying_power: Decimal | None = None
    excess_liquidity: Decimal | None = None
    maint_margin_req: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    realized_pnl: Decimal | None = None
    day_trades_remaining: int | None = None  # -1 means unlimited, as IBKR reports it
    currency: str = "USD"
    # Cash per currency (IBKR's CashBalance rows; a currency's own amount, not converted).
    cash_balances: dict[str, Decimal] = field(default_factory=dict)
    # The broker's rate from each currency to ``currency`` (IBKR's ExchangeRate: {"EUR": 1.16} for a USD
    # account means 1 EUR = 1.16 USD). The base currency itself is not listed; a missing one is unknown.
    fx_rates: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    account_id: str
    account_type: str | None  # MARGIN or CASH; None when the broker does not say (staff decide)
    base_currency: str
    values: AccountValues = field(default_factory=AccountValues)


@dataclass(frozen=True, slots=True)
class OptionGreeks:
    """The broker's model values for one option, per share of one contract (IBKR's model Greeks).

    ``delta`` of a long call lies between 0 and 1, ``theta`` is per calendar day, ``vega`` per volatility
    point, ``iv`` annualised. A value the broker did not give (or gave as a sentinel) is None.
    """

    delta: Decimal | None = None
    gamma: Decimal | None = None
    theta: Decimal | None = None
    vega: Decimal | None = None
    iv: Decimal | None = None
    underlying_price: Decimal | None = None

    @property
    def complete(self) -> bool:
        """Every Greek is known: only then is the broker's set used instead of a computed one."""
        return None not in (self.delta, self.gamma, self.theta, self.vega, self.iv)


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    account_id: str
    instrument: InstrumentSpec
    quantity: Decimal  # signed: negative is short; 0 is a position closed today
    average_price: Decimal  # per unit (IBKR's avgCost divided by the multiplier)
    market_price: Decimal | None = None  # per unit
    greeks: OptionGreeks | None = None  # options: the broker's model Greeks, when it has them


@dataclass(frozen=True, slots=True)
class BrokerOptionGreeks:
    """An option's model Greeks as a broker computes them from its market data (IBKR's modelGreeks)."""

    instrument: InstrumentSpec
    greeks: OptionGreeks


@dataclass(frozen=True, slots=True)
class BrokerExecution:
    account_id: str
    exec_id: str
    instrument: InstrumentSpec
    side: str  # BUY or SELL
    quantity: Decimal  # positive
    price: Decimal
    executed_at: datetime
    commission: Decimal | None = None  # None until the commission report arrives
    commission_currency: str = "USD"
    order_id: int | None = None
    perm_id: int | None = None
    exchange: str = ""
    settlement_date: str | None = None  # ISO date when the broker supplies one
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BrokerCashFlow:
    account_id: str
    flow_id: str
    kind: str  # DEPOSIT or WITHDRAWAL
    amount: Decimal  # positive
    at: datetime
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar. ``start`` is its opening time in UTC; a daily bar's is midnight UTC of its
    session date (IBKR dates daily bars in the exchange's zone: the adapter keeps the date)."""

    symbol: str
    bar_size: str  # 1m, 5m, 15m, 1h, 1d
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    wap: Decimal | None = None  # volume-weighted average price, when the broker gives one
    trade_count: int | None = None


@dataclass(frozen=True, slots=True)
class FxDay:
    """One day's exchange rate: one unit of ``currency`` is worth ``rate`` units of ``base`` on ``day``
    (the close of the cash pair's daily MIDPOINT bar at IBKR)."""

    currency: str
    base: str
    day: date
    rate: Decimal


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    at: datetime | None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    last_size: Decimal | None = None
    volume: Decimal | None = None  # the day's volume so far
    delayed: bool = False  # the broker answered with delayed data (no live subscription)


@dataclass(frozen=True, slots=True)
class OptionPrint:
    """One trade print of an option on ``underlying`` (options flow), with the quote and day figures
    that came with it. ``multiplier`` is per contract (100 for US equity options)."""

    print_id: str
    time: datetime
    underlying: str
    expiry: date
    strike: Decimal
    right: str  # C or P
    size: Decimal
    price: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    underlying_price: Decimal | None = None
    open_interest: Decimal | None = None
    volume: Decimal | None = None
    exchanges: int | None = None
    kind: str = ""  # SWEEP, BLOCK, SPLIT or "" for a plain print
    multiplier: Decimal = Decimal(100)
    delayed: bool = False  # the broker served delayed (15-20 minutes old) market data for it


# (underlying, expiry, strike, right, session): the day volume of one option contract in one exchange
# session (New York date) already reported as prints; an adapter that derives prints from day volume
# (IBKR) reports only what traded beyond it.
OptionVolumeKey = tuple[str, date, Decimal, str, date]


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order to place. ``order_ref`` is the client's order id: the broker keeps it with the order
    (IBKR's ``orderRef``), so an order whose acknowledgement was lost is found again by it."""

    account_id: str
    instrument: InstrumentSpec
    side: str  # BUY or SELL
    quantity: Decimal  # positive
    order_type: str = "MKT"  # MKT, LMT, STP, STP_LMT
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "DAY"  # DAY or GTC
    outside_rth: bool = False
    order_ref: str = ""


# Order statuses as they cross the boundary (IBKR's PreSubmitted/Submitted/ApiPending... normalised).
ORDER_STATUSES = ("SUBMITTED", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "ERROR")


@dataclass(frozen=True, slots=True)
class OrderAck:
    """What the broker says of one order: on placing it, cancelling it, or listing orders."""

    order_id: int | None
    status: str  # one of ORDER_STATUSES
    perm_id: int | None = None
    order_ref: str = ""
    account_id: str = ""
    filled: Decimal = Decimal(0)
    remaining: Decimal | None = None
    average_fill_price: Decimal | None = None
    code: int | None = None  # the broker's error code when it refused the order
    message: str = ""


BAR_SIZES = ("1m", "5m", "15m", "1h", "1d")
# The longest span one bars() request may cover per bar size (IBKR's duration limits per bar size);
# a longer backfill is asked in chunks of this size.
MAX_REQUEST_SPAN = {
    "1m": timedelta(days=1),
    "5m": timedelta(days=7),
    "15m": timedelta(days=14),
    "1h": timedelta(days=30),
    "1d": timedelta(days=365),
}


@runtime_checkable
class Broker(Protocol):
    """The calls every adapter answers. Each raises BrokerUnavailable or BrokerError on failure."""

    name: str

    def accounts(self) -> Fetched[BrokerAccount]: ...

    def positions(self, account_id: str) -> Fetched[BrokerPosition]: ...

    def executions(self, account_id: str, since: datetime | None = None) -> Fetched[BrokerExecution]: ...

    def cash_flows(self, account_id: str) -> Fetched[BrokerCashFlow]: ...

    def bars(
        self, symbol: str, bar_size: str, start: datetime | None = None, end: datetime | None = None
    ) -> Fetched[Bar]: ...

    def quote(self, symbol: str) -> Quote | None: ...

    def fx_history(self, currency: str, base: str, start: date, end: date) -> Fetched[FxDay]:
        """Daily rates of ``currency`` in ``base`` for the days in [start, end] the broker has (no weekends)."""
        ...

    def place_order(self, request: OrderRequest) -> OrderAck: ...

    def cancel_order(self, account_id: str, order_id: int) -> OrderAck: ...

    def orders(self, account_id: str) -> Fetched[OrderAck]:
        """Open orders and today's completed ones, each with its ``order_ref``."""
        ...
