"""Stored exchange rates and conversion to base currency (domain-rules.md "Currencies")."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from marketdata.fx import FxTable, fx_rates_store
from marketdata.models import FxRate

pytestmark = pytest.mark.django_db


def test_domain_rules_example_unrealized_in_base_is_216_not_200():
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.16")}, day=date(2026, 12, 4), source="simulated")
    table = FxTable.load(base="USD", currencies=["USD", "EUR"])
    total = table.total([(Decimal("100"), "USD", None), (Decimal("100"), "EUR", None)])
    assert total.amount == Decimal("216.00")
    assert total.fx_missing == []


def test_a_missing_rate_leaves_the_figure_empty_and_flagged_never_one():
    table = FxTable.load(base="USD", currencies=["GBP"])
    converted = table.convert(Decimal("100"), "GBP")
    assert converted.amount_base is None and converted.missing
    total = table.total([(Decimal("100"), "USD", None), (Decimal("100"), "GBP", None)])
    assert total.amount is None
    assert total.known == Decimal("100")
    assert total.fx_missing == ["GBP"]


def test_dated_lookup_takes_the_rate_of_that_day_or_the_last_before_it_within_the_max_age(settings):
    settings.FX_RATE_MAX_AGE_DAYS = 7
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.10")}, day=date(2026, 11, 2), source="history")
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.20")}, day=date(2026, 11, 6), source="history")
    table = FxTable.load(base="USD", currencies=["EUR"], since=date(2026, 11, 3), until=date(2026, 11, 30))
    assert table.rate("EUR", date(2026, 11, 2)).rate == Decimal("1.10")  # reached back by the max age
    assert table.rate("EUR", date(2026, 11, 5)).rate == Decimal("1.10")
    assert table.rate("EUR", datetime(2026, 11, 6, 15, tzinfo=UTC)).rate == Decimal("1.20")
    assert table.rate("EUR", date(2026, 11, 13)).rate == Decimal("1.20")  # 7 days later: still usable
    assert table.rate("EUR", date(2026, 11, 14)) is None  # 8 days: too old
    assert table.rate("EUR", date(2026, 11, 1)) is None  # nothing before the first day
    assert table.rate("EUR").rate == Decimal("1.20")  # current: the latest


def test_the_base_currency_converts_at_exactly_one_and_needs_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        table = FxTable.load(base="usd", currencies=["USD"])
        assert table.convert(Decimal("12.34"), "usd").amount_base == Decimal("12.34")


def test_store_upserts_a_day_and_skips_bad_rates_with_a_warning(caplog):
    day = date(2026, 12, 4)
    assert (
        fx_rates_store(base="USD", rates={"EUR": "1.16", "JPY": "0", "USD": "1", "XX": "2"}, day=day, source="a") == 1
    )
    assert fx_rates_store(base="USD", rates={"EUR": "1.17"}, day=day, source="b") == 1
    row = FxRate.objects.get()
    assert (row.currency, row.rate, row.source) == ("EUR", Decimal("1.17"), "b")
    assert "JPY/USD" in caplog.text and "'XX'" in caplog.text


def test_table_load_is_one_query(django_assert_num_queries):
    fx_rates_store(base="USD", rates={"EUR": "1.16", "GBP": "1.27"}, day=date(2026, 12, 4), source="a")
    with django_assert_num_queries(1):
        table = FxTable.load(base="USD", currencies=["EUR", "GBP", "USD"])
    assert table.convert(Decimal("10"), "GBP").amount_base == Decimal("12.70")
