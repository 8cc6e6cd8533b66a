"""The market-data sync: gap-free against the NYSE calendar, revisions, malformed bars, outages."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from core.brokers import BrokerUnavailable
from core.brokers.base import PacingViolation
from core.brokers.memory import MemoryBroker
from core.calendars import nyse_sessions, session_close, session_open
from core.models import SkipReason, SyncKind, SyncStatus
from marketdata.models import Bar, Quote
from marketdata.services.sync import bar_gaps, market_data_sync
from tests.factories import BrokerBarFactory, BrokerQuoteFactory, InstrumentFactory, WatchedInstrumentFactory

pytestmark = pytest.mark.django_db

THANKSGIVING = date(2026, 11, 26)  # NYSE closed
EARLY_CLOSE = date(2026, 11, 27)  # the day after: 13:00 New York


def daily(symbol: str, day: date, close: str = "100", **kwargs) -> object:
    price = Decimal(close)
    values = {"open": price, "high": price + 1, "low": price - 1, "close": price, "volume": Decimal(1000), **kwargs}
    return BrokerBarFactory(
        symbol=symbol, bar_size="1d", start=datetime(day.year, day.month, day.day, tzinfo=UTC), **values
    )


def intraday(symbol: str, day: date, bar_size: str, step: timedelta) -> list:
    """Every regular-hours bar of the session: the first at the open, then on the step's boundaries."""
    bars, start, close = [], session_open(day), session_close(day)
    while start < close:
        bars.append(
            BrokerBarFactory(
                symbol=symbol,
                bar_size=bar_size,
                start=start,
                open=Decimal(10),
                high=Decimal(11),
                low=Decimal(9),
                close=Decimal(10),
                volume=Decimal(5),
            )
        )
        seconds = int(step.total_seconds())
        start = datetime.fromtimestamp((int(start.timestamp()) // seconds + 1) * seconds, tz=UTC)
    return bars


def broker_with(**kwargs) -> MemoryBroker:
    return MemoryBroker(accounts=[], **kwargs)


@pytest.fixture
def aapl():
    return WatchedInstrumentFactory(instrument=InstrumentFactory(symbol="AAPL"), bar_sizes=["1d"]).instrument


def test_daily_bars_skip_the_holiday_and_a_second_sync_asks_nothing(aapl):
    sessions = nyse_sessions(date(2026, 11, 23), date(2026, 11, 30))
    assert THANKSGIVING not in sessions and len(sessions) == 5
    broker = broker_with(bars=[daily("AAPL", d) for d in sessions])
    now = datetime(2026, 11, 30, 22, tzinfo=UTC)  # after Monday's close

    run = market_data_sync(broker=broker, since=date(2026, 11, 23), now=now, quotes=False)

    assert (run.kind, run.status, run.created) == (SyncKind.MARKET_DATA, SyncStatus.SUCCESS, 5)
    assert [r[:2] for r in broker.bar_requests] == [("AAPL", "1d")]
    assert sorted(Bar.objects.values_list("start", flat=True)) == [
        datetime(d.year, d.month, d.day, tzinfo=UTC) for d in sessions
    ]
    broker.bar_requests.clear()
    again = market_data_sync(broker=broker, since=date(2026, 11, 23), now=now + timedelta(hours=1), quotes=False)
    assert broker.bar_requests == []  # nothing missing: the holiday is not a gap
    assert (again.status, again.created, again.updated) == (SyncStatus.SUCCESS, 0, 0)
    assert not [w for w in again.warnings if w.startswith("gap:")]


def test_an_early_close_expects_fewer_intraday_bars():
    instrument = InstrumentFactory(symbol="MSFT")
    bars = intraday("MSFT", EARLY_CLOSE, "5m", timedelta(minutes=5))
    assert len(bars) == 42  # 09:30-13:00 New York
    now = datetime(2026, 11, 27, 22, tzinfo=UTC)

    assert bar_gaps(instrument_id=instrument.pk, bar_size="5m", since=THANKSGIVING, now=now) == [
        (session_open(EARLY_CLOSE), session_close(EARLY_CLOSE))
    ]
    broker = broker_with(bars=bars)
    run = market_data_sync(broker=broker, symbols=["MSFT"], bar_sizes=["5m"], since=THANKSGIVING, now=now, quotes=False)

    assert run.created == 42
    assert bar_gaps(instrument_id=instrument.pk, bar_size="5m", since=THANKSGIVING, now=now) == []


def test_hourly_bars_start_at_the_open_then_on_the_hour_and_only_the_missing_session_is_asked():
    instrument = InstrumentFactory(symbol="NVDA")
    days = [date(2026, 11, 24), date(2026, 11, 25), EARLY_CLOSE]
    every = {d: intraday("NVDA", d, "1h", timedelta(hours=1)) for d in days}
    assert [len(every[d]) for d in days] == [7, 7, 4]
    now = datetime(2026, 11, 30, 1, tzinfo=UTC)  # Sunday evening in New York
    # The first and the last session are stored; the middle one is not.
    market_data_sync(
        broker=broker_with(bars=every[days[0]] + every[days[2]]),
        symbols=["NVDA"],
        bar_sizes=["1h"],
        since=days[0],
        now=now,
        quotes=False,
    )
    broker = broker_with(bars=[b for d in days for b in every[d]])

    run = market_data_sync(broker=broker, symbols=["NVDA"], bar_sizes=["1h"], since=days[0], now=now, quotes=False)

    assert [(r[2], r[3]) for r in broker.bar_requests] == [(session_open(days[1]), session_close(days[1]))]
    assert (run.created, Bar.objects.filter(instrument=instrument).count()) == (7, 18)


def test_the_forming_bar_is_asked_again_and_a_revised_bar_is_updated_the_others_untouched(aapl):
    monday = date(2026, 11, 30)
    during = datetime(2026, 11, 30, 16, tzinfo=UTC)  # 11:00 New York
    broker = broker_with(bars=[daily("AAPL", date(2026, 11, 27)), daily("AAPL", monday, close="100")])
    market_data_sync(broker=broker, since=date(2026, 11, 27), now=during, quotes=False)
    friday = Bar.objects.get(start__date=date(2026, 11, 27))
    broker.bar_rows[("AAPL", "1d")][1] = daily("AAPL", monday, close="101.5")  # the day went on
    broker.bar_requests.clear()

    run = market_data_sync(broker=broker, since=date(2026, 11, 27), now=during + timedelta(hours=7), quotes=False)

    assert [r[2] for r in broker.bar_requests] == [datetime(2026, 11, 30, tzinfo=UTC)]  # Monday only
    assert (run.created, run.updated) == (0, 1)
    assert Bar.objects.get(start__date=monday).close == Decimal("101.5")
    assert Bar.objects.get(pk=friday.pk).fetched_at == friday.fetched_at  # not rewritten


def test_a_malformed_bar_is_skipped_with_a_warning_naming_it_and_the_rest_stored(aapl):
    good = daily("AAPL", date(2026, 11, 24))
    bad = daily("AAPL", date(2026, 11, 25), high=Decimal(90), low=Decimal(95))
    outside = BrokerBarFactory(
        symbol="AAPL",
        start=datetime(2026, 11, 27, tzinfo=UTC),
        open=Decimal(200),
        high=Decimal(110),
        low=Decimal(100),
        close=Decimal(105),
    )
    run = market_data_sync(
        broker=broker_with(bars=[good, bad, outside]),
        since=date(2026, 11, 24),
        now=datetime(2026, 11, 27, 22, tzinfo=UTC),
        quotes=False,
    )

    assert (run.status, run.created) == (SyncStatus.SUCCESS, 1)
    assert any("AAPL 1d 2026-11-25T00:00:00+00:00: high 90 is below low 95" in w for w in run.warnings)
    assert any("AAPL 1d 2026-11-27T00:00:00+00:00: open 200 is outside" in w for w in run.warnings)


def test_a_pacing_refusal_leaves_the_gap_for_the_next_run(aapl):
    broker = broker_with(bars=[daily("AAPL", date(2026, 11, 24))])
    broker.failures["bars"] = PacingViolation(
        "error 162: historical market data service error message: pacing violation"
    )
    now = datetime(2026, 11, 24, 22, tzinfo=UTC)

    run = market_data_sync(broker=broker, since=date(2026, 11, 24), now=now, quotes=False)

    assert (run.status, run.created) == (SyncStatus.SUCCESS, 0)
    assert any(w.startswith("gap: AAPL 1d") and "left for the next run" in w for w in run.warnings)
    del broker.failures["bars"]
    assert market_data_sync(broker=broker, since=date(2026, 11, 24), now=now, quotes=False).created == 1


def test_the_broker_down_skips_the_run_and_changes_nothing(aapl):
    broker = broker_with(bars=[daily("AAPL", date(2026, 11, 24))], quotes=[BrokerQuoteFactory()])
    broker.failures["bars"] = BrokerUnavailable("gateway down")

    run = market_data_sync(broker=broker, since=date(2026, 11, 24), now=datetime(2026, 11, 24, 22, tzinfo=UTC))

    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.BROKER_UNREACHABLE)
    assert not Bar.objects.exists() and not Quote.objects.exists()


def test_quotes_of_watched_and_implicitly_watched_instruments_are_stored(aapl, monkeypatch):
    held = InstrumentFactory(symbol="AMD")
    monkeypatch.setattr("marketdata.services.sync.implicitly_watched_ids", lambda: {held.pk})
    broker = broker_with(quotes=[BrokerQuoteFactory(), BrokerQuoteFactory(symbol="AMD", last=Decimal("150"))])

    run = market_data_sync(broker=broker, bars=False)

    assert run.status == SyncStatus.SUCCESS
    assert dict(Quote.objects.values_list("instrument__symbol", "last")) == {
        "AAPL": Decimal("155.10"),
        "AMD": Decimal("150"),
    }
