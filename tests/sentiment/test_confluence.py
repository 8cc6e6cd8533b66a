"""Confluence: the weighted mean of sentiment, options flow and momentum, with missing components."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from marketdata.models import Bar
from sentiment.models import AggregatedSentiment, ConfluenceScore, OptionsFlow
from sentiment.services.confluence import confluence_compute
from tests.factories import InstrumentFactory

pytestmark = pytest.mark.django_db
HOUR = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 10:00 in New York


def _sentiment(symbol: str, value: str) -> None:
    AggregatedSentiment.objects.create(
        symbol=symbol, window="24h", as_of=HOUR + timedelta(hours=1), mentions=3, bullish=1, neutral=1, bearish=1,
        weighted_compound=Decimal(value), computed_at=HOUR,
    )  # fmt: skip


def _print(symbol: str, pid: str, direction: str, premium: str) -> None:
    OptionsFlow.objects.create(
        source="file", print_id=pid, time=HOUR + timedelta(minutes=10), session=HOUR.date(), underlying=symbol,
        expiry="2026-12-18", strike=150, right="C", size=1, price=1, premium=Decimal(premium), side="BOUGHT",
        direction=direction, fetched_at=HOUR,
    )  # fmt: skip


def _bars(symbol: str) -> None:
    instrument = InstrumentFactory(symbol=symbol)
    for i in range(20):
        close = Decimal(110) if i == 19 else Decimal(100)
        Bar.objects.create(
            instrument=instrument, bar_size="1d", start=HOUR - timedelta(days=20 - i, hours=15), open=close,
            high=close + 1, low=close - 1, close=close, volume=1000, source="test", fetched_at=HOUR,
        )  # fmt: skip


def test_all_three_components():
    _sentiment("AAPL", "0.5")
    _print("AAPL", "a", "BULLISH", "3000")
    _print("AAPL", "b", "BEARISH", "1000")
    _bars("AAPL")
    confluence_compute(symbols=["AAPL"], hour=HOUR)
    stored = ConfluenceScore.objects.get(symbol="AAPL", hour=HOUR)
    assert stored.options_flow == Decimal("0.5")  # (3000 - 1000) / 4000
    assert stored.sentiment == Decimal("0.5")
    assert Decimal("0.99") < stored.momentum < 1
    assert stored.missing == []
    assert stored.score == ((Decimal("1") + stored.momentum) / 3 * 100).quantize(Decimal("0.01"))


def test_a_missing_component_is_left_out_and_named():
    _sentiment("TSLA", "-0.4")
    _print("TSLA", "a", "BEARISH", "1000")
    confluence_compute(symbols=["TSLA"], hour=HOUR)
    stored = ConfluenceScore.objects.get(symbol="TSLA")
    assert stored.missing == ["momentum"]  # no stored daily bars
    assert stored.momentum is None
    assert stored.score == Decimal("-70.00")  # mean of -0.4 and -1


def test_no_component_at_all_writes_nothing_and_running_twice_doubles_nothing():
    _sentiment("AAPL", "0.2")
    confluence_compute(symbols=["AAPL", "NONE"], hour=HOUR)
    confluence_compute(symbols=["AAPL", "NONE"], hour=HOUR)
    assert list(ConfluenceScore.objects.values_list("symbol", "score")) == [("AAPL", Decimal("20.00"))]


def test_weights_are_settings(settings):
    settings.CONFLUENCE_WEIGHT_SENTIMENT = Decimal(3)
    _sentiment("AAPL", "1")
    _print("AAPL", "b", "BEARISH", "1000")
    confluence_compute(symbols=["AAPL"], hour=HOUR)
    assert ConfluenceScore.objects.get().score == Decimal("50.00")


def test_compute_confluence_command(capsys):
    call_command("compute_confluence", "--symbol", "aapl")
    assert "SUCCESS: 0 symbols scored" in capsys.readouterr().out
