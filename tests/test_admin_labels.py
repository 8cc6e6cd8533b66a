"""The admin index names every model in plain English: no "metricss" or "matchs" from a naive plural."""

import pytest
from django.contrib import admin

PROJECT_APPS = {"core", "marketdata", "trading", "portfolio", "sentiment", "devtools"}


def _registered() -> dict[str, str]:
    return {
        model._meta.label: str(model._meta.verbose_name_plural)
        for model in admin.site._registry
        if model._meta.app_label in PROJECT_APPS
    }


@pytest.mark.parametrize(
    ("label", "plural"),
    [
        ("portfolio.PerformanceMetrics", "performance metrics"),
        ("portfolio.AccountStatus", "account statuses"),
        ("trading.LotMatch", "lot matches"),
        ("trading.SettlementTracking", "settlement tracking"),
        ("trading.TradeFrequencyTracking", "trade frequency tracking"),
    ],
)
def test_irregular_plurals_are_spelled_out(label, plural):
    assert _registered()[label] == plural


def test_no_admin_label_has_a_naive_plural():
    odd = {
        label: plural
        for label, plural in _registered().items()
        if plural.endswith(("ss", "chs", "shs", "xs", "trackings", "statuss"))
    }
    assert odd == {}
