"""Reads of the executions ledger, with the joins they need."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum

from trading.calendars import previous_sessions
from trading.models import (
    Account,
    AccountType,
    CashAccountState,
    CashViolation,
    DayTrade,
    DayTradeRule,
    Execution,
    FrequencyPeriod,
    LedgerInstrument,
    RoundTrip,
    SettlementTracking,
    TradeFrequencyTracking,
)
from trading.rules.daytrades import PdtStatus, pdt_status
from trading.rules.types import LedgerFill


def execution_list(*, user) -> QuerySet:
    return Execution.objects.visible_to(user).select_related("account", "instrument").order_by("-executed_at", "-id")


def round_trip_list(*, user) -> QuerySet:
    return (
        RoundTrip.objects.filter(account__in=Account.objects.visible_to(user))
        .select_related("account", "instrument")
        .order_by("-closed_at", "-id")
    )


def day_trade_list(*, user) -> QuerySet:
    return (
        DayTrade.objects.filter(account__in=Account.objects.visible_to(user))
        .select_related("account", "instrument", "opening_execution", "closing_execution")
        .order_by("-trade_date", "-id")
    )


def settlement_list(*, user) -> QuerySet:
    return (
        SettlementTracking.objects.filter(account__in=Account.objects.visible_to(user))
        .select_related("account", "execution__instrument")
        .order_by("settlement_date", "id")
    )


def pdt_status_get(
    *, account: Account, as_of: date, broker_day_trades_remaining: int | None = None, equity: Decimal | None = None
) -> PdtStatus:
    """The PDT status of ``account`` on ``as_of`` under the rule in force for it then."""
    window = previous_sessions(as_of, 5)
    start, end = window[0], window[-1]
    day_trades = {
        row["trade_date"]: row["n"]
        for row in DayTrade.objects.filter(account=account, trade_date__range=(start, end))
        .values("trade_date")
        .annotate(n=Count("id"))
    }
    trades = dict(
        TradeFrequencyTracking.objects.filter(
            account=account, period=FrequencyPeriod.DAY, period_start__range=(start, end)
        ).values_list("period_start", "trades")
    )
    return pdt_status(
        as_of=as_of,
        pinned_legacy=account.day_trade_rule == DayTradeRule.LEGACY,
        is_margin=account.account_type == AccountType.MARGIN,
        day_trades_by_date=day_trades,
        trades_by_date=trades,
        broker_day_trades_remaining=broker_day_trades_remaining,
        equity=equity,
    )


def cash_state_get(*, account: Account, as_of: date) -> tuple[CashAccountState | None, list[CashViolation]]:
    """The CASH account's state at the end of ``as_of`` (or the last day before it) and its
    violations of the 12 months to that date."""
    state = CashAccountState.objects.filter(account=account, date__lte=as_of).order_by("-date").first()
    violations = list(
        CashViolation.objects.filter(account=account, trade_date__lte=as_of, trade_date__gt=as_of - timedelta(days=365))
        .select_related("buy_execution__instrument", "sell_execution__instrument")
        .order_by("-trade_date", "-id")
    )
    return state, violations


# --- Reads for the dashboard pages (Trades, Compliance) ------------------------------------------
# Appended below the shared header while others edit this module; the imports can be hoisted later.


def _exchange_day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.EXCHANGE_TIME_ZONE))


def round_trip_list_closed_between(
    *, user, account: Account, symbol: str | None = None, since: date | None = None, until: date | None = None
) -> QuerySet:
    """Round trips of ``account`` closed on the trade dates ``since``..``until`` (exchange time, both
    inclusive), newest first: the same date range the Trades page applies to fills."""
    trips = round_trip_list(user=user).filter(account=account)
    if symbol:
        trips = trips.filter(instrument__symbol__iexact=symbol)
    if since:
        trips = trips.filter(closed_at__gte=_exchange_day_start(since))
    if until:
        trips = trips.filter(closed_at__lt=_exchange_day_start(until + timedelta(days=1)))
    return trips


@dataclass(frozen=True)
class SettlementDay:
    settlement_date: date
    net: Decimal  # signed: sale proceeds in, purchases out, net of commissions
    incoming: Decimal
    outgoing: Decimal  # negative or zero
    count: int
    rows: list[SettlementTracking]


@dataclass(frozen=True)
class SettlementCalendar:
    days: list[SettlementDay]
    net: Decimal
    count: int
    rows_shown: int


def settlement_calendar_get(*, account: Account, after: date, row_limit: int = 200) -> SettlementCalendar:
    """The cash of ``account`` still to settle after ``after``, by settlement date: totals over every
    pending fill, and the fills themselves (the first ``row_limit``). Money settles at the start of
    its settlement date, so a row dated ``after`` or earlier has settled whatever its status says
    (the status is brought up to date by a periodic task, which may not have run yet)."""
    pending = SettlementTracking.objects.filter(account=account, settlement_date__gt=after)
    totals = (
        pending.values("settlement_date")
        .annotate(
            net=Sum("amount"),
            incoming=Sum("amount", filter=Q(amount__gt=0)),
            outgoing=Sum("amount", filter=Q(amount__lt=0)),
            n=Count("id"),
        )
        .order_by("settlement_date")
    )
    rows = list(
        pending.select_related("execution__instrument").order_by("settlement_date", "execution__executed_at", "id")[
            :row_limit
        ]
    )
    by_date: dict[date, list[SettlementTracking]] = {}
    for row in rows:
        by_date.setdefault(row.settlement_date, []).append(row)
    days = [
        SettlementDay(
            settlement_date=t["settlement_date"],
            net=t["net"] or Decimal(0),
            incoming=t["incoming"] or Decimal(0),
            outgoing=t["outgoing"] or Decimal(0),
            count=t["n"],
            rows=by_date.get(t["settlement_date"], []),
        )
        for t in totals
    ]
    return SettlementCalendar(
        days=days, net=sum((d.net for d in days), Decimal(0)), count=sum(d.count for d in days), rows_shown=len(rows)
    )


def trade_frequency_by_session(*, account: Account, sessions: list[date]) -> list[tuple[date, int, int]]:
    """``(session, trades, day trades)`` for each of ``sessions``, zeros where nothing was traded."""
    if not sessions:
        return []
    counts = {
        row[0]: row[1:]
        for row in TradeFrequencyTracking.objects.filter(
            account=account, period=FrequencyPeriod.DAY, period_start__range=(sessions[0], sessions[-1])
        ).values_list("period_start", "trades", "day_trades")
    }
    return [(day, *counts.get(day, (0, 0))) for day in sessions]


# --- fills, as the ledger and the position sync read them -------------------------------------
# The columns of a fill the ledger replays (``fills_of`` rows).
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
    "broker_settlement_date",
    "realized_pnl",
    "basis_transfer",
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


def ledger_fill_of(row: dict) -> LedgerFill:
    """A ``fills_of`` row as the pure ledger functions take it."""
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
        basis_transfer=row.get("basis_transfer") or Decimal(0),
    )


def ledger_instruments_of(account: Account) -> dict[int, datetime | None]:
    """Instrument id -> since when its fills changed without the layers above catching up (None:
    they have), for every instrument ``account`` has fills in; empty when the ledger has no fills
    for it. One query, not locked (``trading.services.ledger_changes`` locks)."""
    return dict(
        LedgerInstrument.objects.filter(account=account).order_by().values_list("instrument_id", "changed_since")
    )
