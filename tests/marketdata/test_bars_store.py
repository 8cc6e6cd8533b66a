"""Storing bars from broker answers: created, revised, unchanged (not rewritten), duplicates, exact values.

Run on SQLite and on PostgreSQL (there the store is a COPY and one upsert statement).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from marketdata.models import Bar
from marketdata.services import bars_store
from tests.factories import BrokerBarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

OPEN = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
EARLIER = datetime(2026, 11, 1, tzinfo=UTC)


def minute_bars(symbol: str, count: int, *, first: datetime = OPEN, **values) -> list:
    prices = {"open": Decimal(10), "high": Decimal(11), "low": Decimal(9), "close": Decimal(10), **values}
    return [
        BrokerBarFactory(symbol=symbol, bar_size="1m", start=first + timedelta(minutes=n), volume=Decimal(5), **prices)
        for n in range(count)
    ]


def store_queries() -> int:
    """Queries of one bars_store call of bars already stored, inside the test's transaction (a savepoint and
    its release, then): PostgreSQL creates and empties the staging table and, after the COPY (which Django
    does not count), asks whether the answer's windows hold stored bars (they do) and runs the one upsert
    statement; SQLite reads the stored bars once per series (two here) and updates the revised one."""
    return 6 if connection.vendor == "postgresql" else 5


def test_new_bars_are_created_then_the_same_again_are_left_alone():
    aapl = InstrumentFactory(symbol="AAPL")
    bars = minute_bars("AAPL", 30)
    first = bars_store(bars=[(aapl.pk, b) for b in bars], source="test", now=EARLIER)
    assert (first.created, first.updated, first.unchanged) == (30, 0, 0)

    again = bars_store(bars=[(aapl.pk, b) for b in bars], source="again", now=OPEN)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 30)
    # Not rewritten: neither the source nor the fetch time moved.
    assert set(Bar.objects.values_list("source", "fetched_at").distinct()) == {("test", EARLIER)}


def test_a_revised_bar_is_updated_and_only_it(django_assert_num_queries):
    aapl, msft = InstrumentFactory(symbol="AAPL"), InstrumentFactory(symbol="MSFT")
    bars = {i.pk: minute_bars(i.symbol, 10) for i in (aapl, msft)}
    bars_store(bars=[(pk, b) for pk, series in bars.items() for b in series], source="test", now=EARLIER)
    revised = BrokerBarFactory(
        symbol="MSFT",
        bar_size="1m",
        start=OPEN + timedelta(minutes=4),
        open=Decimal(10),
        high=Decimal("11.5"),
        low=Decimal(9),
        close=Decimal("11.25"),
        volume=Decimal(7),
    )
    answer = [(aapl.pk, b) for b in bars[aapl.pk]] + [(msft.pk, b) for b in bars[msft.pk][:4]] + [(msft.pk, revised)]
    with django_assert_num_queries(store_queries()):
        result = bars_store(bars=answer, source="revised", now=OPEN)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 14)
    row = Bar.objects.get(instrument=msft, start=OPEN + timedelta(minutes=4))
    assert (row.high, row.close, row.volume, row.source, row.fetched_at) == (
        Decimal("11.5"),
        Decimal("11.25"),
        Decimal(7),
        "revised",
        OPEN,
    )
    assert Bar.objects.filter(source="revised").count() == 1
    assert Bar.objects.count() == 20


def test_a_bar_given_twice_counts_once_and_the_later_wins():
    aapl = InstrumentFactory(symbol="AAPL")
    early, late = minute_bars("AAPL", 1), minute_bars("AAPL", 1, close=Decimal("10.5"))
    result = bars_store(bars=[(aapl.pk, early[0]), (aapl.pk, late[0])], source="test")
    assert (result.created, result.updated, result.unchanged) == (1, 0, 0)
    assert Bar.objects.get().close == Decimal("10.5")


def test_decimals_and_times_are_stored_exactly():
    aapl = InstrumentFactory(symbol="AAPL")
    start = datetime(2026, 11, 30, 14, 30, 0, 123457, tzinfo=UTC)
    price = Decimal("123.45678901")
    bar = BrokerBarFactory(
        symbol="AAPL",
        bar_size="1m",
        start=start,
        open=price,
        high=price,
        low=price,
        close=price,
        volume=Decimal("0.00000001"),
        wap=None,
        trade_count=None,
    )
    bars_store(bars=[(aapl.pk, bar)], source="test")
    row = Bar.objects.get()
    assert (row.start, row.open, row.volume, row.wap, row.trade_count) == (
        start,
        price,
        Decimal("0.00000001"),
        None,
        None,
    )
    again = bars_store(bars=[(aapl.pk, bar)], source="test")
    assert again.unchanged == 1


def test_a_malformed_bar_is_skipped_with_a_warning_naming_it(caplog):
    aapl = InstrumentFactory(symbol="AAPL")
    good = minute_bars("AAPL", 2)
    bad = minute_bars("AAPL", 1, first=OPEN + timedelta(minutes=5), high=Decimal(8))[0]
    result = bars_store(bars=[(aapl.pk, good[0]), (aapl.pk, bad), (aapl.pk, good[1])], source="test")
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    assert result.warnings == ["bar AAPL 1m 2026-11-30T14:35:00+00:00: high 8 is below low 9; skipped"]
    assert "AAPL 1m 2026-11-30T14:35:00+00:00" in caplog.text


def test_a_new_window_beside_stored_bars_is_stored_and_the_stored_ones_are_left_alone():
    aapl = InstrumentFactory(symbol="AAPL")
    day_one = minute_bars("AAPL", 5)
    day_two = minute_bars("AAPL", 5, first=OPEN + timedelta(days=1))
    bars_store(bars=[(aapl.pk, b) for b in day_one], source="first", now=EARLIER)
    result = bars_store(bars=[(aapl.pk, b) for b in day_two], source="second", now=OPEN)
    assert (result.created, result.updated, result.unchanged) == (5, 0, 0)
    assert sorted(Bar.objects.values_list("source", flat=True)) == ["first"] * 5 + ["second"] * 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plain INSERT of new windows is PostgreSQL's")
def test_a_window_filled_meanwhile_by_another_writer_falls_back_to_the_upsert(monkeypatch):
    """Another writer may store bars of the window between the check and the plain INSERT: the unique
    key refuses the INSERT, nothing of it stays, and the upsert stores the answer (here: the check is
    made to say "empty" while the window holds every bar, one of them revised)."""
    from marketdata.services import bars as bars_module

    aapl = InstrumentFactory(symbol="AAPL")
    bars = minute_bars("AAPL", 3)
    bars_store(bars=[(aapl.pk, b) for b in bars], source="first", now=EARLIER)
    monkeypatch.setattr(bars_module, "_windows_occupied", lambda cursor, windows: False)
    revised = minute_bars("AAPL", 1, first=OPEN + timedelta(minutes=2), close=Decimal("10.5"))[0]
    result = bars_store(bars=[(aapl.pk, bars[0]), (aapl.pk, bars[1]), (aapl.pk, revised)], source="again", now=OPEN)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    assert Bar.objects.count() == 3
    assert Bar.objects.get(start=OPEN + timedelta(minutes=2)).close == Decimal("10.5")
    assert Bar.objects.filter(source="first").count() == 2


def test_a_bar_given_twice_between_another_series_bars_counts_once_and_the_later_wins():
    """The series come interleaved, so neither is in one rising run: the store must still find the twice-given bar."""
    aapl, msft = InstrumentFactory(symbol="AAPL"), InstrumentFactory(symbol="MSFT")
    early, late = minute_bars("AAPL", 1), minute_bars("AAPL", 1, close=Decimal("10.5"))
    other = minute_bars("MSFT", 2)
    answer = [(aapl.pk, early[0]), (msft.pk, other[0]), (aapl.pk, late[0]), (msft.pk, other[1])]
    result = bars_store(bars=answer, source="test")
    assert (result.created, result.updated, result.unchanged) == (3, 0, 0)
    assert Bar.objects.get(instrument=aapl).close == Decimal("10.5")
    assert Bar.objects.filter(instrument=msft).count() == 2
