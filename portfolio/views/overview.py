"""The overview page: one account's figures, open positions, charts and recent fills, and "Sync now".

Everything comes from the database (never the broker), so the page answers in milliseconds whether or
not the broker is up. static/js/overview.js keeps it fresh by polling ``overview_fragments``, which
renders the page's parts (templates/portfolio/_overview_*.html) again with the same context: numbers,
money and times are formatted in one place, the template filters, never in JavaScript.
"""

from math import ceil

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.live import connection_status
from core.models import SyncReason, SyncStatus
from portfolio.selectors import AccountOverview, account_overview_get, positions_mode_get
from portfolio.services.sync_requests import positions_sync_request
from portfolio.throttles import SyncRequestThrottle
from portfolio.views.common import account_choice
from trading.models import Account

RECENT_FILLS = 15
OPEN_POSITIONS_SHOWN = 50
# The page's parts that change while it is open: name in the JSON (and data-fragment="...") -> template.
FRAGMENTS = {
    "last_synced": "portfolio/_overview_last_synced.html",
    "progress": "portfolio/_overview_progress.html",
    "banners": "portfolio/_overview_banners.html",
    "cards": "portfolio/_overview_cards.html",
    "positions": "portfolio/_overview_positions.html",
    "risk": "portfolio/_overview_risk.html",
    "fills": "portfolio/_overview_fills.html",
}


def _overview_data(account: Account) -> AccountOverview:
    return account_overview_get(account=account, fills=RECENT_FILLS, positions=OPEN_POSITIONS_SHOWN)


def _fragment_context(account: Account, data: AccountOverview) -> dict:
    """What the _overview_*.html parts read, the same for the page and for overview_fragments."""
    return {
        "account": account,
        "data": data,
        "s": data.summary,
        "cur": account.base_currency,
        # The event listener's view of the broker connection (core.live): the banner says when it is not ok.
        "connections": connection_status(),
    }


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    choice = account_choice(request)
    context: dict = {"choice": choice, "data": None}
    if choice.selected:
        context.update(_fragment_context(choice.selected, _overview_data(choice.selected)))
        context["mode"] = positions_mode_get(account=choice.selected)
    return render(request, "portfolio/overview.html", context)


@never_cache
@require_GET
def overview_fragments(request: HttpRequest) -> JsonResponse:
    """The overview's changing parts for ``?account=ID``, rendered as the page renders them.

    ``{"account", "in_progress", "fragments": {name: html}}``: each fragment is the HTML of one element
    of the page (marked ``data-fragment="name"``), from the template the page includes, so the first
    render and every refresh read the same. ``outcome`` is the progress line worded for the latest run's
    end, which the script shows once a sync it followed has finished. Session login, and the page's
    access rule: an account the user may not see is not found. A fixed number of queries.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "Log in first."}, status=403)
    account_id = request.GET.get("account", "")
    if not account_id:
        return JsonResponse({"detail": "?account= is required."}, status=400)
    account = Account.objects.visible_to(request.user).filter(account_id=account_id).first()
    if account is None:
        return JsonResponse({"detail": "No such account."}, status=404)
    data = _overview_data(account)
    context = _fragment_context(account, data)
    with timezone.override(settings.EXCHANGE_TIME_ZONE):  # as the page's {% timezone exchange_tz %}
        fragments = {name: render_to_string(template, context, request) for name, template in FRAGMENTS.items()}
        fragments["outcome"] = render_to_string(FRAGMENTS["progress"], {**context, "outcome": True}, request)
    return JsonResponse(
        {"account": account.account_id, "in_progress": data.running_since is not None, "fragments": fragments}
    )


@login_required
@require_POST
def sync_now(request: HttpRequest) -> HttpResponse:
    """The form behind "Sync now" (works without JavaScript): start a sync of one account, say so, go back.

    Limited as ``POST /api/sync/positions`` is, on the same counter: every post counts, as every API
    request does.
    """
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("overview")
    throttle = SyncRequestThrottle()
    if not throttle.allow_request(request, None):
        wait = ceil(throttle.wait() or 1)
        messages.warning(request, f"Too many sync requests (at most {throttle.rate} per user): try again in {wait} s.")
        return redirect(back)
    account_id = request.POST.get("account", "")
    account = Account.objects.visible_to(request.user).filter(account_id=account_id, is_active=True).first()
    if account is None:
        messages.error(request, "That account cannot be synced (unknown, not yours, or inactive).")
        return redirect(back)
    run = positions_sync_request(accounts=[account], reason=SyncReason.MANUAL)[0]
    if run.status == SyncStatus.RUNNING:
        messages.success(request, f"Sync of {account.account_id} started: reload in a moment for the new figures.")
    else:
        messages.warning(request, f"Sync of {account.account_id} not started: {run.message}.")
    return redirect(back)
