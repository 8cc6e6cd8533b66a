"""The sync health page: recent sync runs of the visible accounts, each account's position-sync state,
and whether beat and a worker are alive (the heartbeat)."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode

from core.health import queue_depth, run_health
from core.heartbeat import heartbeat_status
from core.models import SyncKind, SyncRun, SyncStatus
from core.views import HEARTBEAT_STALE_AFTER
from portfolio.selectors import reconcile_open_list, sync_run_list, sync_status_list

PAGE_SIZE = 50


@login_required
def sync_health(request: HttpRequest) -> HttpResponse:
    statuses = sync_status_list(user=request.user)
    accounts = [s.account for s in statuses]
    # Filters: values outside the choices are ignored, as if absent.
    kind = request.GET.get("kind") if request.GET.get("kind") in SyncKind.values else ""
    status = request.GET.get("status") if request.GET.get("status") in SyncStatus.values else ""
    account_id = request.GET.get("account", "")
    account_id = account_id if account_id in {a.account_id for a in accounts} else ""
    runs = sync_run_list(user=request.user, kind=kind, status=status, account_id=account_id)
    beat = heartbeat_status()
    filters = {k: v for k, v in {"kind": kind, "status": status, "account": account_id}.items() if v}
    return render(
        request,
        "portfolio/sync_health.html",
        {
            "accounts": accounts,
            "statuses": statuses,
            "page": Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page")),
            "filters": filters,
            "filter_query": urlencode(filters),
            "kinds": SyncKind.choices,
            "run_statuses": SyncStatus.choices,
            "beat": beat,
            "beat_ok": beat["age_seconds"] is not None and beat["age_seconds"] <= HEARTBEAT_STALE_AFTER,
            "beat_stale_after": HEARTBEAT_STALE_AFTER,
            # Runs of the accounts this user sees; the queue is everyone's (a count, nothing more).
            "runs_health": run_health(runs=SyncRun.objects.filter(account__in=accounts)),
            "queue_depth": queue_depth(),
            # Differences between the broker and the fills not explained yet (accounts in "fills" mode).
            "differences": reconcile_open_list(user=request.user),
        },
    )
