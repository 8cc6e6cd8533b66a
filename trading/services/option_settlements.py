"""An option's end of life in the ledger: its settlement fills, whoever reports them.

An expiry, exercise or assignment is a set of fills (``core/brokers/expiries.py``): the option closed
at 0 (``exp``, ``asg`` or ``exr``) and, for an exercise or assignment, the underlying bought or sold at
the strike (``stk``). The position sync infers them (source INFERRED), a Flex statement reports them
(FLEX); both give them the same keys, so whichever comes second recognises the first:

- the sync records an option's settlement only when none of its fills is stored yet;
- a statement is the broker's own record and wins: its fills are upserted, an inferred fill of the same
  event the statement does not have is removed, and what the sync had inferred is kept in the option
  fill's ``broker_disagreement`` (as a staff correction keeps what the broker said) and named in a
  warning.

The premium moves into the delivered stock's cost basis instead of being realized (domain rules): the
option's exercise or assignment fill gets a ``basis_transfer`` equal to what it would have realized
(so it realizes 0) and the stock's fill the opposite amount, which the lots count like a commission
(a short put assigned at 50 for a 2.00 premium: shares with a basis of 48.00 each).
"""

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from django.conf import settings

from core.brokers.base import BrokerExecution
from core.brokers.expiries import OPTION_LEGS, SettlementLeg, settlement_leg_of
from core.fields import quantize_money, quantize_price, quantize_quantity
from trading.models import Account, Execution, ExecutionSource
from trading.rules.lots import lots_match
from trading.selectors import fills_of, ledger_fill_of
from trading.services.executions import IngestResult, executions_upsert
from trading.services.ledger import ledger_recompute

BROKER_NAME = "ibkr"
_COMPARED = ("side", "quantity", "price")


@dataclass
class SettlementResult:
    recorded: bool = False  # False: the sync found the event already recorded and wrote nothing
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    disagreement: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def option_settlement_record(
    *, account: Account, legs: list[BrokerExecution], source: str, recompute: bool = True
) -> SettlementResult:
    """Store one option's settlement fills (``legs``: one base, see ``core.brokers.expiries``) and
    bring the ledger up to date. Inside the caller's transaction."""
    result = SettlementResult()
    if not legs:
        return result
    base = legs[0].exec_id.rsplit("-", 1)[0] + "-"
    if any(not leg.exec_id.startswith(base) or settlement_leg_of(leg.exec_id) is None for leg in legs):
        raise ValueError(
            f"settlement legs of more than one event, or not settlement fills: {[leg.exec_id for leg in legs]}"
        )
    stored = {
        row["exec_id"]: row
        for row in Execution.objects.filter(broker=BROKER_NAME, exec_id__startswith=base).values(
            "id", "exec_id", "account_id", "instrument_id", "executed_at", "source", *_COMPARED
        )
    }
    if source == ExecutionSource.INFERRED and stored:
        return result  # recorded already (by a statement, staff or an earlier sync): it stands
    affected: dict[int, datetime] = {}

    def touch(instrument_id: int, at: datetime) -> None:
        affected[instrument_id] = min(at, affected.get(instrument_id, at))

    # A statement wins over what the sync inferred: the inferred legs it lacks go, its own are upserted.
    incoming = {leg.exec_id: leg for leg in legs}
    inferred = {k: v for k, v in stored.items() if v["source"] == ExecutionSource.INFERRED}
    if inferred and source != ExecutionSource.INFERRED:
        differs = set(inferred) != set(incoming) or any(
            _leg_values(incoming[k]) != tuple(row[name] for name in _COMPARED)
            for k, row in inferred.items()
            if k in incoming
        )
        if differs:
            result.disagreement = {
                "inferred_by_sync": [
                    {"exec_id": k, **{name: str(row[name]) for name in _COMPARED}}
                    for k, row in sorted(inferred.items())
                ]
            }
            kinds = ", ".join(settlement_leg_of(k).label.lower() for k in sorted(inferred))
            result.warnings.append(
                f"option settlement {base[:-1]}: the statement differs from what the position sync inferred "
                f"({kinds}); the statement's fills replace it"
            )
        gone = [row for k, row in inferred.items() if k not in incoming]
        for row in gone:
            touch(row["instrument_id"], row["executed_at"])
        if gone:
            Execution.objects.filter(pk__in=[row["id"] for row in gone]).delete()
            result.removed = len(gone)
    upserted: IngestResult = executions_upsert(account=account, rows=legs, broker_name=BROKER_NAME, source=source)
    result.created, result.updated, result.unchanged = upserted.created, upserted.updated, upserted.unchanged
    result.warnings += upserted.warnings
    for instrument_id, at in upserted.affected.items():
        touch(instrument_id, at)
    now_stored = Execution.objects.filter(broker=BROKER_NAME, exec_id__in=list(incoming))
    if source != ExecutionSource.INFERRED:
        now_stored.exclude(source=source).update(source=source)
    if result.disagreement:
        option = next((k for k in sorted(incoming) if settlement_leg_of(k) in OPTION_LEGS), None)
        if option is not None:
            Execution.objects.filter(broker=BROKER_NAME, exec_id=option).update(broker_disagreement=result.disagreement)
    for instrument_id, at in _basis_transfer(account, {row.exec_id: row for row in now_stored}).items():
        touch(instrument_id, at)
    result.recorded = True
    if recompute and affected:
        ledger_recompute(account=account, affected=affected)
    return result


def _leg_values(leg: BrokerExecution) -> tuple:
    return (leg.side, quantize_quantity(leg.quantity), quantize_price(leg.price))


def _basis_transfer(account: Account, fills: dict[str, Execution]) -> dict[int, datetime]:
    """Move the premium of the exercised or assigned contracts into the delivered stock's basis: what the
    option's exercise or assignment fill would realize, from the option's own lots. Returns the
    instruments whose fills changed (for the recompute)."""
    by_leg = {settlement_leg_of(k): f for k, f in fills.items()}
    option = by_leg.get(SettlementLeg.ASSIGNED) or by_leg.get(SettlementLeg.EXERCISED)
    stock = by_leg.get(SettlementLeg.DELIVERY)
    transfer = None
    if option is not None and stock is not None:
        # The option's replay with this fill realizing normally: what it would realize is the premium.
        replay = [
            replace(f, basis_transfer=Decimal(0)) if f.id == option.id else f
            for f in map(ledger_fill_of, fills_of(account=account, instrument_ids=[option.instrument_id]))
        ]
        would_realize = lots_match(replay, method=settings.LOT_MATCHING).realized_by_fill.get(option.id)
        if would_realize is not None:
            transfer = quantize_money(would_realize)
    changed: dict[int, datetime] = {}
    wanted = {option: transfer, stock: None if transfer is None else -transfer}
    for fill, amount in wanted.items():
        if fill is not None and fill.basis_transfer != amount:
            Execution.objects.filter(pk=fill.pk).update(basis_transfer=amount)
            changed[fill.instrument_id] = fill.executed_at
    return changed
