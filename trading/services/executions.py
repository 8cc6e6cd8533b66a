"""Fills from the broker (or a Flex report) stored once each, and cash flows beside them.

The natural key is ``(broker, exec_id)``: ingesting the same fills twice writes nothing; a
commission that arrives after its fill updates the row; a field that staff corrected is kept, and
what the broker says about it is recorded in ``broker_disagreement`` instead. Every write that
changes a fill recomputes the derived ledger (lots, realized P&L, round trips, settlement, day
trades, trade frequency, cash-account state) for the account and instruments it touched.
"""

import gc
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from operator import itemgetter

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.brokers import Broker, BrokerError, BrokerUnavailable
from core.brokers.base import BrokerCashFlow, BrokerExecution
from core.brokers.validation import shown
from core.bulk import bulk_insert, reserve_ids
from core.fields import quantize_money, quantize_price, quantize_quantity
from core.journal import sync_run_fail, sync_run_finish, sync_run_isolated, sync_run_skip_broker, sync_run_start
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from marketdata.models import Instrument
from marketdata.services import instruments_resolve
from trading.calendars import settlement_date, trade_date_of
from trading.models import Account, CashFlow, Execution, ExecutionSource
from trading.services.accounts import AccountSelection, accounts_select
from trading.services.alerts import ingest_alerts
from trading.services.ledger import ledger_recompute

logger = logging.getLogger(__name__)

# Fields the broker is authoritative for, unless staff corrected them.
BROKER_FIELDS = (
    "side",
    "quantity",
    "price",
    "commission",
    "commission_currency",
    "executed_at",
    "order_id",
    "perm_id",
    "exchange",
    "broker_settlement_date",
)
LOOKUP_CHUNK = 5000
# A broker's settlement date this long after the trade date is a mistake, not a settlement cycle (US
# T+1/T+2, extended settlement by agreement: days, not months); one before the trade date is impossible.
BROKER_SETTLEMENT_MAX_DAYS = 31
_broker_tuple = itemgetter(*BROKER_FIELDS)  # a values dict as a tuple in BROKER_FIELDS order


@dataclass
class UnwrittenFills:
    """New fills held back until the ledger has computed their realized P&L, then written once each.

    Writing them first and setting the P&L afterwards would rewrite most of the rows a second time
    (an UPDATE of a hundred thousand fills, every index included). Their primary keys are reserved,
    so what derives from them is built before they are stored; ``ledger_recompute`` writes them
    (``write``) before anything that refers to them, in the caller's transaction.
    """

    rows: list[tuple] = field(default_factory=list)  # ("id", *NEW_EXECUTION_FIELDS)
    fills: list[dict] = field(default_factory=list)  # the same fills as trading.selectors.fills_of reads them

    def write(self, realized_pnl: Mapping[int, Decimal]) -> None:
        bulk_insert(
            Execution,
            ("id", *NEW_EXECUTION_FIELDS, "realized_pnl"),
            [(*row, realized_pnl.get(row[0])) for row in self.rows],
        )


@dataclass
class IngestResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    cash_flows_created: int = 0
    disagreements: int = 0
    warnings: list[str] = field(default_factory=list)
    # instrument id -> earliest execution time that changed: where the ledger must be recomputed from
    affected: dict[int, datetime] = field(default_factory=dict)
    unwritten: UnwrittenFills | None = None  # with write_new=False: the new fills, for ledger_recompute

    def touch(self, instrument_id: int, at: datetime) -> None:
        current = self.affected.get(instrument_id)
        if current is None or at < current:
            self.affected[instrument_id] = at


def _broker_values(row: BrokerExecution, broker_settle: date | None) -> dict:
    return {
        "side": row.side,
        "quantity": quantize_quantity(row.quantity),
        "price": quantize_price(row.price),
        "commission": quantize_money(row.commission),
        "commission_currency": (row.commission_currency or "USD").upper(),
        "executed_at": row.executed_at,
        "order_id": row.order_id,
        "perm_id": row.perm_id,
        "exchange": row.exchange or "",
        "broker_settlement_date": broker_settle,
    }


def _parse_broker_settlement(row: BrokerExecution, warnings: list[str]) -> date | None:
    """The broker's settlement date when it is a possible one for the fill's trade date (domain rules:
    stored and preferred); otherwise None, with a warning, so that the calendar's date is used."""
    if not row.settlement_date:
        return None
    try:
        broker_date = date.fromisoformat(row.settlement_date)
    except ValueError:
        warnings.append(
            f"execution {row.exec_id}: settlement date {shown(row.settlement_date)!r} is not an ISO date; "
            "computed from the calendar instead"
        )
        return None
    trade_date = trade_date_of(row.executed_at)
    if broker_date < trade_date:
        problem = f"before the trade date {trade_date}"
    elif (broker_date - trade_date).days > BROKER_SETTLEMENT_MAX_DAYS:
        problem = f"more than {BROKER_SETTLEMENT_MAX_DAYS} days after the trade date {trade_date}"
    else:
        return broker_date
    warnings.append(
        f"execution {row.exec_id}: the broker's settlement date {broker_date} is {problem}; "
        "computed from the calendar instead"
    )
    return None


# Fields a source may simply not know (the API has no settlement date, Flex no API order id, a fill
# may come before its commission report): an empty incoming value is "no information", not a change.
OPTIONAL_FROM_SOURCE = frozenset({"commission", "broker_settlement_date", "order_id", "perm_id"})


def _differs(field_name: str, stored, incoming) -> bool:
    if incoming is None and field_name in OPTIONAL_FROM_SOURCE:
        return False
    return stored != incoming


EXISTING_FIELDS = ("pk", "exec_id", "account_id", *BROKER_FIELDS, "staff_fields")


def executions_upsert(
    *,
    account: Account,
    rows: Iterable[BrokerExecution],
    broker_name: str,
    source: str = ExecutionSource.API,
    write_new: bool = True,
    instruments: Mapping[str, Instrument] | None = None,
) -> IngestResult:
    """Insert new fills, update changed ones (commission reports, corrections from the broker).

    Must run inside a transaction (the caller's). Known fills are compared as plain values, so a
    re-ingest of a hundred thousand unchanged fills builds no model objects and writes nothing.
    With ``write_new=False`` the new fills are not written here but returned in ``result.unwritten``
    with reserved ids: the caller passes them to ``ledger_recompute(unwritten=...)`` in the same
    transaction, which stores them complete with their realized P&L. ``instruments`` (spec key ->
    Instrument) are ones the caller already holds (the paper engine's order): not looked up again.
    """
    result = IngestResult()
    by_exec_id: dict[str, BrokerExecution] = {}
    for row in rows:
        if row.account_id != account.account_id:
            result.warnings.append(
                f"execution {row.exec_id}: belongs to {row.account_id}, not {account.account_id}; skipped"
            )
            continue
        if row.exec_id in by_exec_id:
            result.warnings.append(f"execution {row.exec_id}: reported twice; second row ignored")
            continue
        by_exec_id[row.exec_id] = row
    if not by_exec_id:
        return result

    known = instruments or {}
    unknown = {row.instrument for row in by_exec_id.values() if row.instrument.key not in known}
    instruments = {**known, **instruments_resolve(specs=unknown)} if unknown else dict(known)
    existing = _existing(account, broker_name, by_exec_id)

    now = timezone.now()
    account_pk = account.pk
    settle_dates: dict[tuple, date] = {}
    new_rows: list[tuple] = []
    new_fills: list[dict] = []
    to_update: dict[str, dict] = {}
    for exec_id, row in by_exec_id.items():
        instrument = instruments[row.instrument.key]
        instrument_pk = instrument.pk
        broker_settle = _parse_broker_settlement(row, result.warnings)
        values = _broker_values(row, broker_settle)
        stored = existing.get(exec_id)
        if stored is None:
            trade_date = trade_date_of(row.executed_at)
            settle_key = (trade_date, instrument.sec_type, broker_settle)
            if settle_key not in settle_dates:  # a few hundred trade dates for a hundred thousand fills
                settle_dates[settle_key] = settlement_date(
                    trade_date=trade_date, sec_type=instrument.sec_type, broker_date=broker_settle
                )
            settle = settle_dates[settle_key]
            if not write_new:
                new_fills.append(
                    {
                        "exec_id": exec_id,
                        "instrument_id": instrument_pk,
                        "executed_at": values["executed_at"],
                        "trade_date": trade_date,
                        "side": values["side"],
                        "quantity": values["quantity"],
                        "price": values["price"],
                        "commission": values["commission"],
                        "instrument__multiplier": instrument.multiplier,
                        "perm_id": values["perm_id"],
                        "order_id": values["order_id"],
                        "settlement_date": settle,
                        "broker_settlement_date": broker_settle,
                        "realized_pnl": None,
                    }
                )
            new_rows.append(
                (
                    broker_name,
                    exec_id,
                    account_pk,
                    instrument_pk,
                    source,
                    trade_date,
                    settle,
                    row.raw,
                    [],
                    {},
                    now,
                    now,
                    *_broker_tuple(values),
                )
            )
            result.touch(instrument_pk, row.executed_at)
            continue
        if stored[2] != account_pk:
            result.warnings.append(
                f"execution {exec_id}: already stored for another account; skipped (check the account mapping)"
            )
            continue
        has_staff_fields = stored[-1]
        if not has_staff_fields and stored[3:-1] == _broker_tuple(values):
            result.unchanged += 1  # the common case of a re-ingest: identical, nothing to decide
            continue
        stored_values = dict(zip(BROKER_FIELDS, stored[3:-1], strict=True))
        if has_staff_fields or any(_differs(name, stored_values[name], values[name]) for name in BROKER_FIELDS):
            # Fills with staff corrections are settled field by field on the model (rare).
            to_update[exec_id] = values
        else:
            result.unchanged += 1

    if new_rows and write_new:
        bulk_insert(Execution, NEW_EXECUTION_FIELDS, new_rows)
    elif new_rows:
        ids = reserve_ids(Execution, len(new_rows))
        for pk, fill in zip(ids, new_fills, strict=True):
            fill["id"] = pk
        result.unwritten = UnwrittenFills(
            rows=[(pk, *row) for pk, row in zip(ids, new_rows, strict=True)], fills=new_fills
        )
    result.created = len(new_rows)
    if to_update:
        _update_changed(broker_name, to_update, instruments, by_exec_id, result)
    return result


def _existing(account: Account, broker_name: str, by_exec_id: dict[str, BrokerExecution]) -> dict[str, tuple]:
    """The stored values of the incoming fills that are already known, keyed by exec id.

    A big batch is read as the account's fills in its time span (one index range scan) instead of
    thousands of exec ids in IN lists; what is not found there is then looked up by id, so a fill
    stored under another account is still caught.
    """
    found: dict[str, tuple] = {}
    fields = (*EXISTING_FIELDS[:-1], "has_staff_fields")
    stored = Execution.objects.filter(broker=broker_name).annotate(
        has_staff_fields=~Q(staff_fields=[])  # decoding a JSON list per row would cost more than the row
    )
    if len(by_exec_id) > LOOKUP_CHUNK:
        times = [row.executed_at for row in by_exec_id.values()]
        for values in stored.filter(account=account, executed_at__range=(min(times), max(times))).values_list(*fields):
            if values[1] in by_exec_id:
                found[values[1]] = values
    missing = [exec_id for exec_id in by_exec_id if exec_id not in found]
    # PostgreSQL takes the ids as one array (a first ingest looks up every fill here); SQLite in chunks.
    chunk = max(len(missing), 1) if connection.vendor == "postgresql" else LOOKUP_CHUNK
    for start in range(0, len(missing), chunk):
        for values in stored.filter(exec_id__in_array=missing[start : start + chunk]).values_list(*fields):
            found[values[1]] = values
    return found


NEW_EXECUTION_FIELDS = (
    "broker",
    "exec_id",
    "account_id",
    "instrument_id",
    "source",
    "trade_date",
    "settlement_date",
    "raw",
    "staff_fields",
    "broker_disagreement",
    "created_at",
    "updated_at",
    *BROKER_FIELDS,
)


def _update_changed(broker_name: str, to_update: dict[str, dict], instruments, by_exec_id, result) -> None:
    changed: list[Execution] = []
    for stored in Execution.objects.select_related("instrument").filter(
        broker=broker_name, exec_id__in=list(to_update)
    ):
        incoming_at = by_exec_id[stored.exec_id].executed_at
        previous_at = stored.executed_at
        if _apply_broker_values(stored, to_update[stored.exec_id], result):
            stored.trade_date = trade_date_of(stored.executed_at)
            stored.settlement_date = settlement_date(
                trade_date=stored.trade_date,
                sec_type=stored.instrument.sec_type,
                broker_date=stored.broker_settlement_date,
            )
            changed.append(stored)
            result.touch(stored.instrument_id, min(previous_at, incoming_at))
        else:
            result.unchanged += 1
    if changed:
        Execution.objects.bulk_update(
            changed,
            [*BROKER_FIELDS, "trade_date", "settlement_date", "broker_disagreement", "updated_at"],
            batch_size=500,
        )
        result.updated = len(changed)


def _apply_broker_values(stored: Execution, values: dict, result: IngestResult) -> bool:
    """Copy what the broker now says onto a stored fill; staff corrections win and are flagged."""
    changed = False
    disagreement = dict(stored.broker_disagreement or {})
    for name, incoming in values.items():
        current = getattr(stored, name)
        if not _differs(name, current, incoming):
            if name in disagreement:
                disagreement.pop(name)  # the broker now agrees with the correction
                changed = True
            continue
        if name in (stored.staff_fields or []):
            said = str(incoming) if incoming is not None else None
            if disagreement.get(name) != said:
                disagreement[name] = said
                result.disagreements += 1
                result.warnings.append(
                    f"execution {stored.exec_id}: broker says {name}={said}, staff corrected it to {current}; "
                    "kept the correction"
                )
                changed = True
            continue
        setattr(stored, name, incoming)
        changed = True
    stored.broker_disagreement = disagreement
    return changed


def cash_flows_upsert(*, account: Account, rows: Iterable[BrokerCashFlow], source: str = ExecutionSource.API) -> int:
    """Store deposits and withdrawals once each, by the broker's id. Returns how many were new."""
    rows = [r for r in rows if r.account_id == account.account_id]
    if not rows:
        return 0
    known = set(
        CashFlow.objects.filter(account=account, flow_id__in=[r.flow_id for r in rows]).values_list(
            "flow_id", flat=True
        )
    )
    new = [
        CashFlow(
            account=account,
            flow_id=r.flow_id,
            kind=r.kind,
            amount=quantize_money(r.amount),
            currency=r.currency,
            at=r.at,
            source=source,
        )
        for r in rows
        if r.flow_id not in known
    ]
    CashFlow.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def executions_ingest(
    *,
    account: Account,
    broker: Broker,
    reason: SyncReason = SyncReason.SCHEDULE,
    since: datetime | None = None,
) -> SyncRun:
    """Ingest one account's fills and cash flows from the broker; one SyncRun (kind EXECUTIONS)."""
    run, started = sync_run_start(kind=SyncKind.EXECUTIONS, account=account, reason=reason)
    if not started:
        return run
    try:
        fetched = broker.executions(account.account_id, since=since)
        flows = broker.cash_flows(account.account_id)
    except (BrokerUnavailable, BrokerError) as exc:
        return sync_run_skip_broker(run=run, exc=exc)
    except Exception as exc:
        # An adapter's bug must not leave the run RUNNING (it would hold the account's single-flight
        # slot) nor stop the accounts after this one: the run fails, with the reason.
        logger.exception("execution ingest of %s: the broker's answer could not be read", account.account_id)
        return sync_run_fail(run=run, exc=exc)
    warnings = [*fetched.warnings, *flows.warnings]
    try:
        with _cyclic_gc_paused(), transaction.atomic():
            result = executions_upsert(
                account=account, rows=fetched.items, broker_name=_namespace(broker), write_new=False
            )
            new_flows = cash_flows_upsert(account=account, rows=flows.items)
            ledger_recompute(
                account=account, affected=result.affected, cash_changed=bool(new_flows), unwritten=result.unwritten
            )
            warnings += result.warnings
            sync_run_finish(
                run=run,
                status=SyncStatus.SUCCESS,
                warnings=warnings,
                created=result.created,
                updated=result.updated,
                unchanged=result.unchanged,
                message=f"{len(fetched.items)} fills from the broker; {new_flows} new cash flows; "
                f"{result.disagreements} disagreements with staff corrections",
            )
    except Exception as exc:
        logger.exception("execution ingest of %s failed", account.account_id)
        return sync_run_fail(run=run, exc=exc, warnings=warnings)
    for warning in warnings:
        logger.warning("execution ingest %s: %s", account.account_id, warning)
    ingest_alerts(account=account, run=run, disagreements=result.disagreements)
    return run


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an ingest builds its rows.

    A first ingest of 100,000 fills holds millions of small objects (rows, fills, matches) until it
    ends, and makes almost no reference cycles: the collector, triggered by the allocations, walks
    them over and over and frees nothing (~1.3 s of a 10 s ingest). Memory is still freed by reference
    counting; cycles made meanwhile wait for the next collection. Only the caller that found the
    collector on turns it back on, so overlapping ingests in one process leave it on in the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _namespace(broker: Broker) -> str:
    """exec ids are IBKR's: the simulated broker serves the same ids, so both share one namespace."""
    return "ibkr"


def executions_ingest_accounts(
    *,
    broker: Broker,
    reason: SyncReason = SyncReason.SCHEDULE,
    account_ids: Iterable[str] | None = None,
    selection: AccountSelection | None = None,
) -> list[SyncRun]:
    """Ingest every active account (or the ones named), each its own run.

    Accounts the broker lists and the database lacks are created first (``accounts_select``; a
    caller that reports them passes its ``selection``, which then stands for ``account_ids``).
    """
    if selection is None:
        selection = accounts_select(broker=broker, account_ids=account_ids)
    # One account's failure (even the database going away) fails its run; the others carry on.
    return [
        sync_run_isolated(
            lambda a=a: executions_ingest(account=a, broker=broker, reason=reason),
            kind=SyncKind.EXECUTIONS,
            account=a,
            reason=reason,
        )
        for a in selection.accounts
    ]
