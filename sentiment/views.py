"""The Sentiment page: the user's held symbols first, then every symbol with recent sentiment.

For the chosen symbol: hourly sentiment beside the stored daily closes, mentions, the posts that moved
it, options flow and patterns, and the confluence score with its components. Held symbols come from
the apps above through ``sentiment.hooks`` (sentiment imports neither trading nor portfolio). A fixed
number of queries, whatever the number of posts, prints or hours.
"""

import re

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sentiment.api.serializers import SYMBOL
from sentiment.hooks import held_symbols
from sentiment.selectors import sentiment_page_get


@login_required
def sentiment_page(request: HttpRequest) -> HttpResponse:
    wanted = request.GET.get("symbol", "").strip()
    symbol = wanted.upper() if re.match(SYMBOL, wanted) else None
    page = sentiment_page_get(held=held_symbols(request.user), symbol=symbol)
    chart = {
        "hours": [cell["hour"].isoformat() for cell in page.hourly],
        "sentiment": [None if c["weighted_compound"] is None else float(c["weighted_compound"]) for c in page.hourly],
        "mentions": [cell["mentions"] for cell in page.hourly],
        "days": [start.isoformat() for start, _ in page.prices],
        "closes": [float(close) for _, close in page.prices],
        "confluence_hours": [s.hour.isoformat() for s in reversed(page.confluence_history)],
        "confluence": [float(s.score) for s in reversed(page.confluence_history)],
    }
    return render(
        request,
        "sentiment/sentiment.html",
        {"page": page, "chart": chart, "bad_symbol": bool(wanted) and symbol is None, "wanted": wanted},
    )
