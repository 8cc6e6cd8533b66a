"""Staff corrections of fills and cash flows: kept with who, when and why, and the ledger recomputed."""

from datetime import datetime

from django.db import transaction

from trading.calendars import settlement_date, trade_date_of
from trading.models import CashFlow, Execution, ExecutionSource
from trading.services.executions import BROKER_FIELDS
from trading.services.ledger import ledger_recompute

CORRECTABLE = (*BROKER_FIELDS, "settlement_date")


def execution_correct(
    *,
    execution: Execution,
    changed: list[str],
    reason: str,
    previous_executed_at: datetime | None,
    previous_instrument_id: int | None = None,
) -> Execution:
    """Save a staff edit of ``execution`` (already carrying the new values).

    The edited broker fields join ``staff_fields`` so a later ingest keeps them and records any
    disagreement; history records the user (request middleware) and ``reason``.
    """
    if not reason.strip():
        raise ValueError("a correction needs a reason")
    with transaction.atomic():
        corrected = [name for name in changed if name in CORRECTABLE]
        execution.staff_fields = sorted(set(execution.staff_fields or []) | set(corrected))
        for name in corrected:
            (execution.broker_disagreement or {}).pop(name, None)
        execution.trade_date = trade_date_of(execution.executed_at)
        if "settlement_date" not in corrected:
            execution.settlement_date = settlement_date(
                trade_date=execution.trade_date,
                sec_type=execution.instrument.sec_type,
                broker_date=execution.broker_settlement_date,
            )
        execution._change_reason = reason
        execution.save()
        since = min(filter(None, [execution.executed_at, previous_executed_at]))
        ledger_recompute(account=execution.account, affected={execution.instrument_id: since})
        if previous_instrument_id and previous_instrument_id != execution.instrument_id:
            ledger_recompute(account=execution.account, affected={previous_instrument_id: since})
    return execution


def execution_enter(*, execution: Execution, reason: str) -> Execution:
    """A fill missing at the broker, entered by staff."""
    if not reason.strip():
        raise ValueError("a fill entered by hand needs a reason")
    with transaction.atomic():
        execution.source = ExecutionSource.STAFF
        execution.staff_fields = list(CORRECTABLE)
        execution.trade_date = trade_date_of(execution.executed_at)
        if execution.settlement_date is None:
            execution.settlement_date = settlement_date(
                trade_date=execution.trade_date,
                sec_type=execution.instrument.sec_type,
                broker_date=execution.broker_settlement_date,
            )
        execution._change_reason = reason
        execution.save()
        ledger_recompute(account=execution.account, affected={execution.instrument_id: execution.executed_at})
    return execution


def execution_delete(*, execution: Execution, reason: str) -> None:
    """Remove a fill entered by mistake; the ledger is recomputed without it."""
    with transaction.atomic():
        account, instrument_id, since = execution.account, execution.instrument_id, execution.executed_at
        execution._change_reason = reason
        execution.delete()
        ledger_recompute(account=account, affected={instrument_id: since})


def cash_flow_save(*, cash_flow: CashFlow) -> CashFlow:
    """Save a deposit or withdrawal entered or edited by staff, and the account's cash ledger with it:
    both or neither (a failed recompute leaves the cash flow as it was)."""
    with transaction.atomic():
        cash_flow.save()
        ledger_recompute(account=cash_flow.account, affected={}, cash_changed=True)
    return cash_flow
