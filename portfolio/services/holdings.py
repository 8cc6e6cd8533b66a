"""Positions built from the fills: one position per flat-to-flat holding, its events at the fills' times.

For an account the ledger has fills for, its holdings are what the fills say
(``portfolio/rules/holdings.py``): each holding is one position (the same span as its round trip,
found by the same opening fill), opened and closed at the fills' times, with an OPENED, INCREASED,
DECREASED or CLOSED event per fill, and its average price and realized P&L from the lots.

The ledger marks the instruments whose fills changed (``trading.services.ledger_changes``); a build
catches up on those marks from the earliest changed fill on, as the ledger's own recompute does, and
writes only what differs, so building twice writes nothing the second time. Existing positions keep
their primary keys and their events where the holding is the same: they are matched by opening
fill, then the open position to the open holding, then by time (a position the sync opened before
the fills were known becomes the holding it was). Events a broker sync recorded stay as they are.

A position that no holding explains is left to the broker sync (a transfer in); a RECONCILE
difference the new fills explain is resolved here (``resolved_at``).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.bulk import bulk_insert, bulk_update_values, reserve_ids
from core.fields import quantize_money, quantize_ratio
from portfolio.models import Position, PositionEvent, PositionEventKind, PositionStatus
from portfolio.rules.holdings import HoldingSpan, SplitAt, holding_quantity, holdings_build
from portfolio.rules.reconcile import figures_agree
from trading.models import Account
from trading.selectors import fills_of, ledger_fill_of
from trading.services.ledger_changes import ledger_changes_acknowledge, ledger_changes_lock

# Fill times come from the broker's clock, sync times from ours: a position the sync opened or
# closed is matched to a holding give or take this much.
CLOCK_SKEW = timedelta(minutes=2)

# The columns of a position the build decides.
BUILT_FIELDS = [
    "status",
    "quantity",
    "average_price",
    "average_cost",
    "current_price",
    "market_value",
    "unrealized_pnl",
    "unrealized_pnl_pct",
    "realized_pnl",
    "realized_pnl_estimated",
    "opened_at",
    "closed_at",
    "missing_since",
    "opening_execution_id",
    "closing_execution_id",
    "broker_quantity",
    "broker_average_price",
]
# A fill's event as the build compares and writes it (with position_id and execution_id).
EVENT_VALUES = (
    "kind",
    "quantity_before",
    "quantity_after",
    "average_price_before",
    "average_price_after",
    "price",
    "realized_pnl",
    "at",
    "note",
)


@dataclass(frozen=True)
class SpanChange:
    """One line of what a build changed (or, dry, would change)."""

    action: str  # "created", "changed", "closed" (changed, and closed by it), "removed"
    instrument_id: int
    position_id: int | None
    opened_at: datetime
    closed_at: datetime | None
    quantity: Decimal
    realized_pnl: Decimal
    fields: tuple[str, ...] = ()  # what changed, for "changed" and "closed"


@dataclass
class BuildResult:
    instruments: int = 0
    created: int = 0
    changed: int = 0
    closed: int = 0
    removed: int = 0
    events_written: int = 0
    events_removed: int = 0
    reconciles_resolved: int = 0
    changes: list[SpanChange] = field(default_factory=list)
    # The account's open positions after the build, and the quantity each changed one had before it
    # (what the broker last reported, for the sync that asked for the build and compares next).
    open_positions: list[Position] = field(default_factory=list)
    quantities_before: dict[int, Decimal] = field(default_factory=dict)

    @property
    def wrote_anything(self) -> bool:
        return bool(
            self.created
            or self.changed
            or self.removed
            or self.events_written
            or self.events_removed
            or self.reconciles_resolved
        )


def positions_build_from_fills(
    *, account: Account, instrument_ids: set[int] | None = None, dry_run: bool = False
) -> BuildResult:
    """Rebuild ``account``'s positions from all its fills (of ``instrument_ids``; every instrument it
    has fills in when None), from the first fill on. ``dry_run`` works it all out and writes nothing."""
    with transaction.atomic():
        open_positions = _lock_open(account)
        marks = ledger_changes_lock(account=account, instrument_ids=instrument_ids)
        result = _build(account, dict.fromkeys(marks), open_positions)
        if dry_run:
            transaction.set_rollback(True)
    return result


def positions_build_pending(*, account: Account, open_positions: list[Position] | None = None) -> BuildResult:
    """Catch up on the fills that changed since the last build (the ledger's marks), from the earliest
    changed fill of each instrument on. A caller that holds the account's open positions locked (the
    position sync, in its transaction) passes them. Nothing marked: one query, nothing written."""
    with transaction.atomic():
        if open_positions is None:
            open_positions = _lock_open(account)
        marks = ledger_changes_lock(account=account)
        pending = {instrument_id: since for instrument_id, since in marks.items() if since is not None}
        if not pending:
            return BuildResult(open_positions=list(open_positions))
        return _build(account, pending, open_positions)


def _lock_open(account: Account) -> list[Position]:
    # The position sync locks the same rows first, in its transaction: a build and a sync of one
    # account take turns. order_by(): the default ordering joins other tables, for nothing here.
    return list(Position.objects.select_for_update().filter(account=account, status=PositionStatus.OPEN).order_by("pk"))


# --- the build -----------------------------------------------------------------------------------
def _build(account: Account, since: dict[int, datetime | None], open_positions: list[Position]) -> BuildResult:
    """Build the instruments of ``since`` (instrument id -> from when; None: from the start)."""
    result = BuildResult(instruments=len(since))
    now = timezone.now()
    ids = sorted(since)
    fills = defaultdict(list)
    for row in fills_of(account=account, instrument_ids=ids):
        fills[row["instrument_id"]].append(ledger_fill_of(row))
    splits = defaultdict(list)
    for instrument_id, at, ratio in PositionEvent.objects.filter(
        position__account=account, position__instrument_id__in=ids, kind=PositionEventKind.SPLIT
    ).values_list("position__instrument_id", "at", "split_ratio"):
        if ratio:
            splits[instrument_id].append(SplitAt(at=at, ratio=ratio))
    method = settings.LOT_MATCHING
    spans = {i: holdings_build(fills[i], method=method, splits=splits[i]) for i in ids}

    # The positions these holdings may be: open ones, and those closed since the earliest change.
    others_open = [p for p in open_positions if p.instrument_id not in since]
    candidates: dict[int, list[Position]] = defaultdict(list)
    for position in open_positions:
        if position.instrument_id in since:
            candidates[position.instrument_id].append(position)
    starts = [s for s in since.values() if s is not None]
    closed = Position.objects.filter(account=account, instrument_id__in=ids, status=PositionStatus.CLOSED)
    if len(starts) == len(since):
        closed = closed.filter(closed_at__gte=min(starts) - CLOCK_SKEW)
    for position in closed.order_by("pk"):
        start = since[position.instrument_id]
        if start is None or position.closed_at >= start - CLOCK_SKEW:
            candidates[position.instrument_id].append(position)
    stored_events = _fill_events_of([p.pk for ps in candidates.values() for p in ps])

    plan = _Plan(account=account, now=now)
    for instrument_id in ids:
        start = since[instrument_id]
        touched = [s for s in spans[instrument_id] if s.is_open or start is None or s.closed_at >= start]
        # Holdings closed before the first change are as they were, and so are their positions.
        settled = {s.opening_fill_id for s in spans[instrument_id]} - {s.opening_fill_id for s in touched}
        candidates[instrument_id] = [p for p in candidates[instrument_id] if p.opening_execution_id not in settled]
        multiplier = fills[instrument_id][0].multiplier if fills[instrument_id] else Decimal(1)
        plan.instrument(
            instrument_id,
            touched,
            candidates[instrument_id],
            stored_events,
            multiplier=multiplier,
            held=holding_quantity(spans[instrument_id]),
        )
    plan.write(result)
    ledger_changes_acknowledge(account=account, instrument_ids=ids)
    result.open_positions = others_open + plan.open_positions()
    return result


def _fill_events_of(position_ids: list[int]) -> dict[int, dict[tuple, tuple]]:
    """position id -> {(execution id, kind): (event id, *EVENT_VALUES)} of the fill events stored."""
    events: dict[int, dict[tuple, tuple]] = defaultdict(dict)
    if not position_ids:
        return events
    for row in (
        PositionEvent.objects.filter(position_id__in_array=position_ids, execution__isnull=False)
        .order_by()
        .values_list("position_id", "execution_id", "id", *EVENT_VALUES)
    ):
        position_id, execution_id, pk, kind, *values = row
        events[position_id][(execution_id, kind)] = (pk, kind, *values)
    return events


class _NewPosition:
    """A holding with no position yet: the row to insert (BUILT_FIELDS values), its key once reserved."""

    __slots__ = ("instrument_id", "pk", "span", "values")

    def __init__(self, instrument_id: int, span: HoldingSpan, values: tuple) -> None:
        self.instrument_id, self.span, self.values = instrument_id, span, values
        self.pk: int | None = None

    @property
    def status(self) -> str:
        return self.values[0]

    def instance(self, account: Account) -> Position:
        """The inserted row as a model instance (the sync compares the open ones next)."""
        position = Position(pk=self.pk, account=account, instrument_id=self.instrument_id, last_synced_at=None)
        for name, value in zip(BUILT_FIELDS, self.values, strict=True):
            setattr(position, name, value)
        position._state.adding = False
        return position


class _Plan:
    """What the build will write for the instruments it rebuilds, gathered before any write."""

    def __init__(self, *, account: Account, now: datetime) -> None:
        self.account = account
        self.now = now
        self.new: list[_NewPosition] = []
        self.changed: list[tuple[Position, bool]] = []  # (position, opens: it was closed and is open now)
        self.kept: list[Position] = []
        self.removed: list[tuple[Position, Position | _NewPosition | None]] = []  # (it, where its sync events go)
        self.events_to_delete: list[int] = []
        self.events_to_write: list[tuple[Position, HoldingSpan]] = []
        self.resolve: list[Position] = []
        self.lines: list[tuple[str, Position, HoldingSpan | None, tuple[str, ...]]] = []
        self.quantities_before: dict[int, Decimal] = {}

    def open_positions(self) -> list[Position]:
        """The open positions of the built instruments after the build (new ones once inserted)."""
        new = [n.instance(self.account) for n in self.new if n.status == PositionStatus.OPEN]
        return new + [p for p in [*(p for p, _ in self.changed), *self.kept] if p.status == PositionStatus.OPEN]

    def instrument(
        self,
        instrument_id: int,
        spans: list[HoldingSpan],
        candidates: list[Position],
        stored_events: dict[int, dict[tuple, tuple]],
        *,
        multiplier: Decimal,
        held: Decimal,
    ) -> None:
        pairs = _match(spans, candidates)
        homes: list[tuple[HoldingSpan, Position]] = []  # the holdings that have a position already
        targets: list[tuple[HoldingSpan, Position | _NewPosition]] = []  # and those that get one
        for span in spans:
            position = pairs[span.opening_fill_id]
            if position is None:
                # Most holdings are new on a first build (tens of thousands): rows, not model instances.
                new = _NewPosition(instrument_id, span, _span_values(span, multiplier, None))
                self.new.append(new)
                self.events_to_write.append((new, span))
                self.lines.append(("created", new, span, ()))
                targets.append((span, new))
                continue
            homes.append((span, position))
            targets.append((span, position))
            before = [getattr(position, name) for name in BUILT_FIELDS]
            self.quantities_before[position.pk] = position.quantity
            was_open = position.status == PositionStatus.OPEN
            _apply_span(position, span, multiplier)
            differs = tuple(n for n, b in zip(BUILT_FIELDS, before, strict=True) if getattr(position, n) != b)
            if differs:
                self.changed.append((position, not was_open and span.is_open))
                self.lines.append(("closed" if was_open and not span.is_open else "changed", position, span, differs))
            else:
                self.kept.append(position)
            stored = stored_events.get(position.pk, {})
            if _events_differ(span, stored):
                self.events_to_delete += [row[0] for row in stored.values()]
                self.events_to_write.append((position, span))
        used = {id(p) for _, p in homes}
        for position in candidates:
            if id(position) in used:
                continue
            if not position.from_fills:
                self.kept.append(position)  # the sync's: a transfer in, or history from before the fills
                continue
            # Built from fills that no longer make this holding (a late fill moved its opening): its
            # fill events go with it; what the sync recorded on it moves to the nearest holding.
            self.removed.append((position, _nearest(targets, position.opened_at)))
            self.events_to_delete += [row[0] for row in stored_events.get(position.pk, {}).values()]
            self.lines.append(("removed", position, None, ()))
        # A difference with the broker that the fills now explain is resolved; one carried by a
        # position the fills closed is compared afresh by the next sync.
        for _, position in homes:
            if position.broker_quantity is None:
                continue
            agrees = figures_agree(
                fills_quantity=held,
                fills_average=position.average_cost,
                broker_quantity=position.broker_quantity,
                broker_average=position.broker_average_price,
            )
            if agrees or position.status == PositionStatus.CLOSED:
                self.resolve.append(position)

    def write(self, result: BuildResult) -> None:
        changed_ids = {p.pk for p, _ in self.changed}
        for position in self.resolve:
            position.broker_quantity = position.broker_average_price = None
            if position.pk is not None and position.pk not in changed_ids:
                self.changed.append((position, False))
        if self.events_to_delete:
            PositionEvent.objects.filter(pk__in=self.events_to_delete).delete()
        # One OPEN row per instrument: rows that close (or stay closed) first, then the ones that open.
        _update([p for p, opens in self.changed if not opens])
        _update([p for p, opens in self.changed if opens])
        if self.new:
            for new, pk in zip(self.new, reserve_ids(Position, len(self.new)), strict=True):
                new.pk = pk
            bulk_insert(
                Position,
                ("id", "account_id", "instrument_id", *BUILT_FIELDS),
                [(n.pk, self.account.pk, n.instrument_id, *n.values) for n in self.new],
            )
        for position, home in self.removed:
            if home is not None:  # what the sync recorded (a SPLIT, a RECONCILE) stays on the record
                PositionEvent.objects.filter(position_id=position.pk).update(position_id=home.pk)
        if self.removed:
            Position.objects.filter(pk__in=[p.pk for p, _ in self.removed]).delete()
        rows = [row for position, span in self.events_to_write for row in _event_rows(position, span)]
        bulk_insert(
            PositionEvent,
            ("position_id", "execution_id", *EVENT_VALUES, "realized_pnl_estimated", "cause"),
            [(*row, False, "") for row in rows],
        )
        if self.resolve:
            result.reconciles_resolved = PositionEvent.objects.filter(
                position_id__in=[p.pk for p in self.resolve],
                kind=PositionEventKind.RECONCILE,
                resolved_at__isnull=True,
            ).update(resolved_at=self.now)
        result.created = len(self.new)
        result.changed = sum(1 for action, *_ in self.lines if action == "changed")
        result.closed = sum(1 for action, *_ in self.lines if action == "closed")
        result.removed = len(self.removed)
        result.quantities_before = self.quantities_before
        result.events_written = len(rows)
        result.events_removed = len(self.events_to_delete)
        result.changes = [
            SpanChange(
                action=action,
                instrument_id=position.instrument_id,
                position_id=position.pk,
                opened_at=span.opened_at if span else position.opened_at,
                closed_at=span.closed_at if span else position.closed_at,
                quantity=span.quantity if span else position.quantity,
                realized_pnl=span.realized_pnl if span else position.realized_pnl,
                fields=fields,
            )
            for action, position, span, fields in self.lines
        ]


def _update(positions: list[Position]) -> None:
    if positions:
        bulk_update_values(
            Position, BUILT_FIELDS, [(p.pk, *(getattr(p, name) for name in BUILT_FIELDS)) for p in positions]
        )


# --- matching holdings and positions -------------------------------------------------------------
def _match(spans: list[HoldingSpan], candidates: list[Position]) -> dict[int, Position | None]:
    """opening fill id -> the existing position that is this holding (None: a new one)."""
    pairs: dict[int, Position | None] = dict.fromkeys((s.opening_fill_id for s in spans), None)
    used: set[int] = set()
    open_position = next((p for p in candidates if p.status == PositionStatus.OPEN), None)
    by_opening = {p.opening_execution_id: p for p in candidates if p.opening_execution_id}

    def take(span: HoldingSpan, position: Position) -> None:
        pairs[span.opening_fill_id] = position
        used.add(id(position))

    # 1. The same opening fill: the same holding.
    for span in spans:
        position = by_opening.get(span.opening_fill_id)
        if position is None or id(position) in used:
            continue
        if span.is_open and open_position is not None and position is not open_position:
            continue  # the open holding keeps the open row (the one the trader has been looking at)
        if not span.is_open and position is open_position and spans[-1].is_open:
            continue
        take(span, position)
    # 2. The open holding is the open position, whoever opened it.
    last = spans[-1] if spans else None
    free = open_position is not None and id(open_position) not in used
    if last is not None and last.is_open and pairs[last.opening_fill_id] is None and free:
        take(last, open_position)
    # 3. By time: a position the sync saw while the holding lasted.
    # A position built from the fills whose opening fill still opens a holding is that holding's only.
    openings = set(pairs)
    rest = sorted(
        (p for p in candidates if id(p) not in used and p.opening_execution_id not in openings),
        key=lambda p: (p.opened_at, p.pk),
    )
    for span in spans:
        if pairs[span.opening_fill_id] is not None:
            continue
        for position in rest:
            if id(position) in used or not _overlaps(position, span):
                continue
            take(span, position)
            break
    return pairs


def _overlaps(position: Position, span: HoldingSpan) -> bool:
    """Whether ``position`` was first seen while the holding lasted (give or take CLOCK_SKEW): a
    position the sync opened after the opening fill and before the closing one, or one built from
    fills whose opening moved within the holding."""
    if position.opened_at < span.opened_at - CLOCK_SKEW:
        return False
    if span.closed_at is not None and position.opened_at > span.closed_at + CLOCK_SKEW:
        return False
    if position.status == PositionStatus.OPEN and not position.from_fills and not span.is_open:
        # An open position the sync opened is this closed holding only when the fills went through
        # the quantity it holds (the sync saw the holding before its closing fill was known).
        return any(e.quantity_after == position.quantity for e in span.events)
    return True


def _nearest(homes: list[tuple[HoldingSpan, Position | _NewPosition]], at: datetime) -> Position | _NewPosition | None:
    """The position of the holding that opened nearest to ``at``."""
    nearest = min(homes, key=lambda home: abs((home[0].opened_at - at).total_seconds()), default=None)
    return nearest[1] if nearest else None


# --- one holding on its position -----------------------------------------------------------------
def _apply_span(position: Position, span: HoldingSpan, multiplier: Decimal) -> None:
    for name, value in zip(BUILT_FIELDS, _span_values(span, multiplier, position), strict=True):
        setattr(position, name, value)


def _span_values(span: HoldingSpan, multiplier: Decimal, position: Position | None) -> tuple:
    """A holding as the BUILT_FIELDS of its position (``position``: the one it was, if any, for the
    market price the sync brought and the broker's figures it keeps)."""
    zero = quantize_money(Decimal(0))
    if span.is_open:
        current_price = position.current_price if position is not None else None
        market_value, unrealized, unrealized_pct = _marks(span, current_price, multiplier)
        status, closed_at = PositionStatus.OPEN, None
    else:
        current_price, market_value, unrealized, unrealized_pct = span.exit_price, zero, zero, None
        status, closed_at = PositionStatus.CLOSED, span.closed_at
    return (
        str(status),
        span.quantity,
        span.average_price,
        span.average_cost,
        current_price,
        market_value,
        unrealized,
        unrealized_pct,
        span.realized_pnl,
        False,  # realized_pnl_estimated
        span.opened_at,
        closed_at,
        None,  # missing_since: the fills say what is held
        span.opening_fill_id,
        span.closing_fill_id,
        position.broker_quantity if position is not None else None,
        position.broker_average_price if position is not None else None,
    )


def _marks(span: HoldingSpan, price: Decimal | None, multiplier: Decimal) -> tuple:
    """Market value, unrealized P&L and its fraction of an open holding at the last market price the
    sync brought (none yet for a new one)."""
    if price is None:
        return None, None, None
    market_value = quantize_money(span.quantity * price * multiplier)
    unrealized = quantize_money((price - span.average_price) * span.quantity * multiplier)
    basis = abs(span.quantity * span.average_price * multiplier)
    return market_value, unrealized, quantize_ratio(unrealized / basis) if basis else None


def _event_rows(position: Position, span: HoldingSpan) -> list[tuple]:
    return [
        (
            position.pk,
            e.fill_id,
            e.kind,
            e.quantity_before,
            e.quantity_after,
            e.average_price_before,
            e.average_price_after,
            e.price,
            e.realized_pnl,
            e.at,
            e.note,
        )
        for e in span.events
    ]


def _events_differ(span: HoldingSpan, stored: dict[tuple, tuple]) -> bool:
    if len(stored) != len(span.events):
        return True
    for e in span.events:
        row = stored.get((e.fill_id, e.kind))
        wanted = (
            e.kind,
            e.quantity_before,
            e.quantity_after,
            e.average_price_before,
            e.average_price_after,
            e.price,
            e.realized_pnl,
            e.at,
            e.note,
        )
        if row is None or row[1:] != wanted:
            return True
    return False
