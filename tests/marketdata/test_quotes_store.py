"""quotes_store: one row per instrument, cached, the hook told after commit about changed quotes only."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.cache import cache

from marketdata import hooks
from marketdata.models import Quote
from marketdata.quote_cache import quote_cache_key
from marketdata.services import quotes_store
from tests.factories import BrokerQuoteFactory, InstrumentFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 21, tzinfo=UTC)


@pytest.fixture
def heard(monkeypatch):
    calls: list[list[int]] = []
    monkeypatch.setattr(hooks, "_after_quotes", [calls.append])
    return calls


def test_a_new_quote_is_stored_cached_and_announced_after_commit(heard, django_capture_on_commit_callbacks):
    cache.clear()
    aapl = InstrumentFactory(symbol="AAPL")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = quotes_store(
            quotes=[(aapl.pk, BrokerQuoteFactory(bid_size=Decimal(300), delayed=True))], source="ibkr", now=NOW
        )
    assert heard == []  # nothing before the commit
    for callback in callbacks:
        callback()

    assert result.created == [aapl.pk] and heard == [[aapl.pk]]
    quote = Quote.objects.get(instrument=aapl)
    assert (quote.bid, quote.bid_size, quote.delayed, quote.source, quote.fetched_at) == (
        Decimal("155.05"),
        Decimal(300),
        True,
        "ibkr",
        NOW,
    )
    assert cache.get(quote_cache_key("AAPL"))["last"] == "155.10000000"


def test_an_unchanged_quote_is_not_announced_and_a_changed_one_is(heard, django_capture_on_commit_callbacks):
    aapl = InstrumentFactory(symbol="AAPL")
    with django_capture_on_commit_callbacks(execute=True):
        quotes_store(quotes=[(aapl.pk, BrokerQuoteFactory())], source="simulated", now=NOW)
    heard.clear()

    with django_capture_on_commit_callbacks(execute=True):
        same = quotes_store(quotes=[(aapl.pk, BrokerQuoteFactory())], source="simulated", now=NOW)
    assert (same.unchanged, heard) == ([aapl.pk], [])

    with django_capture_on_commit_callbacks(execute=True):
        moved = quotes_store(quotes=[(aapl.pk, BrokerQuoteFactory(last=Decimal("156")))], source="simulated", now=NOW)
    assert (moved.updated, heard) == ([aapl.pk], [[aapl.pk]])
    assert Quote.objects.count() == 1


def test_an_option_quote_is_stored_but_not_cached_under_the_stock_symbol(django_capture_on_commit_callbacks):
    cache.clear()
    option = InstrumentFactory(symbol="SPY", option=True)
    with django_capture_on_commit_callbacks(execute=True):
        quotes_store(quotes=[(option.pk, BrokerQuoteFactory(symbol="SPY", last=Decimal("4.8")))], source="x", now=NOW)
    assert Quote.objects.get(instrument=option).last == Decimal("4.8")
    assert cache.get(quote_cache_key("SPY")) is None
