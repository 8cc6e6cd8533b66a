"""The broker sync of an account in "fills" mode: it reconciles rather than drives. Pure: no database.

An account the ledger has fills for has its holdings built from them (``portfolio/rules/holdings.py``).
The broker's rows then bring prices (current price, market value, unrealized P&L) and are compared
with the fills, instrument by instrument:

1. a holding built from the fills that the broker reports with the same quantity (and an average
   price within the broker's rounding) only gets its prices; an earlier difference is resolved;
2. a difference the fills cannot explain is one RECONCILE event on the position, with both sides'
   figures and the likely cause; the same difference seen again records nothing more, a new one
   resolves the old. Neither side is overwritten: the position keeps the fills' figures and
   remembers the broker's (``broker_quantity``, ``broker_average_price``);
3. a split is still a split (``portfolio/rules/splits.py``): a change of quantity and average that
   keeps the total cost is a SPLIT event, which the next build from the fills applies too;
4. where the fills hold nothing (a transfer in, or a fill not yet ingested) the broker's position is
   kept as a sync without fills keeps it (``portfolio/rules/lifecycle.py``), with its RECONCILE note.

A RECONCILE the fills later explain is resolved by the build (``portfolio/services/holdings.py``).
"""

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from core.brokers.base import BrokerPosition
from core.fields import quantize_price, quantize_quantity, quantize_ratio
from marketdata.models import Instrument
from portfolio.models import Position, PositionEventKind, PositionStatus, ReconcileCause
from portfolio.rules.lifecycle import PositionChanges, _apply_missing, _apply_row, _mark, _price_fields
from portfolio.rules.splits import AVERAGE_ROUNDING, split_detect
from trading.models import Account

OPTION_TYPES = ("OPT", "FOP")


def figures_agree(
    *,
    fills_quantity: Decimal,
    fills_average: Decimal | None,
    broker_quantity: Decimal,
    broker_average: Decimal | None,
) -> bool:
    """The same quantity, and (when both sides hold something and know an average) averages within
    the broker's rounding of one another."""
    if quantize_quantity(fills_quantity) != quantize_quantity(broker_quantity):
        return False
    if not broker_quantity or fills_average is None or broker_average is None:
        return True
    return abs(fills_average - broker_average) <= AVERAGE_ROUNDING


def reconcile_cause(
    *,
    instrument: Instrument,
    fills_quantity: Decimal,
    broker_quantity: Decimal,
    broker_moved: bool,
    expiring_underlyings: set[str],
    today: date,
) -> str:
    """The likely reason the broker and the fills differ: a guess from the figures, for a person."""
    if fills_quantity == broker_quantity:
        return ReconcileCause.COST
    if instrument.sec_type in OPTION_TYPES and instrument.expiry is not None and instrument.expiry <= today:
        return ReconcileCause.EXPIRY
    if instrument.sec_type not in OPTION_TYPES and instrument.symbol in expiring_underlyings:
        return ReconcileCause.EXPIRY  # stock delivered by an exercise or assignment
    if broker_moved:
        return ReconcileCause.FILL_PENDING  # the broker changed since the last sync, the fills did not
    same_side = fills_quantity == 0 or broker_quantity == 0 or (fills_quantity > 0) == (broker_quantity > 0)
    if same_side and abs(broker_quantity) > abs(fills_quantity):
        return ReconcileCause.TRANSFER_IN
    if same_side:
        return ReconcileCause.TRANSFER_OUT
    return ReconcileCause.FILL_PENDING


def positions_reconcile_with_fills(
    changes: PositionChanges,
    *,
    account: Account,
    rows: Iterable[tuple[BrokerPosition, Instrument]],
    open_positions: Iterable[Position],
    mark_missing_as_closed: bool,
    today: date,
    quantities_before: dict[int, Decimal] | None = None,
) -> None:
    """Compare the broker's rows (each with its instrument) with the account's open positions as the
    fills built them; positions the fills do not explain follow the sync's own lifecycle.

    ``quantities_before``: position id -> its quantity before a build in this same sync changed it
    (the broker's last figure, that the new one is compared with to tell whether the broker moved)."""
    rows = list(rows)
    open_positions = list(open_positions)
    expiring = {
        instrument.symbol
        for instrument in [i for _, i in rows] + [p.instrument for p in open_positions]
        if instrument.sec_type in OPTION_TYPES and instrument.expiry is not None and instrument.expiry <= today
    }
    context = {"expiring_underlyings": expiring, "today": today, "quantities_before": quantities_before or {}}
    unreported = {p.instrument_id: p for p in open_positions}
    seen: set[int] = set()
    for row, instrument in rows:
        if instrument.pk in seen:
            changes.warnings.append(f"{instrument}: reported twice by the broker; second row ignored")
            continue
        seen.add(instrument.pk)
        position = unreported.pop(instrument.pk, None)
        if position is not None and position.from_fills:
            _compare(
                changes,
                position,
                quantity=quantize_quantity(row.quantity),
                average=quantize_price(row.average_price),
                market_price=row.market_price,
                **context,
            )
            continue
        # The fills hold nothing here: the broker's position, kept the way a sync without fills keeps it.
        new_before = len(changes.new_positions)
        _apply_row(changes, account=account, instrument=instrument, row=row, position=position, fills_since=False)
        for held in [position, *changes.new_positions[new_before:]]:
            if held is not None:
                _note_broker_only(changes, held, known_before=position is not None, **context)
    for position in unreported.values():
        if position.from_fills:
            _compare(
                changes, position, quantity=quantize_quantity(Decimal(0)), average=None, market_price=None, **context
            )
        else:
            _apply_missing(changes, position, mark_missing_as_closed=mark_missing_as_closed)
            if position.broker_quantity is not None:
                _resolve(changes, position)  # the broker holds nothing either now


def _compare(
    changes: PositionChanges,
    position: Position,
    *,
    quantity: Decimal,
    average: Decimal | None,
    market_price: Decimal | None,
    expiring_underlyings: set[str],
    today: date,
    quantities_before: dict[int, Decimal],
) -> None:
    """A holding built from the fills against the broker's figures for its instrument."""
    before_marks = _price_fields(position)
    reported = quantity != 0 or market_price is not None
    if reported:
        _mark(position, market_price)
        position.last_synced_at = changes.now
    fills_quantity, fills_average = position.quantity, position.average_cost
    if figures_agree(
        fills_quantity=fills_quantity, fills_average=fills_average, broker_quantity=quantity, broker_average=average
    ):
        if position.broker_quantity is not None:
            _resolve(changes, position)
        else:
            changes.unchanged += 1
            if before_marks != _price_fields(position):
                changes.marked_positions[position.pk] = position
        return
    if (quantity, average) == (position.broker_quantity, position.broker_average_price):
        changes.unchanged += 1  # the difference already recorded, seen again
        if before_marks != _price_fields(position):
            changes.changed_positions[position.pk] = position
        return
    split = None
    if position.broker_quantity is None and quantity and fills_average and average:
        split = split_detect(
            quantity_before=fills_quantity, average_before=fills_average, quantity_after=quantity, average_after=average
        )
    if split is not None:
        _split(changes, position, split, price=market_price)
        if figures_agree(
            fills_quantity=position.quantity,
            fills_average=position.average_cost,
            broker_quantity=quantity,
            broker_average=average,
        ):
            changes.changed_positions[position.pk] = position
            return
        fills_quantity, fills_average = position.quantity, position.average_cost
    # What the broker said last: its figure of a difference already recorded, else what the
    # position held when the two last agreed (before a build in this sync moved it).
    previous = position.broker_quantity
    if previous is None:
        previous = quantities_before.get(position.pk, position.quantity)
    if position.broker_quantity is not None:
        _resolve(changes, position)  # a new difference replaces the old one
    cause = (
        ReconcileCause.CORPORATE_ACTION
        if split is not None
        else reconcile_cause(
            instrument=position.instrument,
            fills_quantity=fills_quantity,
            broker_quantity=quantity,
            broker_moved=quantity != previous,
            expiring_underlyings=expiring_underlyings,
            today=today,
        )
    )
    _reconcile_event(
        changes,
        position,
        fills=(fills_quantity, fills_average),
        broker=(quantity, average),
        price=market_price,
        cause=cause,
    )


def _note_broker_only(
    changes: PositionChanges,
    position: Position,
    *,
    known_before: bool,
    expiring_underlyings: set[str],
    today: date,
    quantities_before: dict[int, Decimal],
) -> None:
    """A position the fills do not explain (the fills hold nothing in its instrument): its difference
    with the fills is recorded once, and resolved once the broker holds nothing either."""
    broker = (position.quantity, position.average_price) if position.status == PositionStatus.OPEN else None
    if broker is None or broker[0] == 0:
        if position.broker_quantity is not None:
            _resolve(changes, position)
        return
    if broker == (position.broker_quantity, position.broker_average_price):
        return
    previous = position.broker_quantity
    if previous is not None:
        _resolve(changes, position)
    cause = reconcile_cause(
        instrument=position.instrument,
        fills_quantity=Decimal(0),
        broker_quantity=broker[0],
        broker_moved=known_before and previous is not None and previous != broker[0],
        expiring_underlyings=expiring_underlyings,
        today=today,
    )
    _reconcile_event(
        changes, position, fills=(Decimal(0), None), broker=broker, price=position.current_price, cause=cause
    )


def _reconcile_event(
    changes: PositionChanges,
    position: Position,
    *,
    fills: tuple[Decimal, Decimal | None],
    broker: tuple[Decimal, Decimal | None],
    price: Decimal | None,
    cause: str,
) -> None:
    label = ReconcileCause(cause).label
    changes.event(
        position,
        PositionEventKind.RECONCILE,
        quantity_before=quantize_quantity(fills[0]),
        quantity_after=quantize_quantity(broker[0]),
        average_price_before=fills[1],
        average_price_after=broker[1],
        price=quantize_price(price) if price is not None else None,
        cause=cause,
        note=f"the fills hold {_text(fills[0])}, the broker {_text(broker[0])}: likely {label}",
    )
    position.broker_quantity, position.broker_average_price = quantize_quantity(broker[0]), broker[1]
    if position.pk is not None:  # a position opened in this sync is inserted whole
        changes.changed_positions[position.pk] = position
    changes.warnings.append(
        f"{position.instrument}: the broker holds {_text(broker[0])}, the fills {_text(fills[0])} (likely {label})"
    )


def _resolve(changes: PositionChanges, position: Position) -> None:
    changes.resolved.append(position)
    position.broker_quantity = position.broker_average_price = None
    if position.pk is not None:
        changes.changed_positions[position.pk] = position


def _split(changes: PositionChanges, position: Position, split, *, price: Decimal | None) -> None:
    ratio = split.ratio
    label = f"{ratio.normalize():f}:1" if ratio >= 1 else f"1:{(1 / ratio).normalize():f}"
    after = quantize_quantity(split.quantity_split)
    changes.event(
        position,
        PositionEventKind.SPLIT,
        quantity_before=position.quantity,
        quantity_after=after,
        average_price_before=position.average_price,
        average_price_after=quantize_price(position.average_price / ratio),
        price=quantize_price(price) if price is not None else None,
        split_ratio=quantize_ratio(ratio),
        note=f"split {label}, total cost preserved, nothing realized (the fills are read in the new units from here)",
    )
    position.quantity = after
    position.average_price = quantize_price(position.average_price / ratio)
    position.average_cost = quantize_price(position.average_cost / ratio)
    _mark(position, price)
    changes.updated += 1
    changes.changed_positions[position.pk] = position


def _text(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"
