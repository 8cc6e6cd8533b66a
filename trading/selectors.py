"""Reads of the executions ledger, with the joins they need."""

from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Count, QuerySet

from trading.calendars import previous_sessions
from trading.ledger.daytrades import PdtStatus, pdt_status
from trading.models import (
    Account,
    AccountType,
    CashAccountState,
    CashViolation,
    DayTrade,
    DayTradeRule,
    Execution,
    FrequencyPeriod,
    RoundTrip,
    SettlementTracking,
    TradeFrequencyTracking,
)


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
