from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portfolio.models import AccountStatus
from portfolio.selectors import position_list, sync_status_list


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """Last known account values and open positions, from the database only (never the broker)."""
    statuses = sync_status_list(user=request.user)
    values = {s.account_id: s for s in AccountStatus.objects.filter(account__in=[st.account for st in statuses])}
    accounts = [{"sync": st, "values": values.get(st.account.pk)} for st in statuses]
    positions = position_list(user=request.user, status="open")
    return render(
        request,
        "portfolio/overview.html",
        {
            "accounts": accounts,
            "positions": positions,
            "stale_after_minutes": settings.POSITION_SYNC_STALE_AFTER // 60,
        },
    )


@login_required
def sync_now(request: HttpRequest) -> HttpResponse:  # the dashboard work replaces this
    return HttpResponse(status=501)
