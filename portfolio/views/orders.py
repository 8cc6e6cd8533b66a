"""Orders: the order ticket (the API's validation, the checks shown before sending) and the orders' lifecycle."""

from dataclasses import fields as dataclass_fields

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from portfolio.views.common import account_choice
from trading.api.serializers import ExecuteOrderSerializer
from trading.models import OrderStatus
from trading.selectors import order_list
from trading.services.orders import OrderInput, order_execute, order_preview
from trading.services.risk import risk_state_get

ORDERS_PER_PAGE = 50
TICKET_FIELDS = (
    "client_order_id",
    "symbol",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "stop_price",
    "time_in_force",
    "outside_rth",
    "decision_price",
    "strategy",
    "reasoning",
)
INPUT_FIELDS = tuple(f.name for f in dataclass_fields(OrderInput))


@login_required
def orders(request: HttpRequest) -> HttpResponse:
    choice = account_choice(request)
    account = choice.selected
    context: dict = {"choice": choice, "statuses": OrderStatus.choices}
    if account is None:
        return render(request, "portfolio/orders.html", context)
    ticket = {"side": "BUY", "order_type": "MKT", "time_in_force": "DAY", "quantity": ""}
    if request.method == "POST":
        ticket = {name: request.POST.get(name, "") for name in TICKET_FIELDS}
        ticket["outside_rth"] = bool(request.POST.get("outside_rth"))
        payload = {k: v for k, v in ticket.items() if v not in ("", None)}
        body = ExecuteOrderSerializer(data={**payload, "account": account.account_id})
        if not body.is_valid():
            context["errors"] = body.errors
        else:
            data = OrderInput(**{k: v for k, v in body.validated_data.items() if k in INPUT_FIELDS})
            if request.POST.get("send"):
                outcome = order_execute(account=account, data=data, user=request.user)
                order = outcome.order
                if not outcome.created:
                    messages.info(request, f"Order {data.client_order_id} exists already: nothing sent again.")
                elif order.status == OrderStatus.REJECTED:
                    messages.error(request, "Refused: " + "; ".join(order.reject_reasons))
                else:
                    messages.success(request, f"Order {order.client_order_id}: {order.get_status_display()}.")
                return redirect(f"{reverse('orders')}?account={account.account_id}")
            context["preview"], _, context["reference_price"] = order_preview(account=account, data=data)
    status = request.GET.get("status") or ""
    rows = order_list(user=request.user, account_id=account.account_id, status=status or None)
    page = Paginator(rows, ORDERS_PER_PAGE).get_page(request.GET.get("page"))
    context.update(
        account=account,
        ticket=ticket,
        risk=risk_state_get(account=account),
        page=page,
        status=status,
    )
    return render(request, "portfolio/orders.html", context)
