"""Performance metrics from their definitions (docs/domain-rules.md, "Performance metrics"). Pure: no I/O.

Everything is ``Decimal`` in the default 28-digit context. A return series is a list of
``(day, r)`` pairs, oldest first, ``r`` a fraction (``Decimal("0.05")`` is +5%). Series (daily
changes, the TWR index, drawdowns) keep full precision so that linking them does not accumulate
rounding; summary figures (TWR, max drawdown, XIRR, Sharpe, Sortino, round-trip statistics) are
rounded to what the database stores: ratios to 10 places, money to 4.

Cash flows are signed from the account's side in :func:`daily_changes` (a deposit is positive, a
withdrawal negative) and from the investor's side in :func:`xirr` (see there).
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import pairwise

from core.fields import quantize_money, quantize_ratio

TRADING_DAYS_PER_YEAR = 252  # annualises the daily Sharpe and Sortino ratios
XIRR_DAYS_PER_YEAR = 365  # XIRR's convention (spreadsheets): actual days / 365

ZERO = Decimal(0)
ONE = Decimal(1)
_SQRT_YEAR = Decimal(TRADING_DAYS_PER_YEAR).sqrt()

Returns = Sequence[tuple[date, Decimal]]


# --- account value: daily changes, time-weighted return, drawdowns ------------------------------
@dataclass(frozen=True, slots=True)
class DailyChange:
    """The move of the account value over one day's period: from the previous close to this close.

    ``flow`` is the net of the period's deposits (+) and withdrawals (-), taken at the start of the
    period: it is in the money at work for the whole day.
    """

    day: date
    start: Decimal
    flow: Decimal
    end: Decimal

    @property
    def invested(self) -> Decimal:
        """The value at work during the day: the previous close plus the flow at the start."""
        return self.start + self.flow

    @property
    def pnl(self) -> Decimal:
        """Change in value less the flow: what the market, not the trader's bank, did."""
        return self.end - self.start - self.flow

    @property
    def ret(self) -> Decimal | None:
        """r = (V_end - V_start - flow) / (V_start + flow); None when nothing was at work (see daily_returns)."""
        if self.invested <= 0:
            return None
        return self.pnl / self.invested


def daily_changes(values: Sequence[tuple[date, Decimal]], flows: Sequence[tuple[date, Decimal]]) -> list[DailyChange]:
    """One change per value after the first, pairing it with the previous value and the flows between.

    ``values`` are ``(day, close value)``, one per day. ``flows`` are ``(day, signed amount)``: a flow
    dated ``d`` belongs to the period that ends at the first close on or after ``d`` and is taken at
    that period's start (a Saturday deposit is at the start of Monday's period). Flows dated on or
    before the first value's day are already in that value (the starting capital); flows after the
    last value's day belong to no period yet.
    """
    ordered = sorted(values)
    for (earlier, _), (later, _) in pairwise(ordered):
        if earlier == later:
            raise ValueError(f"two values for {earlier.isoformat()}: one close value per day")
    pending = sorted(flows)
    changes: list[DailyChange] = []
    f = 0
    while f < len(pending) and ordered and pending[f][0] <= ordered[0][0]:
        f += 1
    for (_, start), (day, end) in pairwise(ordered):
        flow = ZERO
        while f < len(pending) and pending[f][0] <= day:
            flow += pending[f][1]
            f += 1
        changes.append(DailyChange(day=day, start=start, flow=flow, end=end))
    return changes


def daily_returns(
    values: Sequence[tuple[date, Decimal]], flows: Sequence[tuple[date, Decimal]]
) -> list[tuple[date, Decimal]]:
    """The daily time-weighted returns, flows removed (see :func:`daily_changes` for which day a flow is on).

    The first day has no return: it is where the series starts. A day whose period starts with
    nothing at work (``V_start + flow <= 0``: an empty account, everything withdrawn, a negative
    margin balance) has no defined return and is left out: the index does not move that day, and
    the next day's return is measured from that day's close, as if the account started again there.
    """
    return [(c.day, c.ret) for c in daily_changes(values, flows) if c.ret is not None]


def twr_index(returns: Returns) -> list[tuple[date, Decimal]]:
    """The growth of 1 invested before the first return: ``product(1 + r)`` to each day."""
    index = ONE
    out = []
    for day, r in returns:
        index *= ONE + r
        out.append((day, index))
    return out


def twr(returns: Returns) -> Decimal:
    """Cumulative time-weighted return: ``product(1 + r) - 1`` (0 for no returns)."""
    index = ONE
    for _, r in returns:
        index *= ONE + r
    return quantize_ratio(index - ONE)


def drawdowns(index: Sequence[tuple[date, Decimal]]) -> list[tuple[date, Decimal]]:
    """``index_t / running peak - 1`` each day (0 or negative).

    The peak starts at the index's base of 1 (the value before the first return), so a loss on the
    very first day is a drawdown.
    """
    peak = ONE
    out = []
    for day, value in index:
        peak = max(peak, value)
        out.append((day, value / peak - ONE))
    return out


def max_drawdown(index: Sequence[tuple[date, Decimal]]) -> Decimal:
    """The worst drawdown: ``min over t of (index_t / running peak - 1)``; 0 when the index never fell."""
    return quantize_ratio(min((dd for _, dd in drawdowns(index)), default=ZERO))


# --- risk-adjusted ratios ------------------------------------------------------------------------
class _Moments:
    """Mean, sample variance (Welford, so equal returns give exactly zero) and downside sum of squares."""

    __slots__ = ("downside", "m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = ZERO
        self.m2 = ZERO
        self.downside = ZERO

    def add(self, r: Decimal) -> None:
        self.n += 1
        delta = r - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (r - self.mean)
        if r < 0:
            self.downside += r * r

    def sharpe(self) -> Decimal | None:
        if self.n < 2 or self.m2 <= 0:
            return None
        stdev = (self.m2 / (self.n - 1)).sqrt()
        return quantize_ratio(self.mean / stdev * _SQRT_YEAR)

    def sortino(self) -> Decimal | None:
        if self.n < 2 or self.downside == 0:
            return None
        downside_deviation = (self.downside / self.n).sqrt()
        return quantize_ratio(self.mean / downside_deviation * _SQRT_YEAR)


def _moments(returns: Returns) -> _Moments:
    moments = _Moments()
    for _, r in returns:
        moments.add(r)
    return moments


def sharpe(returns: Returns) -> Decimal | None:
    """``mean(r) / stdev(r) x sqrt(252)``, stdev with n - 1; risk-free rate 0.

    None with fewer than 2 returns or when they are all equal (no deviation).
    """
    return _moments(returns).sharpe()


def sortino(returns: Returns) -> Decimal | None:
    """``mean(r) / sqrt(sum(min(r, 0)^2) / N) x sqrt(252)``, N = all days (not only the losing ones).

    None with fewer than 2 returns or when no day lost (no downside deviation).
    """
    return _moments(returns).sortino()


def running_ratios(returns: Returns) -> list[tuple[date, Decimal | None, Decimal | None]]:
    """``(day, sharpe, sortino)`` of the returns up to each day: what :func:`sharpe` and
    :func:`sortino` give on each prefix, in one pass (for backfills)."""
    moments = _Moments()
    out = []
    for day, r in returns:
        moments.add(r)
        out.append((day, moments.sharpe(), moments.sortino()))
    return out


# --- money-weighted return -----------------------------------------------------------------------
_X_LIMIT = 30.0  # ln(1 + r) searched in [-30, 30]: r from -100% (exclusive) to about +1e13
_EXP_LIMIT = 700.0  # math.exp overflows a float just above 709


def _discount(years: float, x: float) -> float:
    return math.exp(max(-_EXP_LIMIT, min(_EXP_LIMIT, -years * x)))


def xirr(cashflows: Sequence[tuple[date, Decimal]]) -> Decimal | None:
    """The money-weighted return, annualised: the rate r with ``sum(a / (1 + r) ** (days / 365)) = 0``.

    Sign convention, the investor's side as in a spreadsheet's XIRR: money the investor puts into
    the account is negative (the starting value, every deposit), money the investor gets back is
    positive (every withdrawal, and the final value as though taken out on the last day). Days are
    counted from the earliest flow. Example: -1000 on day 0 and +1100 365 days later is 10%.

    Solved for ``x = ln(1 + r)`` (so r stays above -100%) by Newton's method from 10%, falling back
    to bisection on the sign change nearest 0% when Newton does not converge. Floats are used for
    the search; the result is a Decimal rounded to 10 places. None when the flows do not have both
    signs, all fall on one day, or no rate between -100% and about +1e13 solves them.
    """
    if not cashflows:
        return None
    start = min(day for day, _ in cashflows)
    flows = [((day - start).days / XIRR_DAYS_PER_YEAR, float(amount)) for day, amount in cashflows if amount]
    if not any(a > 0 for _, a in flows) or not any(a < 0 for _, a in flows):
        return None
    if all(t == 0 for t, _ in flows):
        return None
    scale = max(abs(a) for _, a in flows)

    def npv(x: float) -> float:
        return sum(a * _discount(t, x) for t, a in flows)

    x = _newton(npv, flows, scale)
    if x is None:
        x = _bisect(npv)
    if x is None:
        return None
    return quantize_ratio(Decimal(repr(math.expm1(x))))


def _newton(npv, flows: list[tuple[float, float]], scale: float) -> float | None:
    x = math.log1p(0.1)
    for _ in range(100):
        value = npv(x)
        slope = sum(-t * a * _discount(t, x) for t, a in flows)
        if slope == 0 or not math.isfinite(value) or not math.isfinite(slope):
            return None
        step = value / slope
        x -= step
        if not -_X_LIMIT <= x <= _X_LIMIT:
            return None
        if abs(step) < 1e-13:
            return x if abs(npv(x)) <= 1e-7 * scale else None
    return None


def _bisect(npv) -> float | None:
    grid = [i / 10 for i in range(int(-_X_LIMIT * 10), int(_X_LIMIT * 10) + 1)]
    points = [(x, npv(x)) for x in grid]
    brackets = [(lo, hi) for lo, hi in pairwise(points) if lo[1] == 0 or (lo[1] > 0) != (hi[1] > 0)]
    if not brackets:
        return None
    (lo, f_lo), (hi, _) = min(brackets, key=lambda b: min(abs(b[0][0]), abs(b[1][0])))
    if f_lo == 0:
        return lo
    for _ in range(200):
        mid = (lo + hi) / 2
        f_mid = npv(mid)
        if f_mid == 0:
            return mid
        if (f_mid > 0) == (f_lo > 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return (lo + hi) / 2


# --- closed round trips --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RoundTripStats:
    """Statistics of closed round trips, net of commissions, in order of close.

    A winner has P&L > 0; a break-even trip (P&L = 0) is neither a win nor a loss: it counts in
    ``count`` (so it lowers the win rate) and ends a run of losses. ``gross_loss`` is the sum of
    the losing P&Ls, so 0 or negative. ``profit_factor`` is None when there is no loss, and every
    ratio is None when there is no round trip.
    """

    count: int
    win_rate: Decimal | None
    profit_factor: Decimal | None
    expectancy: Decimal | None
    gross_profit: Decimal
    gross_loss: Decimal
    current_consecutive_losses: int
    max_consecutive_losses: int

    @classmethod
    def from_totals(
        cls,
        *,
        count: int,
        wins: int,
        gross_profit: Decimal,
        gross_loss: Decimal,
        current_consecutive_losses: int,
        max_consecutive_losses: int,
    ) -> "RoundTripStats":
        """From sums a database can compute (the net P&L is gross profit + gross loss)."""
        return cls(
            count=count,
            win_rate=quantize_ratio(Decimal(wins) / count) if count else None,
            profit_factor=quantize_ratio(gross_profit / -gross_loss) if gross_loss < 0 else None,
            expectancy=quantize_money((gross_profit + gross_loss) / count) if count else None,
            gross_profit=quantize_money(gross_profit),
            gross_loss=quantize_money(gross_loss),
            current_consecutive_losses=current_consecutive_losses,
            max_consecutive_losses=max_consecutive_losses,
        )


class RoundTripTally:
    """Round-trip P&Ls added in order of close; ``stats()`` at any point is :func:`round_trip_stats` of those so far."""

    __slots__ = ("count", "current", "gross_loss", "gross_profit", "longest", "wins")

    def __init__(self) -> None:
        self.count = 0
        self.wins = 0
        self.gross_profit = ZERO
        self.gross_loss = ZERO
        self.current = 0
        self.longest = 0

    def add(self, pnl: Decimal) -> None:
        self.count += 1
        if pnl < 0:
            self.gross_loss += pnl
            self.current += 1
            self.longest = max(self.longest, self.current)
            return
        self.current = 0  # a win or a break-even ends a run of losses
        if pnl > 0:
            self.wins += 1
            self.gross_profit += pnl

    def extend(self, pnls: Iterable[Decimal]) -> "RoundTripTally":
        for pnl in pnls:
            self.add(pnl)
        return self

    def stats(self) -> RoundTripStats:
        return RoundTripStats.from_totals(
            count=self.count,
            wins=self.wins,
            gross_profit=self.gross_profit,
            gross_loss=self.gross_loss,
            current_consecutive_losses=self.current,
            max_consecutive_losses=self.longest,
        )


def round_trip_stats(pnls: Iterable[Decimal]) -> RoundTripStats:
    """Win rate, profit factor, expectancy and loss streaks of P&Ls ordered by close time.

    win rate = winners / round trips; profit factor = gross profit / |gross loss|; expectancy = mean
    P&L; max consecutive losses = the longest run of P&L < 0; current = the run at the end.
    """
    return RoundTripTally().extend(pnls).stats()
