"""Option Greeks: the pure rules (domain-rules.md, "Option Greeks"). No database.

Per option, per share of one contract: delta, gamma, theta (per calendar day), vega (per volatility
point), implied volatility (annualised), days to expiry and the underlying price. The broker's model
values are preferred; without them, Black-Scholes-Merton (``vollib``, Jaeckel's LetsBeRational for the
implied volatility) from the option's mid (or last) price, the underlying price, the risk-free rate and
a dividend yield, solving the implied volatility first. A price outside the no-arbitrage bounds (below
the discounted intrinsic value, above the discounted underlying or strike) has no implied volatility:
the Greeks stay empty and ``reason`` says why.

Position Greeks are the per-share values x multiplier x signed quantity (a short call's delta is
negative); portfolio Greeks add them per underlying, a stock counting one share of delta per share.

Numbers cross in and out as ``Decimal``; the library works in binary floats in between, which is
why every result is quantized to the ratio column's places (10) before it is stored.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache

from vollib.black_scholes_merton.greeks import analytical
from vollib.black_scholes_merton.implied_volatility import implied_volatility
from vollib.helpers.exceptions import PriceIsAboveMaximum, PriceIsBelowIntrinsic

from core.fields import quantize_money, quantize_price, quantize_quantity, quantize_ratio
from trading.calendars import exchange_zone, previous_sessions, session_close

SOURCE_BROKER, SOURCE_COMPUTED = "BROKER", "COMPUTED"
DAYS_PER_YEAR = Decimal(365)
SECONDS_PER_DAY = Decimal(86400)
REGULAR_CLOSE = time(16, 0)


@dataclass(frozen=True, slots=True)
class Greeks:
    """One option's Greeks per share of one contract, where they came from and with which inputs.

    Empty values (None) with a ``reason`` when they could not be had.
    """

    delta: Decimal | None = None
    gamma: Decimal | None = None
    theta: Decimal | None = None  # per calendar day
    vega: Decimal | None = None  # per volatility point (0.01)
    iv: Decimal | None = None  # annualised
    underlying_price: Decimal | None = None
    days_to_expiry: Decimal | None = None
    source: str = ""  # BROKER, COMPUTED, or "" when empty
    reason: str = ""  # why they are empty
    inputs: dict = field(default_factory=dict)  # what a computed set was computed from (JSON-ready strings)

    @property
    def known(self) -> bool:
        return self.delta is not None


# --- days to expiry ----------------------------------------------------------------------------
@lru_cache(maxsize=4096)  # the calendar lookup costs a third of a millisecond; positions share expiries
def expiry_close(expiry: date) -> datetime:
    """When an option expiring on ``expiry`` stops trading: the close of its expiry session (an early
    close when that day closes early; the session before when the date is a holiday), in UTC. Outside
    the calendar's range, 16:00 exchange time on the date."""
    try:
        session = previous_sessions(expiry, 1)[0]
        return session_close(session)
    except ValueError:
        return datetime.combine(expiry, REGULAR_CLOSE, tzinfo=exchange_zone()).astimezone(UTC)


def days_to_expiry(*, expiry: date, now: datetime) -> Decimal:
    """Calendar days (fractional) from ``now`` to the expiry session's close; 0 once it has passed.

    Calendar days, weekends included: Friday's close to Monday's expiry close is 3.
    """
    seconds = Decimal((expiry_close(expiry) - now).total_seconds())
    return quantize_ratio(max(seconds, Decimal(0)) / SECONDS_PER_DAY)


# --- the fallback: Black-Scholes-Merton ---------------------------------------------------------
def _bounds(*, right: str, spot: float, strike: float, years: float, rate: float, dividend: float):
    """The no-arbitrage (European) bounds of an option's price: (lowest, highest)."""
    spot_pv = spot * math.exp(-dividend * years)
    strike_pv = strike * math.exp(-rate * years)
    if right == "C":
        return max(0.0, spot_pv - strike_pv), spot_pv
    return max(0.0, strike_pv - spot_pv), strike_pv


def bsm_greeks(
    *,
    right: str,
    underlying_price: Decimal | None,
    strike: Decimal,
    days: Decimal,
    option_price: Decimal | None,
    price_kind: str,
    rate: Decimal,
    dividend_yield: Decimal = Decimal(0),
) -> Greeks:
    """The Black-Scholes-Merton Greeks of one option from its price: the implied volatility first, then
    delta, gamma, theta per day and vega per point at that volatility. Empty with the reason when an
    input is missing or the price lies outside the no-arbitrage bounds."""
    inputs = {
        "option_price": None if option_price is None else str(option_price),
        "price_kind": price_kind,
        "underlying_price": None if underlying_price is None else str(underlying_price),
        "strike": str(strike),
        "days_to_expiry": str(days),
        "risk_free_rate": str(rate),
        "dividend_yield": str(dividend_yield),
        "model": "black-scholes-merton (vollib)",
    }

    def empty(reason: str) -> Greeks:
        return Greeks(underlying_price=underlying_price, days_to_expiry=days, reason=reason, inputs=inputs)

    if right not in ("C", "P"):
        return empty(f"unknown option right {right!r}")
    if days <= 0:
        return empty("expired: no time left to the expiry session's close")
    if underlying_price is None or underlying_price <= 0:
        return empty("no underlying price: no stored quote of the underlying")
    if option_price is None:
        return empty("no option price: no stored quote (mid or last) and no market price")
    spot, k, price = float(underlying_price), float(strike), float(option_price)
    years = float(days / DAYS_PER_YEAR)
    r, q = float(rate), float(dividend_yield)
    lowest, highest = _bounds(right=right, spot=spot, strike=k, years=years, rate=r, dividend=q)
    if price <= lowest:
        return empty(
            f"price {option_price} is not above the option's intrinsic value "
            f"({quantize_price(Decimal(lowest)).normalize():f} discounted): no implied volatility"
        )
    if price >= highest:
        return empty(
            f"price {option_price} is not below the no-arbitrage bound "
            f"{quantize_price(Decimal(highest)).normalize():f}: no implied volatility"
        )
    flag = right.lower()
    try:
        sigma = float(implied_volatility(price, spot, k, years, r, q, flag))
    except (PriceIsBelowIntrinsic, PriceIsAboveMaximum, ArithmeticError, ValueError) as exc:
        return empty(f"no implied volatility for price {option_price}: {exc}")
    if not math.isfinite(sigma) or sigma <= 0:
        return empty(f"no implied volatility for price {option_price}")
    values = (
        analytical.delta(flag, spot, k, years, r, sigma, q),
        analytical.gamma(flag, spot, k, years, r, sigma, q),
        analytical.theta(flag, spot, k, years, r, sigma, q),  # per calendar day (the library divides by 365)
        analytical.vega(flag, spot, k, years, r, sigma, q),  # per volatility point (x 0.01)
    )
    if not all(math.isfinite(float(v)) for v in values):
        return empty(f"the model gave no finite Greeks for price {option_price} (too close to expiry)")
    delta, gamma, theta, vega = (quantize_ratio(Decimal(float(v))) for v in values)
    return Greeks(
        delta=delta,
        gamma=gamma,
        theta=theta,
        vega=vega,
        iv=quantize_ratio(Decimal(sigma)),
        underlying_price=underlying_price,
        days_to_expiry=days,
        source=SOURCE_COMPUTED,
        inputs=inputs,
    )


def broker_greeks(
    *, delta, gamma, theta, vega, iv, underlying_price: Decimal | None, days: Decimal, fallback_underlying=None
) -> Greeks:
    """The broker's model values as a Greeks set (its underlying price, else the stored one)."""
    return Greeks(
        delta=quantize_ratio(delta),
        gamma=quantize_ratio(gamma),
        theta=quantize_ratio(theta),
        vega=quantize_ratio(vega),
        iv=quantize_ratio(iv),
        underlying_price=quantize_price(underlying_price if underlying_price is not None else fallback_underlying),
        days_to_expiry=days,
        source=SOURCE_BROKER,
        inputs={"model": "broker"},
    )


# --- position and portfolio Greeks --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PositionGreekValues:
    """A position's Greeks: per-share values x multiplier x signed quantity."""

    delta_shares: Decimal  # the position's delta, in shares of the underlying
    dollar_delta: Decimal | None  # delta x underlying price
    gamma: Decimal  # change of delta_shares per 1.00 move of the underlying
    theta: Decimal  # money per calendar day
    vega: Decimal  # money per volatility point


def position_greeks(
    *,
    delta: Decimal,
    gamma: Decimal,
    theta: Decimal,
    vega: Decimal,
    multiplier: Decimal,
    quantity: Decimal,
    underlying_price: Decimal | None,
) -> PositionGreekValues:
    """Per-share Greeks scaled to a position. Long 2 calls of delta 0.52 and theta -0.21 (x100): +104
    shares of delta, -42.00 per day."""
    scale = Decimal(multiplier) * Decimal(quantity)
    delta_shares = quantize_quantity(delta * scale)
    return PositionGreekValues(
        delta_shares=delta_shares,
        dollar_delta=None if underlying_price is None else quantize_money(delta_shares * underlying_price),
        gamma=quantize_quantity(gamma * scale),
        theta=quantize_money(theta * scale),
        vega=quantize_money(vega * scale),
    )


@dataclass
class UnderlyingRisk:
    """The Greeks of every position on one underlying, added up."""

    symbol: str
    currency: str
    underlying_price: Decimal | None = None
    delta_shares: Decimal = Decimal(0)
    dollar_delta: Decimal | None = Decimal(0)
    gamma: Decimal = Decimal(0)
    theta: Decimal = Decimal(0)
    vega: Decimal = Decimal(0)
    options: int = 0
    without_greeks: int = 0  # option positions whose Greeks are unknown: not in the sums


@dataclass
class PortfolioRisk:
    underlyings: list[UnderlyingRisk]
    # Totals per currency (amounts in different currencies are never added): dollar delta and theta.
    dollar_delta: dict[str, Decimal | None]
    theta: dict[str, Decimal]
    without_greeks: int


@dataclass(frozen=True, slots=True)
class RiskRow:
    """One open position as the portfolio risk reads it."""

    symbol: str
    currency: str
    is_option: bool
    quantity: Decimal
    multiplier: Decimal
    price: Decimal | None  # a stock's price (its delta is 1 per share)
    delta: Decimal | None = None
    gamma: Decimal | None = None
    theta: Decimal | None = None
    vega: Decimal | None = None
    underlying_price: Decimal | None = None


def portfolio_risk(rows: Iterable[RiskRow]) -> PortfolioRisk:
    """Per underlying (symbol and currency): delta in shares, dollar delta, gamma, theta per day and
    vega, over its options and its stock; only underlyings with an option position are listed. Totals
    of dollar delta and theta per currency. A dollar delta is unknown (None) when a position in it has
    no underlying price."""
    groups: dict[tuple[str, str], UnderlyingRisk] = {}
    stocks: list[RiskRow] = []
    for row in rows:
        if not row.is_option:
            stocks.append(row)
            continue
        group = groups.setdefault((row.symbol, row.currency), UnderlyingRisk(symbol=row.symbol, currency=row.currency))
        group.options += 1
        if None in (row.delta, row.gamma, row.theta, row.vega):
            group.without_greeks += 1
            continue
        values = position_greeks(
            delta=row.delta,
            gamma=row.gamma,
            theta=row.theta,
            vega=row.vega,
            multiplier=row.multiplier,
            quantity=row.quantity,
            underlying_price=row.underlying_price,
        )
        if row.underlying_price is not None:
            group.underlying_price = row.underlying_price
        group.delta_shares += values.delta_shares
        group.gamma += values.gamma
        group.theta += values.theta
        group.vega += values.vega
        if group.dollar_delta is not None and values.dollar_delta is not None:
            group.dollar_delta += values.dollar_delta
        else:
            group.dollar_delta = None
    for stock in stocks:
        group = groups.get((stock.symbol, stock.currency))
        if group is None:
            continue
        shares = quantize_quantity(stock.quantity * stock.multiplier)
        group.delta_shares += shares
        price = stock.price if stock.price is not None else group.underlying_price
        if group.underlying_price is None:
            group.underlying_price = price
        if group.dollar_delta is not None and price is not None:
            group.dollar_delta += quantize_money(shares * price)
        else:
            group.dollar_delta = None
    underlyings = sorted(groups.values(), key=lambda g: (g.symbol, g.currency))
    dollar_delta: dict[str, Decimal | None] = {}
    theta: dict[str, Decimal] = {}
    for group in underlyings:
        total = dollar_delta.get(group.currency, Decimal(0))
        # One underlying without a price makes the currency's total unknown, not smaller.
        unknown = total is None or group.dollar_delta is None
        dollar_delta[group.currency] = None if unknown else total + group.dollar_delta
        theta[group.currency] = theta.get(group.currency, Decimal(0)) + group.theta
    return PortfolioRisk(
        underlyings=underlyings,
        dollar_delta=dollar_delta,
        theta=theta,
        without_greeks=sum(g.without_greeks for g in underlyings),
    )
