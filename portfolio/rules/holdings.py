"""Holdings from the fills of one account and one instrument: pure, no database.

A holding runs from flat to flat, the same span as a round trip (``trading.rules.lots``): it opens
at the fill that leaves flat, and each later fill is an event at that fill's time: INCREASED in the
holding's direction, DECREASED against it, CLOSED when it gets back to flat. A fill that goes
through flat (long to short, or back) is a CLOSED of one holding and an OPENED of the next.

Realized P&L is the ledger's own, from ``lots_match`` on the same fills (per closing fill, and per
round trip for a closed holding), so positions and round trips give the same figures to the last
digit. An open holding's average price follows ``LOT_MATCHING`` (FIFO: the open lots; average: the
average-cost pool), commissions in; its ``average_cost`` is always the pool, which is what a broker
shows as the position's average price and what the position sync compares it with. A closed
holding shows the volume-weighted entry and exit prices of its round trip, before commissions.

A split (``SplitAt``, as the position sync recorded it: no fill explains it) multiplies what is
held by its ratio and keeps the cost; the fills before it are replayed as if in the new units, so
realized P&L after it is still right (the ledger's own lots do not know about splits).
"""

import decimal
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from core.brokers.expiries import SettlementLeg, settlement_leg_of
from core.fields import quantize_money, quantize_price, quantize_quantity
from trading.rules.lots import lots_match
from trading.rules.types import LedgerFill, fill_order

OPENED, INCREASED, DECREASED, CLOSED = "OPENED", "INCREASED", "DECREASED", "CLOSED"
EXPIRED, ASSIGNED, EXERCISED = "EXPIRED", "ASSIGNED", "EXERCISED"
# An option's settlement fill closes it for a reason of its own; the stock it delivered says so.
SETTLEMENT_KINDS = {
    SettlementLeg.EXPIRED: EXPIRED,
    SettlementLeg.ASSIGNED: ASSIGNED,
    SettlementLeg.EXERCISED: EXERCISED,
}
DELIVERY_NOTE = "delivered at the strike by an option's exercise or assignment (its premium in the cost)"
SETTLEMENT_NOTES = {
    SettlementLeg.EXPIRED: "expired worthless: closed at 0 after the expiry session's close",
    SettlementLeg.ASSIGNED: "assigned: closed at 0, its premium moved into the delivered stock's cost",
    SettlementLeg.EXERCISED: "exercised: closed at 0, its premium moved into the delivered stock's cost",
}
_CONTEXT = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class SplitAt:
    """A split seen at ``at``: ``ratio`` new units per old unit (2 for 2-for-1, 0.1 for 1-for-10)."""

    at: datetime
    ratio: Decimal


@dataclass(frozen=True, slots=True)
class HoldingEvent:
    kind: str  # OPENED, INCREASED, DECREASED, CLOSED
    fill_id: int
    at: datetime
    quantity_before: Decimal
    quantity_after: Decimal
    average_price_before: Decimal | None
    average_price_after: Decimal | None
    price: Decimal  # the fill's price
    realized_pnl: Decimal | None  # on the part that closed; None for an opening
    note: str = ""


@dataclass(frozen=True, slots=True)
class HoldingSpan:
    opening_fill_id: int
    opened_at: datetime
    closing_fill_id: int | None  # None while open
    closed_at: datetime | None
    quantity: Decimal  # signed, now (0 once closed)
    average_price: Decimal | None  # open: per LOT_MATCHING, commissions in; closed: the trip's average entry
    average_cost: Decimal | None  # open: the average-cost pool per unit (the broker's figure); closed: None
    exit_price: Decimal | None  # closed: the trip's average exit
    realized_pnl: Decimal
    events: tuple[HoldingEvent, ...]

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class _Book:
    """What is open, in the units of the moment: FIFO lots (signed quantity, basis) and their total, and
    the average-cost pool. A basis is the signed money paid to open, commissions in."""

    __slots__ = ("fifo", "lots", "lots_basis", "multiplier", "pool", "position")

    def __init__(self, *, fifo: bool) -> None:
        self.fifo = fifo
        self.multiplier = Decimal(1)
        self.position = _ZERO
        self.lots: deque[list[Decimal]] = deque()
        self.lots_basis = _ZERO  # the sum of the lots' basis
        self.pool = _ZERO  # the basis of everything open, pro-rated on each close

    def average(self) -> Decimal | None:
        """Per unit, per LOT_MATCHING (FIFO: the open lots; average: the pool)."""
        if not self.position:
            return None
        return quantize_price((self.lots_basis if self.fifo else self.pool) / (self.position * self.multiplier))

    def average_cost(self) -> Decimal | None:
        if not self.position:
            return None
        return quantize_price(self.pool / (self.position * self.multiplier))

    def split(self, ratio: Decimal) -> None:
        self.position = quantize_quantity(self.position * ratio)
        for lot in self.lots:
            lot[0] = quantize_quantity(lot[0] * ratio)

    def close(self, sign: int, closing: Decimal) -> None:
        held = abs(self.position)
        self.position += sign * closing
        if not self.position:
            self.lots.clear()
            self.lots_basis = self.pool = _ZERO
            return
        self.pool -= self.pool * closing / held
        remaining = closing
        while remaining:
            lot = self.lots[0]
            size = abs(lot[0])
            if size <= remaining:
                self.lots.popleft()
                self.lots_basis -= lot[1]
                remaining -= size
            else:
                taken = lot[1] * remaining / size
                lot[1] -= taken
                self.lots_basis -= taken
                lot[0] += sign * remaining
                remaining = _ZERO

    def open(self, sign: int, opening: Decimal, price: Decimal, commission: Decimal) -> None:
        basis = sign * opening * price * self.multiplier + commission
        self.lots.append([sign * opening, basis])
        self.lots_basis += basis
        self.pool += basis
        self.position += sign * opening


class _Span:
    """A holding while it is being replayed."""

    __slots__ = ("entry", "events", "exit", "opening", "realized")

    def __init__(self, opening: LedgerFill) -> None:
        self.opening = opening
        self.events: list[HoldingEvent] = []
        self.realized = _ZERO
        self.entry = [_ZERO, _ZERO]  # quantity, notional of the opening parts
        self.exit = [_ZERO, _ZERO]


def holdings_build(
    fills: Iterable[LedgerFill], *, method: str = "fifo", splits: Sequence[SplitAt] = ()
) -> list[HoldingSpan]:
    """The holdings of one account and instrument from its fills, oldest first; the last one may be open.

    Raises ``ValueError`` (from ``lots_match``) for fills the ledger would refuse.
    """
    ordered = sorted(fills, key=fill_order)
    if not ordered:
        return []
    splits = sorted((s for s in splits if s.ratio > 0 and s.ratio != 1), key=lambda s: s.at)
    with decimal.localcontext(_CONTEXT):
        ledger = lots_match(_in_units_after_splits(ordered, splits), method=method)
        trips = {trip.opening_fill_id: trip for trip in ledger.round_trips}
        book = _Book(fifo=method == "fifo")
        book.multiplier = ordered[0].multiplier
        spans: list[HoldingSpan] = []
        current: _Span | None = None
        pending = deque(splits)
        average = None  # the book's average price now (kept, not recomputed, between fills)
        for fill in ordered:
            while pending and pending[0].at <= fill.executed_at:
                book.split(pending.popleft().ratio)
                average = book.average()
            sign = 1 if fill.side == "BUY" else -1
            before = book.position
            closing = min(fill.quantity, abs(before)) if before and (before > 0) != (sign > 0) else _ZERO
            opening = fill.quantity - closing
            # An exercise's or assignment's basis transfer counts as the ledger counts it: like a commission.
            fees = fill.commission + fill.basis_transfer
            close_commission = fees if not opening else fees * closing / fill.quantity
            price = quantize_price(fill.price)
            if closing:
                assert current is not None  # something is held, so a holding is open
                book.close(sign, closing)
                realized = ledger.realized_by_fill.get(fill.id, _ZERO)
                current.realized += realized
                current.exit[0] += closing
                current.exit[1] += closing * fill.price
                flat = not book.position
                average_after = book.average()
                leg = settlement_leg_of(fill.exec_id)
                current.events.append(
                    HoldingEvent(
                        kind=SETTLEMENT_KINDS.get(leg) or (CLOSED if flat else DECREASED),
                        fill_id=fill.id,
                        at=fill.executed_at,
                        quantity_before=quantize_quantity(before),
                        quantity_after=quantize_quantity(book.position),
                        average_price_before=average,
                        average_price_after=average_after,
                        price=price,
                        realized_pnl=quantize_money(realized),
                        note=_closing_note(leg, flips=bool(opening)),
                    )
                )
                average = average_after
                if flat:
                    spans.append(_closed(current, fill, trips.get(current.opening.id)))
                    current = None
            if opening:
                before = book.position
                book.open(sign, opening, fill.price, fees - close_commission)
                if current is None:
                    current = _Span(fill)
                current.entry[0] += opening
                current.entry[1] += opening * fill.price
                average_after = book.average()
                current.events.append(
                    HoldingEvent(
                        kind=OPENED if not before else INCREASED,
                        fill_id=fill.id,
                        at=fill.executed_at,
                        quantity_before=quantize_quantity(before),
                        quantity_after=quantize_quantity(book.position),
                        average_price_before=average,
                        average_price_after=average_after,
                        price=price,
                        realized_pnl=None,
                        note=DELIVERY_NOTE
                        if settlement_leg_of(fill.exec_id) == SettlementLeg.DELIVERY
                        else "opened by the rest of the fill that closed the other side"
                        if closing
                        else "",
                    )
                )
                average = average_after
        if current is not None:
            while pending:
                book.split(pending.popleft().ratio)
            spans.append(
                HoldingSpan(
                    opening_fill_id=current.opening.id,
                    opened_at=current.opening.executed_at,
                    closing_fill_id=None,
                    closed_at=None,
                    quantity=quantize_quantity(book.position),
                    average_price=book.average(),
                    average_cost=book.average_cost(),
                    exit_price=None,
                    realized_pnl=quantize_money(current.realized),
                    events=tuple(current.events),
                )
            )
    return spans


def _closing_note(leg: SettlementLeg | None, *, flips: bool) -> str:
    if leg == SettlementLeg.DELIVERY:
        return DELIVERY_NOTE
    if leg in SETTLEMENT_NOTES:
        return SETTLEMENT_NOTES[leg]
    return "direction changed: closed before opening the other side" if flips else ""


def _closed(span: _Span, closing: LedgerFill, trip) -> HoldingSpan:
    # The round trip's P&L is the sum of its closing fills' (rounded once per trip), so the two agree;
    # the trip's figure is taken when there is one, as the round trips page shows it.
    realized = trip.realized_pnl if trip is not None else span.realized
    return HoldingSpan(
        opening_fill_id=span.opening.id,
        opened_at=span.opening.executed_at,
        closing_fill_id=closing.id,
        closed_at=closing.executed_at,
        quantity=quantize_quantity(_ZERO),
        average_price=quantize_price(span.entry[1] / span.entry[0]),
        average_cost=None,
        exit_price=quantize_price(span.exit[1] / span.exit[0]),
        realized_pnl=quantize_money(realized),
        events=tuple(span.events),
    )


def _in_units_after_splits(ordered: list[LedgerFill], splits: Sequence[SplitAt]) -> list[LedgerFill]:
    """The fills as if every split had happened before them: quantity x ratio, price / ratio (the
    money of each fill, and so every realized figure, unchanged)."""
    if not splits:
        return ordered
    adjusted = []
    for fill in ordered:
        ratio = Decimal(1)
        for split in splits:
            if split.at > fill.executed_at:
                ratio *= split.ratio
        if ratio == 1:
            adjusted.append(fill)
            continue
        adjusted.append(replace(fill, quantity=quantize_quantity(fill.quantity * ratio), price=fill.price / ratio))
    return adjusted


def holding_quantity(spans: Sequence[HoldingSpan]) -> Decimal:
    """What the fills say is held now: the open holding's quantity, else 0."""
    return spans[-1].quantity if spans and spans[-1].is_open else quantize_quantity(_ZERO)
