"""Signals: today's signals of the selected account (check and execute them through the order ticket's
risk checks), its open paper trades marked at the stored quotes (closed by hand here), today's journal."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from portfolio.views.common import account_choice
from trading.calendars import trade_date_of
from trading.models import OrderStatus, PaperTradeStatus, Signal, SignalStatus
from trading.selectors import daily_pnl_get, journal_list, paper_trade_list, paper_trades_open_marked, signal_list
from trading.services.orders import order_preview
from trading.services.signals import (
    PaperTradeClosed,
    SignalError,
    paper_trade_close_by_hand,
    signal_execute,
    signal_order_input,
    signal_quantity,
)


@login_required
def signals(request: HttpRequest) -> HttpResponse:
    choice = account_choice(request)
    account = choice.selected
    context: dict = {"choice": choice}
    if account is None:
        return render(request, "portfolio/signals.html", context)
    today = trade_date_of(timezone.now())
    checked = None
    if request.GET.get("check"):
        checked = _preview(request, account, request.GET["check"])
    context.update(
        account=account,
        today=today,
        signals=list(signal_list(user=request.user, account_id=account.account_id, day=today)),
        checked=checked,
        open_trades=paper_trades_open_marked(user=request.user, account_id=account.account_id),
        journal=list(journal_list(user=request.user, day=today, account_id=account.account_id)),
        pnl=daily_pnl_get(user=request.user, day=today, account_id=account.account_id),
    )
    return render(request, "portfolio/signals.html", context)


def _preview(request: HttpRequest, account, pk: str) -> dict | None:
    """The checks the signal's entry order would be judged by now (the order ticket's "Check")."""
    signal = _signal_of(request, account, pk)
    try:
        quantity = signal_quantity(signal=signal)
    except SignalError as exc:
        return {"signal": signal, "error": str(exc)}
    checks, _, reference = order_preview(account=account, data=signal_order_input(signal=signal, quantity=quantity))
    return {"signal": signal, "quantity": quantity, "checks": checks, "reference_price": reference}


def _signal_of(request: HttpRequest, account, pk) -> Signal:
    signal = (
        signal_list(user=request.user, account_id=account.account_id).filter(pk=pk).first()
        if str(pk).isdigit()
        else None
    )
    if signal is None:
        raise Http404("No such signal in this account.")
    return signal


def _back(account) -> HttpResponse:
    return redirect(f"{reverse('signals')}?account={account.account_id}")


@login_required
@require_POST
def signal_execute_view(request: HttpRequest, pk: int) -> HttpResponse:
    account = account_choice(request).selected
    if account is None:
        raise Http404("No accounts.")
    signal = _signal_of(request, account, pk)
    try:
        signal = signal_execute(signal=signal, user=request.user)
    except SignalError as exc:
        messages.error(request, f"Signal {signal.signal_id}: {exc}")
        return _back(account)
    if signal.status == SignalStatus.GENERATED:
        messages.error(request, f"Signal {signal.signal_id} refused: " + "; ".join(signal.status_reasons))
    elif signal.order.status == OrderStatus.FILLED:
        messages.success(request, f"Signal {signal.signal_id}: filled, paper trade open.")
    else:
        messages.success(request, f"Signal {signal.signal_id}: order {signal.order.get_status_display().lower()}.")
    return _back(account)


@login_required
@require_POST
def paper_trade_close_view(request: HttpRequest, pk: int) -> HttpResponse:
    account = account_choice(request).selected
    if account is None:
        raise Http404("No accounts.")
    trade = (
        paper_trade_list(user=request.user, account_id=account.account_id)
        .select_related("exit_order")
        .filter(pk=pk)
        .first()
    )
    if trade is None:
        raise Http404("No such paper trade in this account.")
    try:
        trade = paper_trade_close_by_hand(trade=trade, user=request.user)
    except PaperTradeClosed as exc:
        messages.info(request, str(exc))
        return _back(account)
    if trade.status == PaperTradeStatus.MANUAL:
        messages.success(request, f"Paper trade {trade.pk} closed at {trade.exit_price}.")
    else:
        messages.error(request, f"Paper trade {trade.pk} still open: {trade.exit_note}")
    return _back(account)
