"""Options at the end of their life: which open option positions the broker no longer lists after their
expiry session's close, and how each ended. Pure: no database.

The broker's API reports neither an expiry nor an exercise or assignment as a fill: the option simply
leaves the positions, and an exercise or assignment moves the underlying with no fill of ours
(domain rules, "Option expiry, exercise and assignment"). So, after the expiry session's close (NYSE
calendar, early closes included), an open option position the broker no longer lists ended:

- EXERCISED (a long) or ASSIGNED (a short) for as many contracts as the underlying's unexplained change
  covers: the broker's quantity of the underlying minus what is held here, in the direction the option
  delivers (a call bought by its holder, a put sold), ``contracts x multiplier`` shares at the strike;
- EXPIRED for the rest (worthless: a long loses its cost, a short keeps its premium).

Several options of one underlying ending together share its change greedily, in the order of their
expiry and strike: a change both could explain (a put and a call both in the money, whose deliveries
cancel out) is read as no delivery; a Flex statement then corrects it. An option still listed after its
expiry is being processed by the broker (the weekend after a Friday expiry) and is left alone: the
positions page says it awaits settlement. One the broker dropped before its expiry is not settled here
(still MISSING, or a RECONCILE difference where the fills hold it).

Equity options only (``OPT``, deliverable: shares of the underlying). Future options and futures end in
a future or in cash at a settlement price this does not know: they are left to a Flex statement or staff.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from core.brokers.contracts import OptionRight, SecType
from core.fields import quantize_money, quantize_quantity
from portfolio.models import Position, PositionEventKind, PositionStatus
from portfolio.rules.lifecycle import PositionChanges
from trading.calendars import exchange_zone, is_nyse_session, session_close

_ZERO = Decimal(0)


@dataclass(frozen=True)
class OptionEnd:
    """How one open option position ended."""

    position: Position
    kind: str  # PositionEventKind: EXPIRED, or EXERCISED / ASSIGNED when any contract delivered
    delivered_contracts: Decimal  # contracts exercised or assigned (>= 0); the rest expired
    delivered_shares: Decimal  # signed: bought (+) or sold (-) at the strike
    at: datetime  # the expiry session's close

    @property
    def expired_contracts(self) -> Decimal:
        return abs(self.position.quantity) - self.delivered_contracts


def expiry_close(expiry: date) -> datetime:
    """When an option expiring on ``expiry`` has ended: its session's close (13:00 New York on an early
    close), or the end of that day when it is not a session (an expiry date the calendar moved)."""
    if is_nyse_session(expiry):
        return session_close(expiry)
    return datetime.combine(expiry + timedelta(days=1), time(0), tzinfo=exchange_zone()).astimezone(UTC)


def is_settleable_option(position: Position) -> bool:
    instrument = position.instrument
    return (
        instrument.sec_type == SecType.OPTION
        and instrument.expiry is not None
        and instrument.strike is not None
        and instrument.right in (OptionRight.CALL, OptionRight.PUT)
    )


def is_past_expiry(position: Position, *, now: datetime) -> bool:
    """An open option (or future) whose expiry session has closed."""
    expiry = position.instrument.expiry
    if expiry is None or position.status != PositionStatus.OPEN:
        return False
    if position.instrument.sec_type not in (SecType.OPTION, SecType.FUTURE_OPTION, SecType.FUTURE):
        return False
    # Before the calendar is asked: a LEAPS expiring beyond the calendar's range is simply not yet due.
    return expiry <= now.astimezone(exchange_zone()).date() and now >= expiry_close(expiry)


def underlying_key(instrument) -> tuple[str, str]:
    """How an option names its underlying stock, and how a stock is found by it."""
    return (instrument.symbol.upper(), instrument.currency.upper())


def option_ends_find(
    *,
    open_positions: Iterable[Position],
    reported: set[int],
    stock_broker: dict[tuple[str, str], Decimal],
    stock_held: dict[tuple[str, str], Decimal],
    now: datetime,
) -> list[OptionEnd]:
    """The open option positions that ended: past their expiry session's close and not among the
    instruments the broker ``reported``. ``stock_broker``: the broker's quantity of each underlying
    (absent: none); ``stock_held``: what is held here (the open stock positions)."""
    ended = [
        p
        for p in open_positions
        if p.instrument_id not in reported and is_settleable_option(p) and is_past_expiry(p, now=now) and p.quantity
    ]
    by_underlying: dict[tuple[str, str], list[Position]] = defaultdict(list)
    for position in ended:
        by_underlying[underlying_key(position.instrument)].append(position)
    ends = []
    for key, positions in by_underlying.items():
        unexplained = stock_broker.get(key, _ZERO) - stock_held.get(key, _ZERO)
        for position in sorted(positions, key=lambda p: (p.instrument.expiry, p.instrument.strike, p.pk or 0)):
            instrument = position.instrument
            # Shares one contract delivers to this account: a call buys them, a put sells them; a short
            # is on the other side of its holder's exercise.
            direction = (1 if instrument.right == OptionRight.CALL else -1) * (1 if position.quantity > 0 else -1)
            per_contract = instrument.multiplier * direction
            contracts = _ZERO
            if unexplained and (unexplained > 0) == (per_contract > 0):
                contracts = min(
                    abs(position.quantity), (unexplained / per_contract).to_integral_value(rounding="ROUND_FLOOR")
                )
            shares = quantize_quantity(contracts * per_contract)
            unexplained -= shares
            if contracts:
                kind = PositionEventKind.EXERCISED if position.quantity > 0 else PositionEventKind.ASSIGNED
            else:
                kind = PositionEventKind.EXPIRED
            ends.append(
                OptionEnd(
                    position=position,
                    kind=kind,
                    delivered_contracts=quantize_quantity(contracts),
                    delivered_shares=shares,
                    at=expiry_close(instrument.expiry),
                )
            )
    return ends


def option_end_apply(changes: PositionChanges, end: OptionEnd) -> None:
    """Close a position the broker sync holds (no fills behind it) as it ended: what expired closes at 0
    (a long loses its cost, a short keeps its premium: known, not estimated); what was exercised or
    assigned realizes nothing, its premium being part of the delivered stock's cost (the broker's average
    price of the stock, which the sync takes as it does every change without fills)."""
    position = end.position
    multiplier = position.instrument.multiplier or Decimal(1)
    sign = 1 if position.quantity > 0 else -1
    realized = quantize_money((_ZERO - position.average_price) * sign * end.expired_contracts * multiplier)
    note = _note(end)
    changes.event(
        position,
        end.kind,
        quantity_before=position.quantity,
        quantity_after=quantize_quantity(_ZERO),
        average_price_before=position.average_price,
        average_price_after=None,
        price=Decimal(0) if end.kind == PositionEventKind.EXPIRED else position.instrument.strike,
        realized_pnl=realized,
        realized_pnl_estimated=False,
        note=note,
    )
    position.status = PositionStatus.CLOSED
    position.closed_at = end.at if end.at <= changes.now else changes.now
    position.realized_pnl = quantize_money(position.realized_pnl + realized)
    position.realized_pnl_estimated = False
    position.quantity = quantize_quantity(_ZERO)
    position.current_price = Decimal(0) if end.kind == PositionEventKind.EXPIRED else position.current_price
    position.market_value = position.unrealized_pnl = quantize_money(_ZERO)
    position.unrealized_pnl_pct = None
    position.missing_since = None
    position.last_synced_at = changes.now
    changes.changed_positions[position.pk] = position
    changes.closed += 1


def _note(end: OptionEnd) -> str:
    expiry = end.position.instrument.expiry
    if not end.delivered_contracts:
        return f"expired worthless on {expiry}: gone from the broker after the close"
    verb = "exercised" if end.kind == PositionEventKind.EXERCISED else "assigned"
    shares = f"{abs(end.delivered_shares).normalize():f}"
    side = "bought" if end.delivered_shares > 0 else "sold"
    note = (
        f"{_text(end.delivered_contracts)} {verb} on {expiry}: {shares} {end.position.instrument.symbol} {side} at "
        f"{end.position.instrument.strike.normalize():f}"
    )
    if end.expired_contracts:
        note += f"; {_text(end.expired_contracts)} expired worthless"
    return note


def _text(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"
