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

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from django.conf import settings

from core.brokers.base import BrokerExecution
from core.brokers.expiries import OPTION_LEGS, SettlementLeg, settlement_leg_of
from core.bulk import bulk_update_values
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
    recorded: int = 0  # events written; the sync skips one already recorded (by a statement, staff, itself)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    disagreements: int = 0
    warnings: list[str] = field(default_factory=list)


def option_settlements_record(
    *, account: Account, events: list[list[BrokerExecution]], source: str
) -> SettlementResult:
    """Store options' settlement fills (``events``: each the legs of one option's end, sharing one base
    of ``core.brokers.expiries``) and bring the ledger up to date, inside the caller's transaction. The
    same few queries however many events."""
    result = SettlementResult()
    events = [legs for legs in events if legs]
    if not events:
        return result
    bases = [_base_of(legs) for legs in events]
    every_leg = [f"{base}{leg.value}" for base in bases for leg in SettlementLeg]
    stored: dict[str, dict[str, dict]] = {base: {} for base in bases}
    for row in Execution.objects.filter(broker=BROKER_NAME, exec_id__in=every_leg).values(
        "id", "exec_id", "instrument_id", "executed_at", "source", *_COMPARED
    ):
        stored[row["exec_id"][: -len("exp")]][row["exec_id"]] = row
    if source == ExecutionSource.INFERRED:
        # Recorded already (by a statement, staff or an earlier sync): it stands.
        events = [legs for legs, base in zip(events, bases, strict=True) if not stored[base]]
        bases = [_base_of(legs) for legs in events]
        if not events:
            return result
    affected: dict[int, datetime] = {}

    def touch(instrument_id: int, at: datetime) -> None:
        affected[instrument_id] = min(at, affected.get(instrument_id, at))

    # A statement wins over what the sync inferred: the inferred legs it lacks go, its own are upserted,
    # and what the sync had inferred is kept on the option's fill.
    gone: list[dict] = []
    disagreements: dict[str, dict] = {}
    for legs, base in zip(events, bases, strict=True):
        inferred = {k: v for k, v in stored[base].items() if v["source"] == ExecutionSource.INFERRED}
        if not inferred or source == ExecutionSource.INFERRED:
            continue
        incoming = {leg.exec_id: leg for leg in legs}
        differs = set(inferred) != set(incoming) or any(
            _leg_values(incoming[k]) != tuple(row[name] for name in _COMPARED)
            for k, row in inferred.items()
            if k in incoming
        )
        if differs:
            option = next((k for k in sorted(incoming) if settlement_leg_of(k) in OPTION_LEGS), None)
            if option is not None:
                disagreements[option] = {
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
        gone += [row for k, row in inferred.items() if k not in incoming]
    for row in gone:
        touch(row["instrument_id"], row["executed_at"])
    if gone:
        Execution.objects.filter(pk__in=[row["id"] for row in gone]).delete()
    result.removed, result.disagreements = len(gone), len(disagreements)
    legs = [leg for event in events for leg in event]
    upserted: IngestResult = executions_upsert(account=account, rows=legs, broker_name=BROKER_NAME, source=source)
    result.created, result.updated, result.unchanged = upserted.created, upserted.updated, upserted.unchanged
    result.warnings += upserted.warnings
    for instrument_id, at in upserted.affected.items():
        touch(instrument_id, at)
    fills = list(Execution.objects.filter(broker=BROKER_NAME, exec_id__in=[leg.exec_id for leg in legs]))
    if source != ExecutionSource.INFERRED and any(f.source != source for f in fills):
        Execution.objects.filter(pk__in=[f.pk for f in fills if f.source != source]).update(source=source)
    for exec_id, disagreement in disagreements.items():
        Execution.objects.filter(broker=BROKER_NAME, exec_id=exec_id).update(broker_disagreement=disagreement)
    for instrument_id, at in _basis_transfers(account, fills).items():
        touch(instrument_id, at)
    result.recorded = len(events)
    if affected:
        ledger_recompute(account=account, affected=affected)
    return result


def _base_of(legs: list[BrokerExecution]) -> str:
    base = legs[0].exec_id.rsplit("-", 1)[0] + "-"
    if any(not leg.exec_id.startswith(base) or settlement_leg_of(leg.exec_id) is None for leg in legs):
        raise ValueError(
            f"settlement legs of more than one event, or not settlement fills: {[leg.exec_id for leg in legs]}"
        )
    return base


def _leg_values(leg: BrokerExecution) -> tuple:
    return (leg.side, quantize_quantity(leg.quantity), quantize_price(leg.price))


def _basis_transfers(account: Account, fills: list[Execution]) -> dict[int, datetime]:
    """Move the premium of the exercised or assigned contracts into the delivered stock's basis: what each
    option's exercise or assignment fill would realize, from the option's own lots (one query for all).
    Returns the instruments whose fills changed (for the recompute)."""
    events: dict[str, dict[SettlementLeg, Execution]] = defaultdict(dict)
    for fill in fills:
        events[fill.exec_id[: -len("exp")]][settlement_leg_of(fill.exec_id)] = fill
    pairs = []  # (option's exercise or assignment fill, the stock's fill)
    for legs in events.values():
        option = legs.get(SettlementLeg.ASSIGNED) or legs.get(SettlementLeg.EXERCISED)
        pairs.append((option, legs.get(SettlementLeg.DELIVERY)))
    options = {option.instrument_id for option, stock in pairs if option is not None and stock is not None}
    by_instrument = defaultdict(list)
    for row in fills_of(account=account, instrument_ids=options) if options else ():
        by_instrument[row["instrument_id"]].append(ledger_fill_of(row))
    transfers: dict[int, Decimal] = {}
    for option, stock in pairs:
        if option is None or stock is None:
            continue
        # The option's replay with this fill realizing normally: what it would realize is the premium.
        replay = [
            replace(f, basis_transfer=Decimal(0)) if f.id == option.id else f
            for f in by_instrument[option.instrument_id]
        ]
        would_realize = lots_match(replay, method=settings.LOT_MATCHING).realized_by_fill.get(option.id)
        if would_realize is not None:
            transfers[option.pk] = quantize_money(would_realize)
            transfers[stock.pk] = -transfers[option.pk]
    changed: dict[int, datetime] = {}
    rows = []
    for fill in fills:
        wanted = transfers.get(fill.pk)
        if fill.basis_transfer != wanted:
            rows.append((fill.pk, wanted))
            changed[fill.instrument_id] = min(fill.executed_at, changed.get(fill.instrument_id, fill.executed_at))
    bulk_update_values(Execution, ("basis_transfer",), rows)
    return changed
