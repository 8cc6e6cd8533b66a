"""Recompute what derives from the fills, from the first affected fill on, deterministically.

The pure functions in ``trading/ledger/`` replay every fill of an account and instrument in one
order (``fill_order``), so a late or out-of-order fill gives exactly the result an in-order arrival
would have. Only what can have changed is rewritten: matches, round trips, realized P&L and day
trades at or after the first affected fill, the open lots, the settlement rows of changed fills,
trade frequency from that week on, and a CASH account's daily state and violations.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from marketdata.fields import quantize_money, quantize_price
from trading.calendars import trade_date_of
from trading.ledger.cash import CashFill, CashMovement, cash_account_replay
from trading.ledger.daytrades import DayTradeResult, day_trades_find, trade_frequency
from trading.ledger.lots import lots_match
from trading.ledger.types import LedgerFill
from trading.models import (
    Account,
    AccountType,
    CashAccountState,
    CashFlow,
    CashViolation,
    DayTrade,
    Execution,
    FrequencyPeriod,
    Lot,
    LotMatch,
    RoundTrip,
    SettlementStatus,
    SettlementTracking,
    Side,
    TradeFrequencyTracking,
)

FILL_FIELDS = (
    "id",
    "exec_id",
    "instrument_id",
    "executed_at",
    "trade_date",
    "side",
    "quantity",
    "price",
    "commission",
    "instrument__multiplier",
    "perm_id",
    "order_id",
    "settlement_date",
)


def _ledger_fill(row: dict) -> LedgerFill:
    order = row["perm_id"] or row["order_id"]
    return LedgerFill(
        id=row["id"],
        exec_id=row["exec_id"],
        instrument_id=row["instrument_id"],
        executed_at=row["executed_at"],
        trade_date=row["trade_date"],
        side=row["side"],
        quantity=row["quantity"],
        price=row["price"],
        commission=row["commission"] or Decimal(0),
        multiplier=row["instrument__multiplier"],
        order_ref=str(order) if order else None,
    )


def fills_of(
    *, account: Account, instrument_ids: Iterable[int] | None = None, trade_date_from: date | None = None
) -> list[dict]:
    fills = Execution.objects.filter(account=account)
    if instrument_ids is not None:
        fills = fills.filter(instrument_id__in=list(instrument_ids))
    if trade_date_from is not None:
        fills = fills.filter(trade_date__gte=trade_date_from)
    return list(fills.order_by("executed_at", "exec_id", "id").values(*FILL_FIELDS))


def settlement_amount(
    *, side: str, quantity: Decimal, price: Decimal, multiplier: Decimal, commission: Decimal | None
) -> Decimal:
    """Signed cash of a fill: a purchase costs price x quantity plus commission, a sale brings it less."""
    gross = quantity * price * multiplier
    fee = commission or Decimal(0)
    return quantize_money(-(gross + fee) if side == Side.BUY else gross - fee)


def ledger_recompute(
    *, account: Account, affected: dict[int, datetime], cash_changed: bool = False, today: date | None = None
) -> None:
    """Bring the derived ledger of ``account`` up to date after fills changed (inside a transaction)."""
    if not affected and not cash_changed:
        return
    today = today or trade_date_of(timezone.now())
    rows = fills_of(account=account, instrument_ids=affected) if affected else []
    by_instrument: dict[int, list[LedgerFill]] = defaultdict(list)
    for row in rows:
        by_instrument[row["instrument_id"]].append(_ledger_fill(row))
    for instrument_id, since in affected.items():
        _recompute_instrument(account, instrument_id, by_instrument.get(instrument_id, []), since)
    if affected:
        earliest = min(affected.values())
        _settlements_refresh(account, [r for r in rows if r["executed_at"] >= earliest], today)
        _frequency_refresh(account, trade_date_of(earliest))
    if account.account_type == AccountType.CASH:
        cash_state_recompute(account=account, today=today)


def _recompute_instrument(account: Account, instrument_id: int, fills: list[LedgerFill], since: datetime) -> None:
    result = lots_match(fills, method=settings.LOT_MATCHING)
    executed_at = {f.id: f.executed_at for f in fills}
    pair = {"account": account, "instrument_id": instrument_id}

    Lot.objects.filter(**pair).delete()
    Lot.objects.bulk_create(
        [
            Lot(
                **pair,
                opening_execution_id=lot.opening_fill_id,
                opened_at=lot.opened_at,
                original_quantity=lot.original_quantity,
                quantity=lot.quantity,
                cost_price=quantize_price(lot.cost_price),
                position_opening_execution_id=result.position_opening_fill_id,
            )
            for lot in result.open_lots
        ]
    )
    LotMatch.objects.filter(**pair, closing_execution__executed_at__gte=since).delete()
    LotMatch.objects.bulk_create(
        [
            LotMatch(
                **pair,
                opening_execution_id=m.opening_fill_id,
                closing_execution_id=m.closing_fill_id,
                quantity=m.quantity,
                entry_price=quantize_price(m.entry_price),
                exit_price=quantize_price(m.exit_price),
                realized_pnl=m.realized_pnl,
                method=settings.LOT_MATCHING,
            )
            for m in result.matches
            if executed_at[m.closing_fill_id] >= since
        ],
        batch_size=2000,
    )
    RoundTrip.objects.filter(**pair, closed_at__gte=since).delete()
    RoundTrip.objects.bulk_create(
        [
            RoundTrip(
                **pair,
                direction=t.direction,
                opened_at=t.opened_at,
                closed_at=t.closed_at,
                quantity=t.quantity,
                average_entry=quantize_price(t.average_entry),
                average_exit=quantize_price(t.average_exit),
                realized_pnl=t.realized_pnl,
                commissions=t.commissions,
                outcome=t.outcome,
                holding_seconds=t.holding_seconds,
                opening_execution_id=t.opening_fill_id,
                closing_execution_id=t.closing_fill_id,
            )
            for t in result.round_trips
            if t.closed_at >= since
        ],
        batch_size=2000,
    )

    # Realized P&L on each fill at or after the first change; opening-only fills carry none.
    stored = dict(Execution.objects.filter(**pair, executed_at__gte=since).values_list("id", "realized_pnl"))
    changed = []
    for fill_id, old in stored.items():
        new = result.realized_by_fill.get(fill_id)
        if old != new:
            changed.append(Execution(id=fill_id, realized_pnl=new))
    if changed:
        Execution.objects.bulk_update(changed, ["realized_pnl"], batch_size=1000)

    since_date = trade_date_of(since)
    DayTrade.objects.filter(**pair, trade_date__gte=since_date).delete()
    counting = settings.DAY_TRADE_COUNTING
    DayTrade.objects.bulk_create(
        [
            DayTrade(
                **pair,
                trade_date=d.trade_date,
                quantity=d.quantity,
                opening_execution_id=d.opening_fill_id,
                closing_execution_id=d.closing_fill_id,
                counting=counting,
            )
            for d in day_trades_find(fills, counting=counting)
            if d.trade_date >= since_date
        ],
        batch_size=2000,
    )


def _settlements_refresh(account: Account, rows: list[dict], today: date) -> None:
    if not rows:
        return
    SettlementTracking.objects.bulk_create(
        [
            SettlementTracking(
                execution_id=r["id"],
                account=account,
                trade_date=r["trade_date"],
                settlement_date=r["settlement_date"],
                amount=settlement_amount(
                    side=r["side"],
                    quantity=r["quantity"],
                    price=r["price"],
                    multiplier=r["instrument__multiplier"],
                    commission=r["commission"],
                ),
                status=SettlementStatus.SETTLED if r["settlement_date"] <= today else SettlementStatus.PENDING,
                from_broker=False,
            )
            for r in rows
        ],
        update_conflicts=True,
        unique_fields=["execution"],
        update_fields=["trade_date", "settlement_date", "amount", "status"],
        batch_size=2000,
    )
    # Dates the broker supplied are marked as such (one statement, whatever the count).
    SettlementTracking.objects.filter(
        execution__in=[r["id"] for r in rows], execution__broker_settlement_date__isnull=False
    ).update(from_broker=True)


def _frequency_refresh(account: Account, from_date: date) -> None:
    week_start = from_date - timedelta(days=from_date.weekday())
    fills = [_ledger_fill(r) for r in fills_of(account=account, trade_date_from=week_start)]
    day_trades = [
        DayTradeResult(
            instrument_id=d.instrument_id,
            trade_date=d.trade_date,
            quantity=d.quantity,
            opening_fill_id=d.opening_execution_id,
            closing_fill_id=d.closing_execution_id,
        )
        for d in DayTrade.objects.filter(account=account, trade_date__gte=week_start)
    ]
    TradeFrequencyTracking.objects.filter(account=account).filter(
        Q(period=FrequencyPeriod.DAY, period_start__gte=from_date)
        | Q(period=FrequencyPeriod.WEEK, period_start__gte=week_start)
    ).delete()
    TradeFrequencyTracking.objects.bulk_create(
        [
            TradeFrequencyTracking(
                account=account,
                period=row.period,
                period_start=row.period_start,
                trades=row.trades,
                day_trades=row.day_trades,
            )
            for row in trade_frequency(fills, day_trades)
            if row.period_start >= (from_date if row.period == FrequencyPeriod.DAY else week_start)
        ],
        batch_size=2000,
    )


def cash_state_recompute(*, account: Account, today: date) -> None:
    """Replay a CASH account from its first activity: settled and unsettled cash per day, violations."""
    rows = fills_of(account=account)
    flows = list(CashFlow.objects.filter(account=account).values_list("at", "kind", "amount"))
    if not rows and not flows:
        return
    cash_fills = [
        CashFill(
            fill=_ledger_fill(r),
            settlement_date=r["settlement_date"],
            amount=settlement_amount(
                side=r["side"],
                quantity=r["quantity"],
                price=r["price"],
                multiplier=r["instrument__multiplier"],
                commission=r["commission"],
            ),
        )
        for r in rows
    ]
    movements = [CashMovement(at=at, amount=amount if kind == "DEPOSIT" else -amount) for at, kind, amount in flows]
    first = min([r["trade_date"] for r in rows] + [trade_date_of(at) for at, _, _ in flows])
    replay = cash_account_replay(fills=cash_fills, movements=movements, start=first, end=today)
    CashAccountState.objects.filter(account=account).delete()
    CashAccountState.objects.bulk_create(
        [
            CashAccountState(
                account=account,
                date=d.date,
                settled_cash=quantize_money(d.settled_cash),
                unsettled_cash=quantize_money(d.unsettled_cash),
                violations_12m=d.violations_12m,
            )
            for d in replay.days
        ],
        batch_size=2000,
    )
    CashViolation.objects.filter(account=account).delete()
    CashViolation.objects.bulk_create(
        [
            CashViolation(
                account=account,
                kind=v.kind,
                trade_date=v.trade_date,
                buy_execution_id=v.buy_fill_id,
                sell_execution_id=v.sell_fill_id,
                amount=quantize_money(v.amount),
                detail=v.detail[:255],
            )
            for v in replay.violations
        ]
    )


def settlements_mark_settled(*, today: date | None = None) -> int:
    """Move every pending settlement whose date has come to SETTLED; returns how many moved."""
    today = today or trade_date_of(timezone.now())
    return SettlementTracking.objects.filter(status=SettlementStatus.PENDING, settlement_date__lte=today).update(
        status=SettlementStatus.SETTLED
    )
