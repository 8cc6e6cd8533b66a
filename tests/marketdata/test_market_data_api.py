"""GET /api/market-data/quote/{symbol} and /api/market-data/bars/{symbol}."""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core.brokers.memory import MemoryBroker
from marketdata.api.serializers import BarSerializer
from marketdata.models import Bar
from marketdata.selectors import quote_get
from marketdata.services import quotes_store
from marketdata.services.sync import market_data_sync
from tests.factories import BarFactory, BrokerQuoteFactory, InstrumentFactory, QuoteFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    api = APIClient()
    api.force_authenticate(UserFactory())  # any logged-in user: market data is not account-private
    return api


def test_quote_from_the_cache_then_from_the_database_when_the_cache_is_gone(client, django_capture_on_commit_callbacks):
    aapl = InstrumentFactory(symbol="AAPL")
    with django_capture_on_commit_callbacks(execute=True):
        quotes_store(quotes=[(aapl.pk, BrokerQuoteFactory(at=None))], source="simulated")

    cached = client.get("/api/market-data/quote/aapl")
    assert cached.status_code == 200
    body = cached.json()
    assert (body["symbol"], body["bid"], body["ask"], body["last"], body["source"]) == (
        "AAPL",
        "155.05000000",
        "155.12000000",
        "155.10000000",
        "cache",
    )
    assert body["age_seconds"] < 60
    cache.clear()
    assert client.get("/api/market-data/quote/AAPL").json()["source"] == "database"


def test_the_broker_down_still_answers_the_stored_quote_marked_stale_while_the_market_is_open(client):
    QuoteFactory(instrument=InstrumentFactory(symbol="AAPL"), at=datetime(2026, 11, 30, 15, tzinfo=UTC))
    broker = MemoryBroker(accounts=[])
    broker.failures["quote"] = ConnectionError("never asked")
    cache.clear()

    in_session = quote_get(symbol="AAPL", now=datetime(2026, 11, 30, 15, 5, tzinfo=UTC))  # 10:05 New York
    closed = quote_get(symbol="AAPL", now=datetime(2026, 11, 30, 23, tzinfo=UTC))
    barely = quote_get(symbol="AAPL", now=datetime(2026, 11, 30, 15, 1, tzinfo=UTC))

    assert (in_session.stale, in_session.age_seconds, in_session.source) == (True, 300.0, "database")
    assert closed.stale is False  # after the close the last quote is the close: not stale
    assert barely.stale is False  # exactly QUOTE_STALE_AFTER old is not older than it
    assert client.get("/api/market-data/quote/AAPL").status_code == 200


def test_unknown_symbol_is_a_404_naming_it(client):
    response = client.get("/api/market-data/quote/NOPE")
    assert response.status_code == 404
    assert "NOPE" in response.json()["detail"]
    assert "NOPE" in client.get("/api/market-data/bars/NOPE").json()["detail"]


def test_market_data_needs_a_login():
    assert APIClient().get("/api/market-data/quote/AAPL").status_code in (401, 403)
    assert APIClient().get("/api/market-data/bars/AAPL").status_code in (401, 403)


def test_bars_in_time_order_cursor_paginated_decimals_as_strings(client):
    aapl = InstrumentFactory(symbol="AAPL")
    start = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
    for i in reversed(range(5)):
        BarFactory(instrument=aapl, bar_size="1m", start=start + timedelta(minutes=i), close=Decimal("155.1"))
    BarFactory(instrument=aapl, bar_size="1d", start=datetime(2026, 11, 30, tzinfo=UTC))

    first = client.get("/api/market-data/bars/AAPL", {"bar_size": "1m", "page_size": 2}).json()
    second = client.get(first["next"]).json()

    assert [b["start"] for b in first["results"]] == ["2026-11-30T14:30:00Z", "2026-11-30T14:31:00Z"]
    assert [b["start"] for b in second["results"]] == ["2026-11-30T14:32:00Z", "2026-11-30T14:33:00Z"]
    assert first["results"][0]["close"] == "155.10000000"
    window = client.get(
        "/api/market-data/bars/AAPL",
        {"bar_size": "1m", "since": "2026-11-30T14:31:00Z", "until": "2026-11-30T14:33:00Z"},
    ).json()
    assert len(window["results"]) == 2
    assert len(client.get("/api/market-data/bars/AAPL").json()["results"]) == 1  # 1d by default


@pytest.mark.parametrize(
    ("params", "named"),
    [({"bar_size": "2m"}, "bar_size"), ({"since": "yesterday"}, "since"), ({"until": "2026-13-01"}, "until")],
)
def test_bad_bars_parameters_are_a_400_naming_the_parameter(client, params, named):
    InstrumentFactory(symbol="AAPL")
    response = client.get("/api/market-data/bars/AAPL", params)
    assert response.status_code == 400
    assert named in response.json()


def test_the_bars_api_takes_a_constant_number_of_queries(client, django_assert_num_queries):
    aapl = InstrumentFactory(symbol="AAPL")
    for i in range(30):
        BarFactory(
            instrument=aapl, bar_size="1m", start=datetime(2026, 11, 30, 14, 30, tzinfo=UTC) + timedelta(minutes=i)
        )
    with django_assert_num_queries(2):  # the instrument, one page of bars (force_authenticate: no session)
        client.get("/api/market-data/bars/AAPL", {"bar_size": "1m"})


def test_a_stored_quote_answers_after_a_sync_even_with_the_cache_emptied(client):
    InstrumentFactory(symbol="AAPL")
    market_data_sync(
        broker=MemoryBroker(accounts=[], quotes=[BrokerQuoteFactory(at=timezone.now())]), symbols=["AAPL"], bars=False
    )
    cache.clear()
    assert client.get("/api/market-data/quote/AAPL").json()["last"] == "155.10000000"


def test_a_bar_reads_the_same_on_every_database_fractions_nulls_and_all_places(client):
    """PostgreSQL writes the texts itself (to_char, numeric's text): they must be what the Python
    formatting of SQLite's rows writes."""
    aapl = InstrumentFactory(symbol="AAPL")
    whole, fraction = datetime(2026, 11, 30, 14, 30, tzinfo=UTC), datetime(2026, 11, 30, 14, 31, 5, 1200, tzinfo=UTC)
    BarFactory(
        instrument=aapl,
        bar_size="1m",
        start=fraction,
        open=Decimal("12345.12345678"),
        high=Decimal("12346"),
        low=Decimal("0.00000001"),
        close=Decimal("100"),
        volume=Decimal("0"),
        wap=None,
        trade_count=None,
    )
    BarFactory(instrument=aapl, bar_size="1m", start=whole, wap=Decimal("150.5"), trade_count=42)

    page = client.get("/api/market-data/bars/AAPL", {"bar_size": "1m", "page_size": 1}).json()
    following = client.get(page["next"]).json()
    back = client.get(following["previous"]).json()

    assert page["results"][0]["start"] == "2026-11-30T14:30:00Z"
    assert (page["results"][0]["wap"], page["results"][0]["trade_count"]) == ("150.50000000", 42)
    assert following["results"] == [
        {
            "start": "2026-11-30T14:31:05.001200Z",
            "open": "12345.12345678",
            "high": "12346.00000000",
            "low": "0.00000001",
            "close": "100.00000000",
            "volume": "0.00000000",
            "wap": None,
            "trade_count": None,
        }
    ]
    assert back["results"] == page["results"]


def test_the_bars_pages_are_what_the_bar_serializer_writes_row_by_row(client):
    """The page is written from value tuples, not by BarSerializer per row: every page, followed by its
    cursor links forwards and back, must hold exactly what the serializer writes for the same bars."""
    aapl = InstrumentFactory(symbol="AAPL")
    start = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
    for i in range(23):
        BarFactory(
            instrument=aapl,
            bar_size="1m",
            start=start + timedelta(minutes=i, microseconds=(i % 3) * 250_001),
            open=Decimal("1234.5") + Decimal(i) / 7,
            high=Decimal("99999999.12345678") if i == 5 else Decimal("1300"),
            low=Decimal("0.00000001") * (i + 1),
            close=Decimal("1250") - Decimal(i),
            volume=Decimal(i * 1_000_003),
            wap=None if i % 2 else Decimal("1240.25"),
            trade_count=None if i % 4 == 0 else i * 11,
        )
    BarFactory(instrument=aapl, bar_size="1d", start=datetime(2026, 11, 30, tzinfo=UTC))
    expected = [dict(row) for row in BarSerializer(Bar.objects.filter(bar_size="1m").order_by("start"), many=True).data]

    pages = [client.get("/api/market-data/bars/AAPL", {"bar_size": "1m", "page_size": 5}).json()]
    while pages[-1]["next"]:
        pages.append(client.get(pages[-1]["next"]).json())
    assert [row for page in pages for row in page["results"]] == expected
    assert pages[0]["previous"] is None and len(pages) == 5
    for earlier, later in itertools.pairwise(pages):
        assert client.get(later["previous"]).json()["results"] == earlier["results"]


def test_a_logged_in_api_request_reads_its_session_from_the_cache(django_assert_num_queries):
    """Sessions are cached (``cached_db``): a logged-in request costs the user's query, not the session's;
    the session is still in the database, so emptying the cache logs nobody out."""
    user = UserFactory()
    browser = Client()
    browser.force_login(user)
    aapl = InstrumentFactory(symbol="AAPL")
    BarFactory(instrument=aapl, bar_size="1d")
    with django_assert_num_queries(3):  # the user, the instrument, one page of bars
        assert browser.get("/api/market-data/bars/AAPL").status_code == 200
    cache.clear()
    with django_assert_num_queries(4):  # the session from the database once (and cached again)
        assert browser.get("/api/market-data/bars/AAPL").status_code == 200
    with django_assert_num_queries(3):
        assert browser.get("/api/market-data/bars/AAPL").status_code == 200
    assert Session.objects.filter(session_key=browser.session.session_key).exists()
    browser.logout()
    assert browser.get("/api/market-data/bars/AAPL").status_code in (401, 403)
