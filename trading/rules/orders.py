"""Risk checks of an order and the paper engine's fill rules (domain-rules.md "Orders and risk checks").

Pure: no database. ``order_checks`` runs every check and returns each with passed/failed and a
message, so a refused order names every reason, not only the first. The caller gathers the facts
(quote, position, account values, breaker state...) in a fixed number of queries.
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
STOCK_SYMBOL = re.compile(r"^[A-Z0-9]{1,5}(\.[A-Z0-9]{1,2})?$")  # BRK.B: an optional class
OPTION_TYPES = frozenset({"OPT", "FOP"})


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    message: str

    def as_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "message": self.message}


@dataclass(frozen=True, slots=True)
class Limits:
    max_quantity: Decimal
    quote_stale_after: int  # seconds
    max_price_deviation: Decimal  # fraction
    max_position_pct: Decimal  # fraction of net liquidation
    max_trades_per_day: int  # 0: unlimited
    max_trades_per_week: int  # 0: unlimited
    pdt_min_equity: Decimal
    block_good_faith: bool

    def snapshot(self) -> dict:
        """The settings an order was judged by, as JSON (stored with a refusal's risk event)."""
        return {
            "MAX_ORDER_QUANTITY": str(self.max_quantity),
            "QUOTE_STALE_AFTER": self.quote_stale_after,
            "MAX_PRICE_DEVIATION": str(self.max_price_deviation),
            "MAX_POSITION_PCT": str(self.max_position_pct),
            "MAX_TRADES_PER_DAY": self.max_trades_per_day,
            "MAX_TRADES_PER_WEEK": self.max_trades_per_week,
            "PDT_MIN_EQUITY": str(self.pdt_min_equity),
            "CASH_ACCOUNT_BLOCK_GFV": self.block_good_faith,
        }


@dataclass(frozen=True, slots=True)
class QuoteFacts:
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    at: datetime | None

    def price_for(self, side: str) -> Decimal | None:
        """Ask for a buy, bid for a sell; last when there is no bid/ask."""
        price = self.ask if side == "BUY" else self.bid
        if price is None or price <= 0:
            price = self.last
        return price if price is not None and price > 0 else None


@dataclass(frozen=True, slots=True)
class OrderFacts:
    side: str
    quantity: Decimal
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    symbol: str
    sec_type: str
    expiry: date | None
    strike: Decimal | None
    right: str
    multiplier: Decimal
    now: datetime
    market_open: bool
    quote: QuoteFacts | None
    position_quantity: Decimal = ZERO  # signed, before the order
    position_price: Decimal | None = None  # the position's mark; the reference price when unknown
    net_liquidation: Decimal | None = None
    breaker: str = ""  # why opening orders are paused; empty when they are not
    legacy_pdt: bool = False  # the legacy pattern-day-trader rule applies to the account
    completes_day_trade: bool = False  # the order closes what was opened today
    day_trades_left: int | None = None  # -1: unlimited
    equity: Decimal | None = None
    cash_account: bool = False
    cash_available: Decimal | None = None  # settled cash + unsettled sale proceeds - open buy orders
    good_faith: str = ""  # a sale that would be a good-faith violation: why; empty when it would not
    trades_today: int = 0
    trades_week: int = 0
    live_refusal: str = ""  # why a live order may not be sent; empty when it may
    warnings: tuple[str, ...] = field(default=())
    # Prices, the position and the order are in the contract's ``currency``; net liquidation and cash in
    # the account's ``base_currency``. ``fx_rate``: one unit of currency in base (None: no rate known).
    currency: str = "USD"
    base_currency: str = "USD"
    fx_rate: Decimal | None = Decimal(1)
    paper: bool = False  # a paper account: its cash is in its base currency only

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == "BUY" else -self.quantity


def reducing(position_quantity: Decimal, signed_quantity: Decimal) -> bool:
    """The order only reduces or closes the position (never flips it, never opens one)."""
    if position_quantity == 0 or signed_quantity == 0:
        return False
    return (position_quantity > 0) != (signed_quantity > 0) and abs(signed_quantity) <= abs(position_quantity)


def reference_price(facts: OrderFacts) -> Decimal | None:
    """The limit price for a limit order, otherwise the latest quote (ask for a buy, bid for a sell, else last)."""
    if facts.order_type in ("LMT", "STP_LMT") and facts.limit_price is not None:
        return facts.limit_price
    return facts.quote.price_for(facts.side) if facts.quote is not None else None


def quote_is_fresh(quote: QuoteFacts | None, now: datetime, stale_after: int) -> bool:
    return quote is not None and quote.at is not None and 0 <= (now - quote.at).total_seconds() <= stale_after


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def _num(value: Decimal) -> str:
    return f"{value.normalize():f}"


def order_checks(facts: OrderFacts, limits: Limits) -> list[Check]:
    """Every check, passed or failed, in a fixed order."""
    checks = [
        _check_quantity(facts, limits),
        _check_contract(facts),
        _check_currency(facts),
        _check_live(facts),
        _check_quote(facts, limits),
        _check_price_deviation(facts, limits),
        _check_position_size(facts, limits),
        _check_breaker(facts),
        _check_pdt(facts, limits),
        _check_cash(facts),
        _check_good_faith(facts, limits),
        _check_frequency(facts, limits),
    ]
    return checks


def _check_quantity(facts: OrderFacts, limits: Limits) -> Check:
    if facts.quantity <= 0:
        return Check("quantity", False, f"quantity must be more than 0, got {_num(facts.quantity)}")
    if facts.quantity > limits.max_quantity:
        return Check(
            "quantity",
            False,
            f"quantity {_num(facts.quantity)} is more than MAX_ORDER_QUANTITY {_num(limits.max_quantity)}",
        )
    return Check("quantity", True, f"{_num(facts.quantity)} within 0..{_num(limits.max_quantity)}")


def _check_contract(facts: OrderFacts) -> Check:
    if not STOCK_SYMBOL.match(facts.symbol or ""):
        return Check(
            "contract",
            False,
            f"symbol {facts.symbol!r} is not 1-5 letters or digits with an optional class (BRK.B)",
        )
    if facts.sec_type in OPTION_TYPES:
        missing = [
            name
            for name, value in (("expiry", facts.expiry), ("strike", facts.strike), ("right", facts.right))
            if not value
        ]
        if missing:
            return Check("contract", False, f"an option needs {', '.join(missing)}")
        if facts.strike is not None and facts.strike <= 0:
            return Check("contract", False, "an option's strike must be more than 0")
        if facts.expiry is not None and facts.expiry < facts.now.date():
            return Check("contract", False, f"the option expired on {facts.expiry.isoformat()}")
    return Check("contract", True, f"{facts.symbol} ({facts.sec_type})")


def _check_currency(facts: OrderFacts) -> Check:
    """Amounts in two currencies are never compared as numbers: the order's value converts to base."""
    if facts.currency == facts.base_currency:
        return Check("currency", True, f"{facts.currency}, the account's base currency")
    if facts.paper:
        return Check(
            "currency",
            False,
            f"a paper account holds cash in its base currency ({facts.base_currency}) only: "
            f"{facts.symbol} trades in {facts.currency}",
        )
    if facts.fx_rate is None:
        return Check(
            "currency",
            False,
            f"no {facts.currency}/{facts.base_currency} rate is known: the order's value in "
            f"{facts.base_currency} cannot be judged",
        )
    return Check("currency", True, f"{facts.currency} at {_num(facts.fx_rate)} {facts.base_currency}")


def _in_base(facts: OrderFacts, amount: Decimal) -> Decimal | None:
    """An amount in the contract's currency, in the account's base (None without a rate)."""
    if facts.currency == facts.base_currency:
        return amount
    return None if facts.fx_rate is None else amount * facts.fx_rate


def _check_live(facts: OrderFacts) -> Check:
    if facts.live_refusal:
        return Check("live_trading", False, facts.live_refusal)
    return Check("live_trading", True, "the order may be sent")


def _check_quote(facts: OrderFacts, limits: Limits) -> Check:
    fresh = quote_is_fresh(facts.quote, facts.now, limits.quote_stale_after)
    if facts.market_open and not fresh:
        if facts.quote is None or facts.quote.at is None:
            return Check("quote", False, "no fresh quote: none stored for this contract")
        age = int((facts.now - facts.quote.at).total_seconds())
        return Check(
            "quote",
            False,
            f"no fresh quote: the latest is {age} s old (QUOTE_STALE_AFTER {limits.quote_stale_after} s)",
        )
    price = reference_price(facts)
    if price is None:
        return Check("quote", False, "no quote to price the order: send a limit price or wait for a quote")
    if fresh:
        return Check("quote", True, f"reference price {_num(price)}")
    return Check("quote", True, f"reference price {_num(price)} (market closed: the last quote is used)")


def _check_price_deviation(facts: OrderFacts, limits: Limits) -> Check:
    prices = [("limit", facts.limit_price), ("stop", facts.stop_price)]
    prices = [(name, p) for name, p in prices if p is not None]
    if not prices:
        return Check("price_deviation", True, "no limit or stop price")
    quoted = facts.quote.price_for(facts.side) if facts.quote is not None else None
    if quoted is None:
        return Check("price_deviation", True, "no quote to compare the price with")
    for name, price in prices:
        deviation = abs(price - quoted) / quoted
        if deviation > limits.max_price_deviation:
            return Check(
                "price_deviation",
                False,
                f"{name} price {_num(price)} is {deviation:.1%} from the quote {_num(quoted)} "
                f"(MAX_PRICE_DEVIATION {limits.max_price_deviation:.0%})",
            )
    return Check("price_deviation", True, f"within {limits.max_price_deviation:.0%} of the quote {_num(quoted)}")


def _check_position_size(facts: OrderFacts, limits: Limits) -> Check:
    if reducing(facts.position_quantity, facts.signed_quantity):
        return Check("position_size", True, "only reduces or closes the position")
    price = reference_price(facts)
    if price is None:
        return Check("position_size", False, "the order cannot be valued: no reference price")
    if facts.net_liquidation is None or facts.net_liquidation <= 0:
        return Check("position_size", False, "net liquidation unknown or not positive: the position cannot be sized")
    mark = facts.position_price if facts.position_price is not None else price
    after = _in_base(
        facts, facts.position_quantity * mark * facts.multiplier + facts.signed_quantity * price * facts.multiplier
    )
    if after is None:
        return Check("position_size", False, f"the order cannot be valued in {facts.base_currency}: no rate")
    allowed = facts.net_liquidation * limits.max_position_pct
    if abs(after) > allowed:
        return Check(
            "position_size",
            False,
            f"position after the order {_money(abs(after))} is more than {limits.max_position_pct:.0%} of net "
            f"liquidation ({_money(allowed)})",
        )
    return Check(
        "position_size",
        True,
        f"position after the order {_money(abs(after))}, at most {_money(allowed)} "
        f"({limits.max_position_pct:.0%} of net liquidation)",
    )


def _check_breaker(facts: OrderFacts) -> Check:
    if not facts.breaker:
        return Check("circuit_breaker", True, "opening orders allowed")
    if reducing(facts.position_quantity, facts.signed_quantity):
        return Check("circuit_breaker", True, f"closing orders pass ({facts.breaker})")
    return Check("circuit_breaker", False, facts.breaker)


def _check_pdt(facts: OrderFacts, limits: Limits) -> Check:
    if not facts.legacy_pdt:
        return Check("pattern_day_trader", True, "the legacy PDT rule does not apply to this account")
    if not facts.completes_day_trade:
        return Check("pattern_day_trader", True, "does not complete a day trade")
    left = facts.day_trades_left
    if left is not None and (left == -1 or left > 0):
        shown = "unlimited" if left == -1 else str(left)
        return Check("pattern_day_trader", True, f"day trades left: {shown}")
    if facts.equity is not None and facts.equity >= limits.pdt_min_equity:
        return Check("pattern_day_trader", True, f"equity {_money(facts.equity)} at or above the PDT minimum")
    equity = "unknown" if facts.equity is None else _money(facts.equity)
    return Check(
        "pattern_day_trader",
        False,
        f"would complete a day trade with no day trades left and equity {equity} under {_money(limits.pdt_min_equity)}",
    )


def _check_cash(facts: OrderFacts) -> Check:
    if not facts.cash_account:
        return Check("cash_available", True, "margin account")
    if facts.side != "BUY":
        return Check("cash_available", True, "a sale needs no cash")
    price = reference_price(facts)
    if price is None or facts.cash_available is None:
        return Check("cash_available", False, "the cash available or the order's cost is unknown")
    cost = _in_base(facts, facts.quantity * price * facts.multiplier)
    if cost is None:
        return Check("cash_available", False, f"the order's cost in {facts.base_currency} is unknown: no rate")
    if cost > facts.cash_available:
        return Check(
            "cash_available",
            False,
            f"costs {_money(cost)}, more than the cash available {_money(facts.cash_available)} "
            "(settled cash plus unsettled sale proceeds, less open buy orders): no credit in a cash account",
        )
    return Check("cash_available", True, f"costs {_money(cost)} of {_money(facts.cash_available)} available")


def _check_good_faith(facts: OrderFacts, limits: Limits) -> Check:
    if not facts.cash_account or facts.side != "SELL":
        return Check("good_faith", True, "not a sale in a cash account")
    if facts.good_faith and limits.block_good_faith:
        return Check("good_faith", False, f"good-faith violation: {facts.good_faith}")
    if facts.good_faith:
        return Check("good_faith", True, f"allowed by CASH_ACCOUNT_BLOCK_GFV=false: {facts.good_faith}")
    return Check("good_faith", True, "the shares sold were paid with settled funds")


def _check_frequency(facts: OrderFacts, limits: Limits) -> Check:
    if limits.max_trades_per_day and facts.trades_today + 1 > limits.max_trades_per_day:
        return Check(
            "trade_frequency",
            False,
            f"{facts.trades_today} trades today already (MAX_TRADES_PER_DAY {limits.max_trades_per_day})",
        )
    if limits.max_trades_per_week and facts.trades_week + 1 > limits.max_trades_per_week:
        return Check(
            "trade_frequency",
            False,
            f"{facts.trades_week} trades this week already (MAX_TRADES_PER_WEEK {limits.max_trades_per_week})",
        )
    return Check("trade_frequency", True, "within the trade limits")


# --- the paper engine --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PaperOrder:
    side: str
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_triggered: bool = False


def stop_reached(order: PaperOrder, quote: QuoteFacts) -> bool:
    price = quote.price_for(order.side)
    if order.stop_price is None or price is None:
        return False
    return price >= order.stop_price if order.side == "BUY" else price <= order.stop_price


def paper_fill_price(order: PaperOrder, quote: QuoteFacts) -> tuple[Decimal | None, bool]:
    """The price a quote fills the order at (None: it rests), and whether its stop is now triggered.

    A market order fills at the quote (ask for a buy, bid for a sell, else last); a limit order when
    the quote reaches its limit, at the limit; a stop when the quote reaches the stop, at the quote; a
    stop-limit becomes a limit order once its stop is reached.
    """
    price = quote.price_for(order.side)
    if price is None:
        return None, order.stop_triggered
    triggered = order.stop_triggered
    if order.order_type in ("STP", "STP_LMT") and not triggered:
        triggered = stop_reached(order, quote)
        if not triggered:
            return None, False
    if order.order_type in ("MKT", "STP"):
        return price, triggered
    limit = order.limit_price
    if limit is None:
        return None, triggered
    marketable = price <= limit if order.side == "BUY" else price >= limit
    return (limit if marketable else None), triggered


def paper_commission(
    *, quantity: Decimal, price: Decimal, multiplier: Decimal, per_share: Decimal, minimum: Decimal, max_pct: Decimal
) -> Decimal:
    """``PAPER_COMMISSION_PER_SHARE`` a unit, at least ``PAPER_COMMISSION_MIN``, at most ``max_pct`` of the value."""
    value = quantity * price * multiplier
    fee = max(quantity * per_share, minimum)
    cap = value * max_pct
    return min(fee, cap).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def slippage(*, side: str, fill_price: Decimal, decision_price: Decimal | None) -> Decimal | None:
    """Fill price - decision price, signed so that positive is worse for the trader."""
    if decision_price is None:
        return None
    return fill_price - decision_price if side == "BUY" else decision_price - fill_price
