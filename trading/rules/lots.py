"""Realized P&L from the fills of one account and one instrument: tax lots, lot matches, round trips.

Pure functions over ``LedgerFill`` (no database). The fills are replayed in ``fill_order`` whatever
order they arrive in, so a late fill with an older timestamp changes the result exactly as if it had
come in order.

Internally every lot carries its *basis*: the signed money paid to open what is still open (price x
quantity x multiplier plus the commission; negative for a short, whose sale brought money in).
Realized P&L is the money in minus that basis, so it is computed from money, never from rounded
per-unit prices, and a partial close takes its pro-rated share of the basis by quantity (what is left
keeps the rest exactly).

Rounding to 0.0001 happens once per round trip, on the running exact total: each match gets the step
of the rounded running total, so its P&L is within 0.0001 of its exact value and the matches of a
trip add up to the trip's exact P&L rounded once. Matches, fills and round trips reconcile to the
last digit, and rounding never drifts however many partial closes a trip has (three closes of
0.66666... each give 0.6667, 0.6666, 0.6667, not 2.0001).
"""

import decimal
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from trading.rules.types import LedgerFill, fill_order

METHODS = ("fifo", "average")

# One fixed context, whatever the caller's thread has set, so the same fills always give the same
# digits. 34 digits (IEEE decimal128) leaves room beyond the 8 places the database keeps for prices.
_CONTEXT = decimal.Context(
    prec=34,
    rounding=ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
_MONEY = Decimal("0.0001")
_ZERO = Decimal(0)
_ZERO_MONEY = Decimal("0.0000")
# Quantities are summed exactly only while they fit the context: 18 whole and 12 decimal digits do.
_MAX_QUANTITY = Decimal(10) ** 18
_MIN_QUANTITY_EXPONENT = -12


@dataclass(frozen=True, slots=True)
class OpenLot:
    opening_fill_id: int
    opened_at: datetime
    original_quantity: Decimal  # signed
    quantity: Decimal  # signed, still open
    cost_price: Decimal  # per unit, opening commission included (for a short: net proceeds per unit)


@dataclass(frozen=True, slots=True)
class Match:
    opening_fill_id: int
    closing_fill_id: int
    quantity: Decimal  # signed in the direction of the position that was closed (negative closes a short)
    entry_price: Decimal  # per unit incl. the pro-rated opening commission
    exit_price: Decimal  # per unit incl. the pro-rated closing commission
    # (exit - entry) x quantity x multiplier to 0.0001 (ROUND_HALF_EVEN on the trip's running total)
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class RoundTripResult:
    opening_fill_id: int
    closing_fill_id: int
    opened_at: datetime
    closed_at: datetime
    direction: str  # "LONG" or "SHORT"
    quantity: Decimal  # largest absolute size held during the trip
    average_entry: Decimal  # volume-weighted per-unit price of the opening fills, before commissions
    average_exit: Decimal  # volume-weighted per-unit price of the closing fills, before commissions
    realized_pnl: Decimal  # net of all commissions of the trip, rounded once: the sum of its matches
    commissions: Decimal
    outcome: str  # "WIN" (pnl > 0), "LOSS" (< 0), "BREAKEVEN" (== 0)
    holding_seconds: int


@dataclass(frozen=True, slots=True)
class LedgerResult:
    open_lots: tuple[OpenLot, ...]
    matches: tuple[Match, ...]
    realized_by_fill: dict[int, Decimal]  # closing fill id -> sum of its matches; fills that only open are absent
    round_trips: tuple[RoundTripResult, ...]  # closed trips only, in closing order
    quantity: Decimal  # net position after all fills
    average_cost: Decimal | None  # average-cost pool per unit, commissions in (TWS "average price"); None when flat
    position_opening_fill_id: int | None  # the fill that opened the current position, None when flat


class _Lot:
    __slots__ = ("basis", "cost_price", "fill", "original_quantity", "quantity")

    def __init__(self, fill: LedgerFill, quantity: Decimal, basis: Decimal, cost_price: Decimal) -> None:
        self.fill = fill
        self.original_quantity = quantity
        self.quantity = quantity
        self.basis = basis
        self.cost_price = cost_price


class _Trip:
    """What a round trip has accumulated so far, kept exact until the trip closes."""

    __slots__ = (
        "cash",
        "commissions",
        "entry_notional",
        "entry_quantity",
        "exit_notional",
        "exit_quantity",
        "opening",
        "peak",
        "realized",
        "realized_exact",
        "sign",
    )

    def __init__(self, opening: LedgerFill, sign: int) -> None:
        self.opening = opening
        self.sign = sign
        self.peak = _ZERO
        self.entry_quantity = self.entry_notional = _ZERO
        self.exit_quantity = self.exit_notional = _ZERO
        self.commissions = _ZERO
        self.cash = _ZERO  # money in minus money out over the trip's fills (their parts in this trip)
        self.realized = _ZERO_MONEY  # always _money(realized_exact)
        self.realized_exact = _ZERO

    def realize(self, exact: Decimal, *, last: bool) -> Decimal:
        """Book a match's exact P&L; return its share of the rounded running total.

        The last match of the trip takes the trip's cash flow as the exact total instead: equal in
        value, but free of the division remainders of pro-rating, so a total that is exactly half a
        ten-thousandth rounds the same way under every lot method.
        """
        self.realized_exact = self.cash if last else self.realized_exact + exact
        total = _money(self.realized_exact)
        step, self.realized = total - self.realized, total
        return step

    def result(self, closing: LedgerFill) -> RoundTripResult:
        realized = self.realized
        delta = closing.executed_at - self.opening.executed_at
        return RoundTripResult(
            opening_fill_id=self.opening.id,
            closing_fill_id=closing.id,
            opened_at=self.opening.executed_at,
            closed_at=closing.executed_at,
            direction="LONG" if self.sign > 0 else "SHORT",
            quantity=self.peak,
            average_entry=self.entry_notional / self.entry_quantity,
            average_exit=self.exit_notional / self.exit_quantity,
            realized_pnl=realized,
            commissions=_money(self.commissions),
            outcome="WIN" if realized > 0 else "LOSS" if realized < 0 else "BREAKEVEN",
            holding_seconds=delta.days * 86400 + delta.seconds,
        )


def lots_match(fills: Iterable[LedgerFill], *, method: str = "fifo") -> LedgerResult:
    """Replay the fills of one account and one instrument and match closing quantity against lots.

    ``method="fifo"`` closes the oldest lots first; ``method="average"`` keeps one average-cost pool
    and reports each close as one match against the fill that opened the current position.
    Raises ``ValueError`` naming the fill for invalid input.
    """
    if method not in METHODS:
        raise ValueError(f"unknown lot matching method {method!r}: expected one of {', '.join(METHODS)}")
    with decimal.localcontext(_CONTEXT):
        return _replay(_validated(fills), fifo=method == "fifo")


def realized_total(result: LedgerResult) -> Decimal:
    """All realized P&L of the replay: the sum of its matches (equal to the sum over closing fills)."""
    with decimal.localcontext(_CONTEXT):
        return sum(result.realized_by_fill.values(), _ZERO_MONEY)


def _replay(ordered: list[LedgerFill], *, fifo: bool) -> LedgerResult:
    position = _ZERO
    lots: deque[_Lot] = deque()
    # The average-cost pool runs under both methods: it is the position's average cost either way.
    pool_basis = _ZERO
    pool_added = _ZERO
    trip: _Trip | None = None
    matches: list[Match] = []
    realized_by_fill: dict[int, Decimal] = {}
    round_trips: list[RoundTripResult] = []

    for fill in ordered:
        sign = 1 if fill.side == "BUY" else -1
        size, price, multiplier = fill.quantity, fill.price, fill.multiplier
        # An exercise's or assignment's basis transfer moves money like a commission (into the cost of
        # what a fill opens, out of the proceeds of what it closes) but is not one: trips count only fees.
        transfer = fill.basis_transfer
        commission = fill.commission + transfer
        held = abs(position)
        closing = min(size, held) if position and (position > 0) != (sign > 0) else _ZERO
        opening = size - closing
        open_commission = commission
        close_transfer = _ZERO

        if closing:
            assert trip is not None  # a position is open, so is its trip
            # A fill that crosses zero splits its commission between the close and the new opening.
            close_commission = commission if not opening else commission * closing / size
            open_commission = commission - close_commission
            close_transfer = transfer if not opening else transfer * closing / size
            exit_price = price + sign * close_commission / (closing * multiplier)
            pool_share = pool_basis if closing == held else pool_basis * closing / held
            trip.cash -= sign * closing * price * multiplier + close_commission
            flattens = closing == held
            fill_realized = _ZERO_MONEY
            if fifo:
                remaining, commission_left = closing, close_commission
                while remaining:
                    lot = lots[0]
                    lot_size = abs(lot.quantity)
                    if lot_size <= remaining:
                        matched, basis = lot_size, lot.basis
                        lots.popleft()
                    else:
                        matched = remaining
                        basis = lot.basis * matched / lot_size
                        lot.basis -= basis
                        lot.quantity += sign * matched
                    share = commission_left if matched == remaining else commission_left * matched / remaining
                    commission_left -= share
                    remaining -= matched
                    last = flattens and not remaining
                    pnl = trip.realize(-(basis + sign * matched * price * multiplier + share), last=last)
                    matches.append(Match(lot.fill.id, fill.id, -sign * matched, lot.cost_price, exit_price, pnl))
                    fill_realized += pnl
            else:
                entry_price = pool_basis / (position * multiplier)
                pnl = trip.realize(
                    -(pool_share + sign * closing * price * multiplier + close_commission), last=flattens
                )
                matches.append(Match(trip.opening.id, fill.id, -sign * closing, entry_price, exit_price, pnl))
                fill_realized = pnl
            pool_basis -= pool_share
            position += sign * closing
            realized_by_fill[fill.id] = fill_realized
            trip.exit_quantity += closing
            trip.exit_notional += closing * price
            trip.commissions += close_commission - close_transfer
            if not position:
                round_trips.append(trip.result(fill))
                trip = None
                pool_basis = pool_added = _ZERO

        if opening:
            signed = sign * opening
            basis = signed * price * multiplier + open_commission
            if fifo:
                cost_price = price + sign * open_commission / (opening * multiplier)
                lots.append(_Lot(fill, signed, basis, cost_price))
            pool_basis += basis
            pool_added += signed
            position += signed
            if trip is None:
                trip = _Trip(fill, sign)
            trip.cash -= basis
            trip.entry_quantity += opening
            trip.entry_notional += opening * price
            trip.commissions += open_commission - (transfer - close_transfer)
            trip.peak = max(trip.peak, abs(position))

    average_cost = None
    open_lots: tuple[OpenLot, ...] = ()
    if position:
        assert trip is not None
        average_cost = pool_basis / (position * trip.opening.multiplier)
        if fifo:
            open_lots = tuple(
                OpenLot(lot.fill.id, lot.fill.executed_at, lot.original_quantity, lot.quantity, lot.cost_price)
                for lot in lots
            )
        else:
            opened = trip.opening
            open_lots = (OpenLot(opened.id, opened.executed_at, pool_added, position, average_cost),)
    return LedgerResult(
        open_lots=open_lots,
        matches=tuple(matches),
        realized_by_fill=realized_by_fill,
        round_trips=tuple(round_trips),
        quantity=position,
        average_cost=average_cost,
        position_opening_fill_id=trip.opening.id if trip is not None else None,
    )


def _money(value: Decimal) -> Decimal:
    quantized = value.quantize(_MONEY, rounding=ROUND_HALF_EVEN)
    return quantized if quantized else _ZERO_MONEY  # no "-0.0000" in the books


def _validated(fills: Iterable[LedgerFill]) -> list[LedgerFill]:
    """The fills in replay order, after refusing anything the replay could get wrong silently."""
    fills = list(fills)
    for fill in fills:  # before sorting: naive and aware datetimes do not even compare
        if not isinstance(fill.executed_at, datetime) or fill.executed_at.tzinfo is None:
            raise ValueError(f"{_name(fill)}: executed_at {fill.executed_at!r} must be an aware datetime (UTC)")
    ordered = sorted(fills, key=fill_order)
    if not ordered:
        return ordered
    first = ordered[0]
    seen: set = set()
    for fill in ordered:
        if fill.instrument_id != first.instrument_id:
            raise ValueError(
                f"{_name(fill)}: instrument {fill.instrument_id}, but fill {first.id} is instrument "
                f"{first.instrument_id}; replay one instrument at a time"
            )
        if fill.id in seen:
            raise ValueError(f"{_name(fill)}: the same fill id appears twice")
        seen.add(fill.id)
        if fill.side not in ("BUY", "SELL"):
            raise ValueError(f"{_name(fill)}: unknown side {fill.side!r}, expected BUY or SELL")
        for field in ("quantity", "price", "commission", "multiplier", "basis_transfer"):
            value = getattr(fill, field)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"{_name(fill)}: {field} must be a finite Decimal, got {value!r}")
        quantity = fill.quantity
        if quantity <= 0:
            raise ValueError(f"{_name(fill)}: quantity must be positive, got {quantity}")
        if quantity >= _MAX_QUANTITY or quantity.normalize().as_tuple().exponent < _MIN_QUANTITY_EXPONENT:
            raise ValueError(f"{_name(fill)}: quantity {quantity} is out of range (18 digits, 12 decimal places)")
        if fill.multiplier <= 0:
            raise ValueError(f"{_name(fill)}: multiplier must be positive, got {fill.multiplier}")
        if fill.multiplier != first.multiplier:
            raise ValueError(
                f"{_name(fill)}: multiplier {fill.multiplier}, but fill {first.id} has {first.multiplier}; "
                "one instrument has one multiplier"
            )
    return ordered


def _name(fill: LedgerFill) -> str:
    return f"fill {fill.id} (exec {fill.exec_id})"
