"""The overview page: one account's figures, open positions, charts and recent fills, and "Sync now".

Everything comes from the database (never the broker), so the page answers in milliseconds whether or
not the broker is up; static/js/overview.js keeps it fresh through the JSON API.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core.models import SyncReason, SyncStatus
from portfolio.selectors import account_overview_get
from portfolio.services.sync_requests import positions_sync_request
from portfolio.views.common import account_choice
from trading.models import Account

RECENT_FILLS = 15
OPEN_POSITIONS_SHOWN = 50


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    choice = account_choice(request)
    data = (
        account_overview_get(account=choice.selected, fills=RECENT_FILLS, positions=OPEN_POSITIONS_SHOWN)
        if choice.selected
        else None
    )
    context = {"choice": choice, "data": data, "fills_limit": RECENT_FILLS, "positions_limit": OPEN_POSITIONS_SHOWN}
    return render(request, "portfolio/overview.html", context)


@login_required
@require_POST
def sync_now(request: HttpRequest) -> HttpResponse:
    """The form behind "Sync now" (works without JavaScript): start a sync of one account, say so, go back."""
    account_id = request.POST.get("account", "")
    account = Account.objects.visible_to(request.user).filter(account_id=account_id, is_active=True).first()
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("overview")
    if account is None:
        messages.error(request, "That account cannot be synced (unknown, not yours, or inactive).")
        return redirect(back)
    run = positions_sync_request(accounts=[account], reason=SyncReason.MANUAL)[0]
    if run.status == SyncStatus.RUNNING:
        messages.success(request, f"Sync of {account.account_id} started: reload in a moment for the new figures.")
    else:
        messages.warning(request, f"Sync of {account.account_id} not started: {run.message}.")
    return redirect(back)
