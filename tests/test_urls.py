"""URLs are the API contract: the portfolio endpoints published under /api/trading/ keep their paths and names."""

import pytest
from django.urls import resolve, reverse

from portfolio.api.views import PdtStatusApi, PortfolioSummaryApi


@pytest.mark.parametrize(
    ("name", "path", "view"),
    [
        ("api-pdt-status", "/api/trading/pdt-status", PdtStatusApi),
        ("api-portfolio-summary", "/api/trading/portfolio/summary", PortfolioSummaryApi),
    ],
)
def test_portfolio_endpoints_under_api_trading_keep_their_paths_and_names(name, path, view):
    assert reverse(name) == path
    match = resolve(path)
    assert (match.url_name, match.func.view_class) == (name, view)
