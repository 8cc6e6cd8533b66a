"""Position lifecycle: how the broker's rows change one account's open positions. Pure: no database, no I/O.

The rules (issue "Position sync"):
1. a new broker position is created OPEN with an OPENED event;
2. a known position that changed is updated: INCREASED (the broker's average price is
   authoritative), DECREASED with the realized P&L of the closed part, CLOSED at quantity 0,
   SPLIT when quantity x average price is preserved at a split-like ratio with no fills between,
   and a sign flip closes the old position and opens a new one;
3. an unchanged position only gets its prices and last_synced_at refreshed, with no event;
4. an open position absent at the broker gets one MISSING event and a warning, and is closed only
   when POSITION_SYNC_MARK_MISSING_AS_CLOSED is on;
5. an unreachable broker or a failed request SKIPS the run and changes nothing;
6. a malformed broker row is skipped with a warning naming it.

Rules 1 to 4 are decided here, over positions in memory: ``positions_reconcile`` fills a
``PositionChanges`` with the positions to create, update or re-mark, their events and the warnings,
and ``portfolio/services/sync.py`` writes them in one transaction. Rule 5 is the sync's (it never
gets here) and rule 6 the broker adapters' (their warnings join these).

These are the rules of an account in "sync" mode, one the ledger has no fills for: its realized P&L
is an estimate from the last market price, flagged ``realized_pnl_estimated``. An account with fills
has its positions built from them, and the sync compares rather than drives
(``portfolio/rules/reconcile.py``); these rules still keep the positions the fills do not explain
there (a transfer in).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from core.brokers.base import BrokerPosition
from core.fields import RATIO_DIGITS, RATIO_PLACES, quantize_money, quantize_price, quantize_quantity, quantize_ratio
from marketdata.models import Instrument
from portfolio.models import Position, PositionEventKind, PositionStatus
from portfolio.rules.splits import split_detect
from trading.models import Account


@dataclass
class PositionChanges:
    """What one account's sync will write, gathered before any write."""

    now: datetime
    new_positions: list[Position] = field(default_factory=list)
    changed_positions: dict[int, Position] = field(default_factory=dict)  # quantity, status or cost changed
    marked_positions: dict[int, Position] = field(default_factory=dict)  # only the prices moved
    events: list[tuple[Position, str, dict]] = field(default_factory=list)  # (position, kind, values)
    resolved: list[Position] = field(default_factory=list)  # their open RECONCILE events are resolved
    warnings: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    closed: int = 0
    unchanged: int = 0

    def event(self, position: Position, kind: str, **values) -> None:
        self.events.append((position, kind, values))


def positions_reconcile(
    changes: PositionChanges,
    *,
    account: Account,
    rows: Iterable[tuple[BrokerPosition, Instrument]],
    open_positions: Iterable[Position],
    with_fills: set[int],
    mark_missing_as_closed: bool,
) -> None:
    """Apply the broker's rows (each with its instrument) to the account's open positions, then rule 4
    to the open positions the broker did not report; ``with_fills``: the ids of instruments with
    fills since the last sync (a split-like change among them is a trade)."""
    unreported = {p.instrument_id: p for p in open_positions}
    seen: set[int] = set()
    for row, instrument in rows:
        if instrument.pk in seen:
            changes.warnings.append(f"{instrument}: reported twice by the broker; second row ignored")
            continue
        seen.add(instrument.pk)
        _apply_row(
            changes,
            account=account,
            instrument=instrument,
            row=row,
            position=unreported.pop(instrument.pk, None),
            fills_since=instrument.pk in with_fills,
        )
    for position in unreported.values():
        _apply_missing(changes, position, mark_missing_as_closed=mark_missing_as_closed)


# --- arithmetic --------------------------------------------------------------------------------
def _multiplier(instrument: Instrument) -> Decimal:
    return instrument.multiplier or Decimal(1)


def _realized_estimate(
    *, average: Decimal, price: Decimal | None, closed_quantity: Decimal, multiplier: Decimal
) -> Decimal:
    """(exit - entry) x signed closed quantity x multiplier; zero when no price was ever seen."""
    if price is None:
        return Decimal(0)
    return quantize_money((price - average) * closed_quantity * multiplier)


RATIO_LIMIT = Decimal(10) ** (RATIO_DIGITS - RATIO_PLACES)


def _mark(position: Position, price: Decimal | None) -> None:
    """Refresh the price-derived fields of an open position."""
    if price is not None:
        position.current_price = quantize_price(price)
    if position.current_price is None:
        position.market_value = position.unrealized_pnl = position.unrealized_pnl_pct = None
        return
    multiplier = _multiplier(position.instrument)
    position.market_value = quantize_money(position.quantity * position.current_price * multiplier)
    position.unrealized_pnl = quantize_money(
        (position.current_price - position.average_price) * position.quantity * multiplier
    )
    basis = abs(position.quantity * position.average_price * multiplier)
    ratio = position.unrealized_pnl / basis if basis else None
    # A near-zero cost basis (average 0.00000001) makes a ratio no column holds: unknown, not an error.
    position.unrealized_pnl_pct = quantize_ratio(ratio) if ratio is not None and abs(ratio) < RATIO_LIMIT else None


def _price_fields(position: Position) -> tuple:
    return (position.current_price, position.market_value, position.unrealized_pnl, position.unrealized_pnl_pct)


# --- the rules ---------------------------------------------------------------------------------
def _open(changes: PositionChanges, *, account: Account, instrument: Instrument, row: BrokerPosition) -> None:
    position = Position(
        account=account,
        instrument=instrument,
        status=PositionStatus.OPEN,
        quantity=quantize_quantity(row.quantity),
        average_price=quantize_price(row.average_price),
        opened_at=changes.now,
        last_synced_at=changes.now,
        realized_pnl=Decimal(0),
    )
    _mark(position, row.market_price)
    changes.new_positions.append(position)
    changes.event(
        position,
        PositionEventKind.OPENED,
        quantity_before=Decimal(0),
        quantity_after=position.quantity,
        average_price_before=None,
        average_price_after=position.average_price,
        price=position.current_price,
    )
    changes.created += 1


def _close(changes: PositionChanges, position: Position, *, price: Decimal | None, note: str = "") -> None:
    price = price if price is not None else position.current_price
    realized = _realized_estimate(
        average=position.average_price,
        price=price,
        closed_quantity=position.quantity,
        multiplier=_multiplier(position.instrument),
    )
    changes.event(
        position,
        PositionEventKind.CLOSED,
        quantity_before=position.quantity,
        quantity_after=Decimal(0),
        average_price_before=position.average_price,
        average_price_after=None,
        price=price,
        realized_pnl=realized,
        realized_pnl_estimated=True,
        note=note or ("" if price is not None else "no market price known: realized P&L set to 0"),
    )
    position.status = PositionStatus.CLOSED
    position.closed_at = changes.now
    position.realized_pnl = quantize_money(position.realized_pnl + realized)
    position.realized_pnl_estimated = True
    position.quantity = Decimal(0)
    if price is not None:
        position.current_price = quantize_price(price)
    position.market_value = Decimal(0)
    position.unrealized_pnl = Decimal(0)
    position.unrealized_pnl_pct = None
    position.last_synced_at = changes.now
    changes.changed_positions[position.pk] = position
    changes.closed += 1


def _change_quantity(changes: PositionChanges, position: Position, row: BrokerPosition, *, fills_since: bool) -> None:
    before_qty, before_avg = position.quantity, position.average_price
    after_qty, after_avg = quantize_quantity(row.quantity), quantize_price(row.average_price)
    price = row.market_price if row.market_price is not None else position.current_price
    split = (
        None
        if fills_since
        else split_detect(
            quantity_before=before_qty,
            average_before=before_avg,
            quantity_after=after_qty,
            average_after=after_avg,
        )
    )
    common = {
        "quantity_before": before_qty,
        "quantity_after": after_qty,
        "average_price_before": before_avg,
        "average_price_after": after_avg,
        "price": quantize_price(price) if price is not None else None,
    }
    if split is not None:
        ratio = f"{split.ratio.normalize():f}:1" if split.ratio >= 1 else f"1:{(1 / split.ratio).normalize():f}"
        # The split itself realizes nothing: to the quantity the ratio gives (the quantity after,
        # unless a fraction was paid in cash in lieu, which is then a small sale).
        split_qty = quantize_quantity(split.quantity_split)
        changes.event(
            position,
            PositionEventKind.SPLIT,
            split_ratio=quantize_ratio(split.ratio),
            **{**common, "quantity_after": split_qty},
            note=f"split {ratio}, total cost preserved, nothing realized",
        )
        in_lieu = split_qty - after_qty
        if in_lieu:
            realized = _realized_estimate(
                average=after_avg, price=price, closed_quantity=in_lieu, multiplier=_multiplier(position.instrument)
            )
            changes.event(
                position,
                PositionEventKind.DECREASED,
                realized_pnl=realized,
                realized_pnl_estimated=True,
                **{**common, "quantity_before": split_qty, "average_price_before": after_avg},
                note=f"cash in lieu of {in_lieu.normalize():f} share(s) after the split: a small sale",
            )
            position.realized_pnl = quantize_money(position.realized_pnl + realized)
            position.realized_pnl_estimated = True
    elif abs(after_qty) > abs(before_qty):
        changes.event(position, PositionEventKind.INCREASED, **common)
    else:
        realized = _realized_estimate(
            average=before_avg,
            price=price,
            closed_quantity=before_qty - after_qty,
            multiplier=_multiplier(position.instrument),
        )
        changes.event(
            position, PositionEventKind.DECREASED, realized_pnl=realized, realized_pnl_estimated=True, **common
        )
        position.realized_pnl = quantize_money(position.realized_pnl + realized)
        position.realized_pnl_estimated = True
        # On a partial close the remaining lots keep their cost: the broker's average is authoritative.
    position.quantity, position.average_price = after_qty, after_avg
    changes.updated += 1


def _apply_row(
    changes: PositionChanges,
    *,
    account: Account,
    instrument: Instrument,
    row: BrokerPosition,
    position: Position | None,
    fills_since: bool,
) -> None:
    if position is None:
        if row.quantity != 0:
            _open(changes, account=account, instrument=instrument, row=row)
        return  # a zero row we never held: closed at the broker before we saw it
    reappeared = position.missing_since is not None
    if reappeared:
        changes.event(
            position,
            PositionEventKind.REOPENED,
            quantity_before=position.quantity,
            quantity_after=position.quantity,
            average_price_before=position.average_price,
            average_price_after=position.average_price,
            price=row.market_price,
            note=f"reported by the broker again (missing since {position.missing_since:%Y-%m-%d %H:%M} UTC)",
        )
        position.missing_since = None
    if row.quantity == 0:
        _close(changes, position, price=row.market_price)
        return
    if (row.quantity > 0) != (position.quantity > 0):
        # Long to short (or back) is two positions: close this one, open a new one.
        _close(
            changes, position, price=row.market_price, note="direction changed: closed before opening the other side"
        )
        _open(changes, account=account, instrument=instrument, row=row)
        return
    before_cost, before_marks = (position.quantity, position.average_price), _price_fields(position)
    if quantize_quantity(row.quantity) != position.quantity:
        _change_quantity(changes, position, row, fills_since=fills_since)
    else:
        position.average_price = quantize_price(row.average_price)
        changes.unchanged += 1
    _mark(position, row.market_price)
    position.last_synced_at = changes.now
    if reappeared or before_cost != (position.quantity, position.average_price):
        changes.changed_positions[position.pk] = position
    elif before_marks != _price_fields(position):
        changes.marked_positions[position.pk] = position


def _apply_missing(changes: PositionChanges, position: Position, *, mark_missing_as_closed: bool) -> None:
    label = f"{position.instrument} ({position.quantity.normalize():f})"
    if mark_missing_as_closed:
        _close(
            changes, position, price=None, note="absent at the broker: closed (POSITION_SYNC_MARK_MISSING_AS_CLOSED)"
        )
        changes.warnings.append(f"{label}: absent at the broker; closed with an estimated realized P&L")
        return
    if position.missing_since is None:
        position.missing_since = changes.now
        changes.changed_positions[position.pk] = position
        changes.event(
            position,
            PositionEventKind.MISSING,
            quantity_before=position.quantity,
            quantity_after=position.quantity,
            average_price_before=position.average_price,
            average_price_after=position.average_price,
            price=position.current_price,
            note="open here but absent at the broker; kept open",
        )
    changes.warnings.append(
        f"{label}: open here but absent at the broker since {position.missing_since:%Y-%m-%d %H:%M} UTC; "
        "kept open (POSITION_SYNC_MARK_MISSING_AS_CLOSED is off)"
    )
