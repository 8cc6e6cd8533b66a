"""Replace the position sync's estimates with the figures of the fills, once the fills are known.

A position's life runs from the fill that opened it (from flat) to the fill that took it back to
flat: for a closed position that is exactly one round trip, for an open one the current segment of
open lots. Its realized P&L is the sum of the lot matches in that life, and it links the opening and
closing executions. A position that vanished at the broker is closed when the fills show it went
flat, whatever ``POSITION_SYNC_MARK_MISSING_AS_CLOSED`` says.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.bulk import bulk_update_values
from core.fields import quantize_money
from portfolio.models import Position, PositionEvent, PositionEventKind, PositionStatus
from trading.models import Account, Lot, LotMatch, RoundTrip

# Fill times come from the broker's clock, sync times from ours.
CLOCK_SKEW = timedelta(minutes=2)
REALIZE_FIELDS = [
    "opened_at",
    "realized_pnl",
    "realized_pnl_estimated",
    "opening_execution_id",
    "closing_execution_id",
    "status",
    "closed_at",
    "quantity",
    "market_value",
    "unrealized_pnl",
    "unrealized_pnl_pct",
    "missing_since",
]


def positions_realize_from_fills(
    *, account: Account, instrument_ids: set[int] | None = None, open_positions: Iterable[Position] | None = None
) -> int:
    """Update open and estimated-closed positions of ``account`` from the ledger; returns how many changed.

    ``instrument_ids`` limits the work to those instruments (the position sync passes the ones that
    changed or got fills since its last run; an empty set costs no query). A caller that already
    holds the account's open positions locked and current (the position sync) passes them as
    ``open_positions`` and only the estimated closed ones are read. A fixed number of queries,
    whatever the number of positions.
    """
    if instrument_ids is not None and not instrument_ids:
        return 0
    with transaction.atomic():
        # order_by() throughout: the models' default orderings join other tables, for nothing here.
        candidates = Position.objects.select_for_update().order_by()
        if instrument_ids is not None:
            candidates = candidates.filter(instrument_id__in_array=instrument_ids)
        candidates = candidates.filter(account=account)
        if open_positions is None:
            positions = list(candidates.filter(Q(status=PositionStatus.OPEN) | Q(realized_pnl_estimated=True)))
        else:
            positions = [
                p
                for p in open_positions
                if p.status == PositionStatus.OPEN and (instrument_ids is None or p.instrument_id in instrument_ids)
            ]
            positions += candidates.filter(status=PositionStatus.CLOSED, realized_pnl_estimated=True)
        if not positions:
            return 0
        instrument_ids = {p.instrument_id for p in positions}
        segment_start = {}  # instrument -> (opening execution id, its time) of the open position per the fills
        open_quantity: dict[int, Decimal] = defaultdict(Decimal)
        for lot in (
            Lot.objects.filter(account=account, instrument_id__in_array=instrument_ids)
            .order_by()
            .values(
                "instrument_id", "quantity", "position_opening_execution_id", "position_opening_execution__executed_at"
            )
        ):
            open_quantity[lot["instrument_id"]] += lot["quantity"]
            if lot["position_opening_execution_id"]:
                segment_start[lot["instrument_id"]] = (
                    lot["position_opening_execution_id"],
                    lot["position_opening_execution__executed_at"],
                )
        earliest = min((start for _, start in segment_start.values()), default=None)
        segment_realized: dict[int, Decimal] = defaultdict(Decimal)
        if earliest is not None:
            for match in (
                LotMatch.objects.filter(
                    account=account,
                    instrument_id__in_array=list(segment_start),
                    opening_execution__executed_at__gte=earliest,
                )
                .order_by()
                .values("instrument_id", "realized_pnl", "opening_execution__executed_at")
            ):
                if match["opening_execution__executed_at"] >= segment_start[match["instrument_id"]][1]:
                    segment_realized[match["instrument_id"]] += match["realized_pnl"]
        oldest_open = min(p.opened_at for p in positions) - CLOCK_SKEW
        trips: dict[int, list[RoundTrip]] = defaultdict(list)
        for trip in RoundTrip.objects.filter(
            account=account, instrument_id__in_array=instrument_ids, closed_at__gte=oldest_open
        ).order_by("closed_at"):
            trips[trip.instrument_id].append(trip)

        changed: list[Position] = []
        events: list[PositionEvent] = []
        for position in positions:
            before = [getattr(position, f) for f in REALIZE_FIELDS]
            if position.status == PositionStatus.OPEN:
                _realize_open(position, segment_start, segment_realized, open_quantity, trips, events)
            else:
                _realize_closed(position, trips)
            if before != [getattr(position, f) for f in REALIZE_FIELDS]:
                changed.append(position)
        if changed:
            bulk_update_values(
                Position, REALIZE_FIELDS, [(p.pk, *(getattr(p, f) for f in REALIZE_FIELDS)) for p in changed]
            )
        if events:
            PositionEvent.objects.bulk_create(events)
        return len(changed)


def _trip_for(position: Position, trips: dict[int, list[RoundTrip]]) -> RoundTrip | None:
    """The round trip that is this position's life.

    Exact when the position already knows its opening fill. Otherwise by time: the trip was open
    when the sync first saw the position and closed by the time a sync saw it closed, give or take
    CLOCK_SKEW between the broker's fill times and our sync times.
    """
    own = trips.get(position.instrument_id, [])
    if position.opening_execution_id:
        return next((t for t in own if t.opening_execution_id == position.opening_execution_id), None)
    candidates = [
        t
        for t in own
        if t.opened_at <= position.opened_at + CLOCK_SKEW
        and t.closed_at >= position.opened_at - CLOCK_SKEW
        and (position.closed_at is None or t.closed_at <= position.closed_at + CLOCK_SKEW)
    ]
    return candidates[-1] if candidates else None


def _realize_closed(position: Position, trips: dict[int, list[RoundTrip]]) -> None:
    trip = _trip_for(position, trips)
    if trip is None:
        return  # fills not known (yet): the estimate stands, still flagged
    position.realized_pnl = trip.realized_pnl
    position.realized_pnl_estimated = False
    position.opening_execution_id = trip.opening_execution_id
    position.closing_execution_id = trip.closing_execution_id
    position.opened_at = min(position.opened_at, trip.opened_at)


def _realize_open(position, segment_start, segment_realized, open_quantity, trips, events) -> None:
    instrument_id = position.instrument_id
    if instrument_id in segment_start and open_quantity[instrument_id] == position.quantity:
        # The fills agree with the broker: the realized part of this position is known exactly.
        position.opening_execution_id, opening_fill_at = segment_start[instrument_id]
        # Opened when the opening fill says, not when a sync first saw the position.
        position.opened_at = min(position.opened_at, opening_fill_at)
        position.realized_pnl = quantize_money(segment_realized[instrument_id])
        position.realized_pnl_estimated = False
        return
    if position.missing_since is None or open_quantity[instrument_id] != 0:
        return
    trip = _trip_for(position, trips)
    if trip is None:
        return
    # Vanished at the broker, and the fills show it went flat: closed for real.
    events.append(
        PositionEvent(
            position=position,
            kind=PositionEventKind.CLOSED,
            quantity_before=position.quantity,
            quantity_after=Decimal(0),
            average_price_before=position.average_price,
            price=trip.average_exit,
            realized_pnl=trip.realized_pnl,
            realized_pnl_estimated=False,
            at=timezone.now(),  # when we learned it; the fill time is in the note and in closed_at
            note=f"closed: the fills show the position went flat at {trip.closed_at:%Y-%m-%d %H:%M:%S} UTC",
        )
    )
    position.status = PositionStatus.CLOSED
    position.closed_at = trip.closed_at
    position.quantity = Decimal(0)
    position.market_value = Decimal(0)
    position.unrealized_pnl = Decimal(0)
    position.unrealized_pnl_pct = None
    position.missing_since = None
    position.realized_pnl = trip.realized_pnl
    position.realized_pnl_estimated = False
    position.opening_execution_id = trip.opening_execution_id
    position.closing_execution_id = trip.closing_execution_id
    position.opened_at = min(position.opened_at, trip.opened_at)
