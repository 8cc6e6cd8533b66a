"""Performance: the metrics of the selected account (all time and last 20 round trips) and its charts."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portfolio.models import MetricsWindow
from portfolio.selectors import metrics_get, performance_series_get
from portfolio.templatetags.money import signed_money, signed_percent
from portfolio.views.common import account_choice


@login_required
def performance(request: HttpRequest) -> HttpResponse:
    choice = account_choice(request)
    account = choice.selected
    context: dict = {"choice": choice}
    if account is not None:
        series = performance_series_get(account=account)
        context.update(
            account=account,
            currency=account.base_currency,
            all_time=metrics_get(account=account, window=MetricsWindow.ALL),
            last_20=metrics_get(account=account, window=MetricsWindow.LAST_20),
            has_series=bool(series.points),
            # Embedded with json_script (numbers as strings) rather than fetched: one request, no API round trip.
            # The hover labels are written here by the template filters, so the charts say what the tables say.
            chart_data={
                "account": account.account_id,
                "currency": account.base_currency,
                "points": [{**p, "twr_text": signed_percent(p["twr"])} for p in series.points],
                "monthly_pnl": [
                    {**m, "pnl_text": signed_money(m["pnl"], account.base_currency)} for m in series.monthly_pnl
                ],
            },
        )
    return render(request, "portfolio/performance.html", context)
