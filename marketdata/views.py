"""The Market data page: what is watched, how far its bars reach, its quote, the last runs and gaps."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from marketdata.selectors import market_data_overview


@login_required
def market_data(request: HttpRequest) -> HttpResponse:
    return render(request, "marketdata/market_data.html", {"overview": market_data_overview()})
