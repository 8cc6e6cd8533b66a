"""Position sync: the broker's positions persisted with their lifecycle, one transaction per account.

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

Realized P&L is first an estimate from the last market price, flagged ``realized_pnl_estimated``;
at the end of the same transaction ``positions_realize_from_fills`` replaces it with the figure of
the fills when they are known (``portfolio/services/realize.py``).
The number of queries per account does not depend on its number of positions.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.brokers import Broker, BrokerError, BrokerUnavailable
from core.brokers.base import AccountValues, BrokerAccount, BrokerPosition
from core.bulk import bulk_insert, bulk_insert_objects, bulk_update_values
from core.fields import quantize_money, quantize_price, quantize_quantity, quantize_ratio
from core.journal import (
    broker_skip,
    sync_run_fail,
    sync_run_finish,
    sync_run_isolated,
    sync_run_skip,
    sync_run_skip_broker,
    sync_run_start,
)
from core.models import SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus
from marketdata.models import Instrument
from marketdata.services import instruments_resolve
from portfolio.models import (
    ACCOUNT_VALUE_FIELDS,
    AccountStatus,
    Position,
    PositionEvent,
    PositionEventKind,
    PositionStatus,
)
from portfolio.services.account_values import account_value_fields
from portfolio.services.realize import positions_realize_from_fills
from portfolio.services.splits import split_detect
from trading.models import Account
from trading.selectors import instruments_with_fills_since
from trading.services.accounts import AccountSelection, accounts_select

logger = logging.getLogger(__name__)

# Given an account and the time of the previous sync, the ids of instruments that had fills since
# (default: the executions ledger's answer).
InstrumentsWithFills = Callable[[Account, datetime | None], set[int]]

POSITION_FIELDS_UPDATED = [
    "status",
    "quantity",
    "average_price",
    "current_price",
    "market_value",
    "unrealized_pnl",
    "unrealized_pnl_pct",
    "realized_pnl",
    "realized_pnl_estimated",
    "closed_at",
    "last_synced_at",
    "missing_since",
]
STATUS_FIELDS = [*ACCOUNT_VALUE_FIELDS, "day_trades_remaining", "read_at"]


@dataclass
class _Changes:
    """What one account's sync will write, gathered before any write."""

    now: datetime
    run: SyncRun
    new_positions: list[Position] = field(default_factory=list)
    changed_positions: dict[int, Position] = field(default_factory=dict)  # quantity, status or cost changed
    marked_positions: dict[int, Position] = field(default_factory=dict)  # only the prices moved
    events: list[tuple[Position, str, dict]] = field(default_factory=list)  # (position, kind, values)
    warnings: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    closed: int = 0
    unchanged: int = 0

    def event(self, position: Position, kind: str, **values) -> None:
        self.events.append((position, kind, values))

    def event_rows(self) -> list[tuple]:
        """The events as rows of EVENT_FIELDS (positions created in this sync have their keys by now)."""
        rows = []
        for position, kind, values in self.events:
            row = {**EVENT_DEFAULTS, **values, "position_id": position.pk, "kind": str(kind)}
            rows.append(tuple(row[name] for name in EVENT_FIELDS))
        return rows


# A sync writes thousands of events at once: plain rows, not model instances (see _write).
EVENT_DEFAULTS = {
    "average_price_before": None,
    "average_price_after": None,
    "price": None,
    "realized_pnl": None,
    "realized_pnl_estimated": False,
    "split_ratio": None,
    "note": "",
}
EVENT_FIELDS = (
    "position_id",
    "kind",
    "quantity_before",
    "quantity_after",
    *EVENT_DEFAULTS,
)


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
    position.unrealized_pnl_pct = quantize_ratio(position.unrealized_pnl / basis) if basis else None


def _price_fields(position: Position) -> tuple:
    return (position.current_price, position.market_value, position.unrealized_pnl, position.unrealized_pnl_pct)


# --- the rules ---------------------------------------------------------------------------------
def _open(changes: _Changes, *, account: Account, instrument: Instrument, row: BrokerPosition) -> None:
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


def _close(changes: _Changes, position: Position, *, price: Decimal | None, note: str = "") -> None:
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


def _change_quantity(changes: _Changes, position: Position, row: BrokerPosition, *, fills_since: bool) -> None:
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
    changes: _Changes,
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


def _apply_missing(changes: _Changes, position: Position) -> None:
    label = f"{position.instrument} ({position.quantity.normalize():f})"
    if settings.POSITION_SYNC_MARK_MISSING_AS_CLOSED:
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


def _status_row(account: Account, values: AccountValues, now: datetime) -> AccountStatus:
    return AccountStatus(
        account=account,
        read_at=now,
        day_trades_remaining=values.day_trades_remaining,
        **account_value_fields(values),
    )


# --- the transaction ---------------------------------------------------------------------------
class SyncInstruments:
    """The instruments a sync call has met, shared by its accounts (they mostly hold the same ones):
    each is read, or created, once per call instead of once per account."""

    def __init__(self) -> None:
        self.by_id: dict[int, Instrument] = {}
        self.by_key: dict[str, Instrument] = {}
        self.by_con_id: dict[int, Instrument] = {}

    def forget(self) -> None:
        """After a rolled-back account: instruments it created are gone, so meet everything afresh."""
        self.by_id.clear()
        self.by_key.clear()
        self.by_con_id.clear()

    def _add(self, instrument: Instrument) -> None:
        self.by_id[instrument.pk] = instrument
        self.by_key[instrument.key] = instrument
        if instrument.con_id is not None:
            self.by_con_id[instrument.con_id] = instrument

    def attach(self, positions: Iterable[Position]) -> None:
        """Give loaded positions their instrument (one query for the ones not met yet)."""
        positions = list(positions)
        missing = {p.instrument_id for p in positions} - self.by_id.keys()
        if missing:
            for instrument in Instrument.objects.filter(pk__in=missing):
                self._add(instrument)
        cache = Position.instrument.field
        for position in positions:
            cache.set_cached_value(position, self.by_id[position.instrument_id])

    def for_rows(self, rows: list[BrokerPosition]) -> list[Instrument]:
        """The instrument of each row, in order: met ones at hand (IBKR's con_id first), new ones resolved."""
        found: list[Instrument | str] = []  # an instrument, or the key of a spec still to resolve
        unknown = {}
        for row in rows:
            spec = row.instrument
            known = self.by_con_id.get(spec.con_id) if spec.con_id is not None else None
            if known is None:
                key = spec.key
                known = self.by_key.get(key) if spec.con_id is None else None
                if known is None:
                    unknown[key] = spec
                    known = key
            found.append(known)
        if unknown:
            resolved = instruments_resolve(specs=unknown.values())
            for instrument in resolved.values():
                self._add(instrument)
            found = [resolved[item] if isinstance(item, str) else item for item in found]
        return found


def _write(
    account: Account,
    rows: Iterable[BrokerPosition],
    values: AccountValues | None,
    changes: _Changes,
    instruments_with_fills: InstrumentsWithFills,
    instruments: SyncInstruments,
) -> tuple[set[int], list[Position]]:
    """Write one account's sync; return the instruments whose positions the fills may now settle,
    and the account's open positions as written."""
    rows = list(rows)
    # order_by(): the model's default ordering joins accounts and instruments, for nothing here.
    loaded = list(Position.objects.select_for_update().filter(account=account, status=PositionStatus.OPEN).order_by())
    instruments.attach(loaded)
    open_positions = {p.instrument_id: p for p in loaded}
    row_instruments = instruments.for_rows(rows)
    last_sync = min((p.last_synced_at for p in loaded if p.last_synced_at), default=None)
    # With nothing open, every instrument with fills: a position closed before its fills were known
    # still gets its real realized P&L.
    with_fills = instruments_with_fills(account, last_sync)

    seen: set[int] = set()
    for row, instrument in zip(rows, row_instruments, strict=True):
        if instrument.pk in seen:
            changes.warnings.append(f"{instrument}: reported twice by the broker; second row ignored")
            continue
        seen.add(instrument.pk)
        _apply_row(
            changes,
            account=account,
            instrument=instrument,
            row=row,
            position=open_positions.pop(instrument.pk, None),
            fills_since=instrument.pk in with_fills,
        )
    for position in open_positions.values():
        _apply_missing(changes, position)

    # Closes go first: a sign flip's new OPEN row needs the old one closed (one OPEN per instrument).
    # Rows go through core.bulk: one UPDATE from arrays, one COPY, no per-value preparation.
    if changes.changed_positions:
        bulk_update_values(
            Position,
            POSITION_FIELDS_UPDATED,
            [(p.pk, *(getattr(p, f) for f in POSITION_FIELDS_UPDATED)) for p in changes.changed_positions.values()],
        )
    if changes.marked_positions:
        _refresh_marks(list(changes.marked_positions.values()), now=changes.now)
    if changes.new_positions:
        bulk_insert_objects(changes.new_positions)
    if changes.events:
        bulk_insert(
            PositionEvent,
            (*EVENT_FIELDS, "at", "sync_run_id"),
            [(*row, changes.now, changes.run.pk) for row in changes.event_rows()],
        )
    # Unchanged positions were seen too: one statement refreshes their sync time (none needed when
    # every one of them was rewritten above, as when prices move during the session).
    if changes.unchanged > len(changes.marked_positions):
        Position.objects.filter(account=account, status=PositionStatus.OPEN, missing_since__isnull=True).exclude(
            last_synced_at=changes.now
        ).update(last_synced_at=changes.now)
    if values is not None:
        AccountStatus.objects.bulk_create(
            [_status_row(account, values, changes.now)],
            update_conflicts=True,
            unique_fields=["account"],
            update_fields=STATUS_FIELDS,
        )
    now_open = [p for p in loaded if p.status == PositionStatus.OPEN] + changes.new_positions
    if last_sync is None:
        # Nothing was open: with_fills holds every instrument with fills, the only ones the fills
        # can settle (an account's first sync creates every position; most have no fills yet).
        return with_fills, now_open
    touched = {p.instrument_id for p in changes.changed_positions.values()}
    touched |= {p.instrument_id for p in changes.new_positions}
    return touched | with_fills, now_open


MARK_FIELDS = ("current_price", "market_value", "unrealized_pnl", "unrealized_pnl_pct", "last_synced_at")


def _refresh_marks(positions: list[Position], *, now: datetime) -> None:
    """Write the moved prices of positions whose quantity and cost did not change: the common case of
    every sync while markets are open, so one UPDATE ... FROM (VALUES ...) of just those columns."""
    bulk_update_values(
        Position, MARK_FIELDS, [(p.pk, *(getattr(p, name) for name in MARK_FIELDS[:-1]), now) for p in positions]
    )


def positions_sync_execute(
    *,
    run: SyncRun,
    broker: Broker,
    broker_account: BrokerAccount | None = None,
    instruments_with_fills: InstrumentsWithFills | None = None,
    instruments: SyncInstruments | None = None,
) -> SyncRun:
    """Carry out a RUNNING position-sync run and finish it (SUCCESS, SKIPPED or FAILED)."""
    account = run.account
    try:
        fetched = broker.positions(account.account_id)
        if broker_account is None:
            broker_account = next((a for a in broker.accounts().items if a.account_id == account.account_id), None)
    except (BrokerUnavailable, BrokerError) as exc:
        return sync_run_skip_broker(run=run, exc=exc)

    changes = _Changes(now=timezone.now(), run=run, warnings=list(fetched.warnings))
    instruments = instruments or SyncInstruments()
    if broker_account is None:
        changes.warnings.append(f"account {account.account_id}: no account values from the broker; status not updated")
    try:
        with transaction.atomic():
            to_realize, now_open = _write(
                account,
                fetched.items,
                broker_account.values if broker_account else None,
                changes,
                instruments_with_fills or instruments_with_fills_since,
                instruments,
            )
            # The fills, when known, replace the estimates and link the executions: for what changed
            # or got fills since the last sync (nothing, and no query, in a quiet steady state).
            positions_realize_from_fills(account=account, instrument_ids=to_realize, open_positions=now_open)
            # Finishing inside the transaction: the run says SUCCESS exactly when the writes landed.
            sync_run_finish(
                run=run,
                status=SyncStatus.SUCCESS,
                warnings=changes.warnings,
                created=changes.created,
                updated=changes.updated,
                closed=changes.closed,
                unchanged=changes.unchanged,
                message=f"{len(fetched.items)} broker rows; {len(changes.events)} events",
            )
    except Exception as exc:
        logger.exception("position sync of %s failed", account.account_id)
        instruments.forget()
        return sync_run_fail(run=run, exc=exc, warnings=changes.warnings)
    for warning in changes.warnings:
        logger.warning("position sync %s: %s", account.account_id, warning)
    if changes.events and run.reason != SyncReason.AFTER_TRADE:
        # Something changed at the broker: fetch the fills now so realized P&L is real soon.
        transaction.on_commit(lambda: _enqueue_ingest(account.account_id))
    return run


def _enqueue_ingest(account_id: str) -> None:
    from trading.tasks import executions_ingest_task  # tasks import services: import late

    executions_ingest_task.delay(account_ids=[account_id], reason=SyncReason.AFTER_TRADE)


def positions_sync(
    *,
    account: Account,
    broker: Broker,
    reason: SyncReason = SyncReason.SCHEDULE,
    broker_account: BrokerAccount | None = None,
    instruments_with_fills: InstrumentsWithFills | None = None,
    instruments: SyncInstruments | None = None,
) -> SyncRun:
    """Sync one account's positions; returns its SyncRun (SKIPPED when another sync is running)."""
    if not settings.POSITION_SYNC_ENABLED:
        return positions_sync_disabled(account=account, reason=reason)
    run, started = sync_run_start(kind=SyncKind.POSITIONS, account=account, reason=reason)
    if not started:
        return run
    return positions_sync_execute(
        run=run,
        broker=broker,
        broker_account=broker_account,
        instruments_with_fills=instruments_with_fills,
        instruments=instruments,
    )


def positions_sync_accounts(
    *,
    broker: Broker,
    reason: SyncReason = SyncReason.SCHEDULE,
    account_ids: Iterable[str] | None = None,
    instruments_with_fills: InstrumentsWithFills | None = None,
    selection: AccountSelection | None = None,
) -> list[SyncRun]:
    """Sync every active account (or the ones named), asking the broker for its accounts once.

    That one answer both creates the accounts the broker lists and the database lacks (see
    ``accounts_select``; a caller that reports them passes its ``selection``, which then stands
    for ``account_ids``) and gives every account its values.
    """
    if selection is None:
        selection = accounts_select(broker=broker, account_ids=account_ids, ask_broker=True)
    by_id, unavailable = selection.listed, selection.broker_error
    if by_id is None and unavailable is None:  # a selection that did not ask the broker
        try:
            by_id = {a.account_id: a for a in broker.accounts().items}
        except (BrokerUnavailable, BrokerError) as exc:
            unavailable = exc
    by_id = by_id or {}
    runs = []
    instruments = SyncInstruments()
    for account in selection.accounts:
        if unavailable is not None:
            skip_reason, message = broker_skip(unavailable)
            runs.append(
                sync_run_skip(
                    kind=SyncKind.POSITIONS, account=account, reason=reason, skip_reason=skip_reason, message=message
                )
            )
            continue
        # One account's failure (even the database going away) fails its run; the others carry on.
        runs.append(
            sync_run_isolated(
                lambda account=account: positions_sync(
                    account=account,
                    broker=broker,
                    reason=reason,
                    broker_account=by_id.get(account.account_id),
                    instruments_with_fills=instruments_with_fills,
                    instruments=instruments,
                ),
                kind=SyncKind.POSITIONS,
                account=account,
                reason=reason,
            )
        )
    return runs


def positions_sync_disabled(*, account: Account, reason: SyncReason) -> SyncRun:
    """The SKIPPED run of a position sync that POSITION_SYNC_ENABLED turned off."""
    return sync_run_skip(
        kind=SyncKind.POSITIONS,
        account=account,
        reason=reason,
        skip_reason=SkipReason.DISABLED,
        message="position sync is disabled (POSITION_SYNC_ENABLED)",
    )
