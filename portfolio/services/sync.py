"""Position sync: the broker's positions persisted with their lifecycle, one transaction per account.

A run asks the broker for the account's positions and values (an unreachable broker or a failed
request SKIPS it and changes nothing). Then, in one transaction: the account's open positions are
loaded FOR UPDATE and the account's mode is read from the ledger (one query either way):

- "sync" mode, an account the ledger has no fills for: the broker drives its positions, and the
  lifecycle rules (``portfolio/rules/lifecycle.py``) decide what changed;
- "fills" mode: its positions are built from its fills (``portfolio/services/holdings.py``, first
  catching up on fills that changed since the last build), and the broker's rows are compared with
  them (``portfolio/rules/reconcile.py``): prices, and a RECONCILE event where the two differ.

The changes are written in bulk and the run is finished in that transaction too. The number of
queries per account does not depend on its number of positions.
"""

import logging
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.brokers import Broker, BrokerError, BrokerUnavailable
from core.brokers.base import AccountValues, BrokerAccount, BrokerPosition
from core.bulk import bulk_insert, bulk_insert_objects, bulk_update_values
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
from portfolio.models import (
    ACCOUNT_VALUE_FIELDS,
    CASH_FIELDS,
    AccountStatus,
    Position,
    PositionEvent,
    PositionEventKind,
    PositionStatus,
)
from portfolio.rules.lifecycle import PositionChanges, positions_reconcile
from portfolio.rules.reconcile import positions_reconcile_with_fills
from portfolio.services.account_values import account_cash_fields, account_value_fields, broker_rates_store
from portfolio.services.expiries import option_ends_settle
from portfolio.services.holdings import positions_build_pending
from portfolio.services.sync_instruments import SyncInstruments
from trading.calendars import trade_date_of
from trading.models import Account
from trading.selectors import ledger_instruments_of
from trading.services.accounts import AccountSelection, accounts_select

logger = logging.getLogger(__name__)

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
    "average_cost",
    "broker_quantity",
    "broker_average_price",
]
MARK_FIELDS = ("current_price", "market_value", "unrealized_pnl", "unrealized_pnl_pct", "last_synced_at")
STATUS_FIELDS = [*ACCOUNT_VALUE_FIELDS, *CASH_FIELDS, "day_trades_remaining", "read_at"]
# A sync writes thousands of events at once: plain rows, not model instances (see _store).
EVENT_DEFAULTS = {
    "average_price_before": None,
    "average_price_after": None,
    "price": None,
    "realized_pnl": None,
    "realized_pnl_estimated": False,
    "split_ratio": None,
    "note": "",
    "cause": "",
}
EVENT_FIELDS = (
    "position_id",
    "kind",
    "quantity_before",
    "quantity_after",
    *EVENT_DEFAULTS,
)


def positions_sync_accounts(
    *,
    broker: Broker,
    reason: SyncReason = SyncReason.SCHEDULE,
    account_ids: Iterable[str] | None = None,
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
                    instruments=instruments,
                ),
                kind=SyncKind.POSITIONS,
                account=account,
                reason=reason,
            )
        )
    return runs


def positions_sync(
    *,
    account: Account,
    broker: Broker,
    reason: SyncReason = SyncReason.SCHEDULE,
    broker_account: BrokerAccount | None = None,
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
        instruments=instruments,
    )


def positions_sync_disabled(*, account: Account, reason: SyncReason) -> SyncRun:
    """The SKIPPED run of a position sync that POSITION_SYNC_ENABLED turned off."""
    return sync_run_skip(
        kind=SyncKind.POSITIONS,
        account=account,
        reason=reason,
        skip_reason=SkipReason.DISABLED,
        message="position sync is disabled (POSITION_SYNC_ENABLED)",
    )


def positions_sync_execute(
    *,
    run: SyncRun,
    broker: Broker,
    broker_account: BrokerAccount | None = None,
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

    changes = PositionChanges(now=timezone.now(), warnings=list(fetched.warnings))
    instruments = instruments or SyncInstruments()
    if broker_account is None:
        changes.warnings.append(f"account {account.account_id}: no account values from the broker; status not updated")
    try:
        with transaction.atomic():
            _write(account, run, fetched.items, broker_account.values if broker_account else None, changes, instruments)
            if broker_account is not None:
                # The broker's rates of now are today's daily rates: with the sync, or not at all.
                broker_rates_store(values=broker_account.values, source=broker.name, now=changes.now)
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


# --- the transaction ---------------------------------------------------------------------------
def _write(
    account: Account,
    run: SyncRun,
    rows: Iterable[BrokerPosition],
    values: AccountValues | None,
    changes: PositionChanges,
    instruments: SyncInstruments,
) -> None:
    """Write one account's sync: its open positions locked, the rules' decisions stored."""
    rows = list(rows)
    # order_by(): the model's default ordering joins accounts and instruments, for nothing here.
    loaded = list(Position.objects.select_for_update().filter(account=account, status=PositionStatus.OPEN).order_by())
    instruments.attach(loaded)
    row_instruments = instruments.for_rows(rows)
    # The account's mode: the ledger's instruments with fills, and whether their fills changed since
    # the positions were last built from them.
    ledger = ledger_instruments_of(account)
    if not ledger:
        # Options past their expiry that the broker dropped ended: closed with what ended them.
        option_ends_settle(
            changes,
            account=account,
            rows=zip(rows, row_instruments, strict=True),
            open_positions=loaded,
            now=changes.now,
        )
        loaded = [p for p in loaded if p.status == PositionStatus.OPEN]
        # "sync" mode: no fills, so nothing to hold the broker's changes against (no trades between
        # two syncs: a split-like change is a split).
        positions_reconcile(
            changes,
            account=account,
            rows=zip(rows, row_instruments, strict=True),
            open_positions=loaded,
            with_fills=set(),
            mark_missing_as_closed=settings.POSITION_SYNC_MARK_MISSING_AS_CLOSED,
        )
    else:
        quantities_before = {}
        if any(since is not None for since in ledger.values()):
            # Fills changed since the positions were built (an ingest the after-fills task has not
            # caught up on yet): build first, then compare with what the fills now say.
            built = positions_build_pending(account=account, open_positions=loaded)
            loaded, quantities_before = built.open_positions, built.quantities_before
            instruments.attach(loaded)
        # Options past their expiry that the broker dropped ended: settled as fills (then built again,
        # so the comparison below sees them closed and the stock delivered), or closed in place.
        settled = option_ends_settle(
            changes,
            account=account,
            rows=zip(rows, row_instruments, strict=True),
            open_positions=loaded,
            now=changes.now,
        )
        loaded = [p for p in loaded if p.status == PositionStatus.OPEN]
        if settled:
            built = positions_build_pending(account=account, open_positions=loaded)
            loaded = built.open_positions
            quantities_before = {**built.quantities_before, **quantities_before}
            instruments.attach(loaded)
        positions_reconcile_with_fills(
            changes,
            account=account,
            rows=zip(rows, row_instruments, strict=True),
            open_positions=loaded,
            mark_missing_as_closed=settings.POSITION_SYNC_MARK_MISSING_AS_CLOSED,
            today=trade_date_of(changes.now),
            quantities_before=quantities_before,
        )
    _store(account, run, values, changes)


def _store(account: Account, run: SyncRun, values: AccountValues | None, changes: PositionChanges) -> None:
    """The bulk writes of what the rules decided: a few statements whatever the number of positions."""
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
    if changes.resolved:
        # Before the new events: a difference that replaces another resolves the old one only.
        PositionEvent.objects.filter(
            position_id__in=[p.pk for p in changes.resolved],
            kind=PositionEventKind.RECONCILE,
            resolved_at__isnull=True,
        ).update(resolved_at=changes.now)
    if changes.events:
        bulk_insert(
            PositionEvent,
            (*EVENT_FIELDS, "at", "sync_run_id"),
            [(*row, changes.now, run.pk) for row in _event_rows(changes)],
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


def _event_rows(changes: PositionChanges) -> list[tuple]:
    """The events as rows of EVENT_FIELDS (positions created in this sync have their keys by now)."""
    rows = []
    for position, kind, values in changes.events:
        row = {**EVENT_DEFAULTS, **values, "position_id": position.pk, "kind": str(kind)}
        rows.append(tuple(row[name] for name in EVENT_FIELDS))
    return rows


def _refresh_marks(positions: list[Position], *, now: datetime) -> None:
    """Write the moved prices of positions whose quantity and cost did not change: the common case of
    every sync while markets are open, so one UPDATE ... FROM (VALUES ...) of just those columns."""
    bulk_update_values(
        Position, MARK_FIELDS, [(p.pk, *(getattr(p, name) for name in MARK_FIELDS[:-1]), now) for p in positions]
    )


def _status_row(account: Account, values: AccountValues, now: datetime) -> AccountStatus:
    return AccountStatus(
        account=account,
        read_at=now,
        day_trades_remaining=values.day_trades_remaining,
        **account_value_fields(values),
        **account_cash_fields(values),
    )
