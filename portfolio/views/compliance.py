"""Compliance: day trades and the PDT status, the unsettled cash calendar, and a cash account's violations."""

from datetime import date
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from portfolio.selectors import account_pdt_get
from portfolio.views.common import account_choice
from trading.calendars import trade_date_of
from trading.models import AccountType, DayTradeRule
from trading.rules.daytrades import LEGACY, PDT_MIN_EQUITY
from trading.selectors import cash_state_get, day_trade_list, settlement_calendar_get

DAY_TRADES_PER_PAGE = 25


def exchange_today() -> date:
    """Today's trade date in the exchange's time zone (a seam for tests)."""
    return trade_date_of(timezone.now())


@login_required
def compliance(request: HttpRequest) -> HttpResponse:
    choice = account_choice(request)
    account = choice.selected
    context: dict = {"choice": choice}
    if account is None:
        return render(request, "portfolio/compliance.html", context)

    today = exchange_today()
    pdt = account_pdt_get(account=account, today=today)
    day_trades = Paginator(day_trade_list(user=request.user).filter(account=account), DAY_TRADES_PER_PAGE).get_page(
        request.GET.get("dt_page")
    )
    context.update(
        account=account,
        currency=account.base_currency,
        today=today,
        is_cash=account.account_type == AccountType.CASH,
        pinned_legacy=account.day_trade_rule == DayTradeRule.LEGACY,
        pdt=pdt,
        legacy=pdt.status is not None and pdt.status.rule == LEGACY,
        day_trade_share=_share(pdt),
        below_pdt_equity=pdt.equity is not None and pdt.equity < PDT_MIN_EQUITY,
        pdt_min_equity=PDT_MIN_EQUITY,
        day_trades=day_trades,
        day_trade_pages=list(day_trades.paginator.get_elided_page_range(day_trades.number, on_each_side=2, on_ends=1)),
        settlements=settlement_calendar_get(account=account, after=today),
    )
    if context["is_cash"]:
        context["cash_state"], context["violations"] = cash_state_get(account=account, as_of=today)
    return render(request, "portfolio/compliance.html", context)


def _share(pdt) -> Decimal | None:
    """Day trades as a fraction of the window's trades (the legacy rule's "more than 6%")."""
    if pdt.status is None or not pdt.status.trades:
        return None
    return Decimal(pdt.status.day_trades) / Decimal(pdt.status.trades)
