"""Journal: a trade date's closed paper trades with their reasoning, the 27-field trade records of the
trades closed that day, and the performance alerts beside them (the day's risk events and the metrics)."""

from datetime import date, datetime, timedelta
from itertools import islice

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from portfolio.models import MetricsWindow
from portfolio.selectors import metrics_get
from portfolio.views.common import account_choice
from trading.calendars import exchange_zone, trade_date_of
from trading.models import RiskEvent
from trading.selectors import journal_list, trade_records_iter

RECORDS_SHOWN = 200  # the page's share; export_trade_records and the API give them all


@login_required
def journal(request: HttpRequest) -> HttpResponse:
    choice = account_choice(request)
    account = choice.selected
    context: dict = {"choice": choice}
    try:
        day = date.fromisoformat(request.GET.get("date") or "")
    except ValueError:
        if request.GET.get("date"):
            context["date_error"] = "date: expected YYYY-MM-DD"
        day = trade_date_of(timezone.now())
    context["day"] = day
    if account is None:
        return render(request, "portfolio/journal.html", context)
    start = datetime.combine(day, datetime.min.time(), tzinfo=exchange_zone())
    records = list(
        islice(
            trade_records_iter(
                user=request.user,
                account_id=account.account_id,
                since=start,
                until=start + timedelta(days=1),
                include_open=False,
            ),
            RECORDS_SHOWN + 1,
        )
    )
    context.update(
        account=account,
        currency=account.base_currency,
        trades=list(journal_list(user=request.user, day=day, account_id=account.account_id)),
        records=records[:RECORDS_SHOWN],
        more_records=len(records) > RECORDS_SHOWN,
        risk_events=list(RiskEvent.objects.filter(account=account, as_of=day).order_by("-created_at", "-id")[:50]),
        all_time=metrics_get(account=account, window=MetricsWindow.ALL),
        last_20=metrics_get(account=account, window=MetricsWindow.LAST_20),
        previous_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
    )
    return render(request, "portfolio/journal.html", context)
