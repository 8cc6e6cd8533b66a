"""The market-data sync through the real IBKR adapter, over a socket, against the IB Gateway simulator."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core.brokers import get_broker
from core.models import HistoricalRequest, SyncStatus
from marketdata.models import Bar, Quote
from marketdata.services.sync import market_data_sync

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime(2026, 11, 20, 22, tzinfo=UTC)


def test_daily_bars_and_the_quote_of_a_new_symbol_through_the_gateway(gateway):
    broker = get_broker()

    run = market_data_sync(broker=broker, symbols=["AAPL"], since=date(2026, 11, 19), now=NOW)

    assert run.status == SyncStatus.SUCCESS, run.message
    bar = Bar.objects.get()
    # IBKR dates a daily bar in the exchange's zone: it is kept as that date's midnight UTC.
    assert (bar.start, bar.close, bar.source) == (datetime(2026, 11, 19, tzinfo=UTC), Decimal("155.1"), "ibkr")
    assert bar.wap is not None  # IBKR's average: the simulator sends (high + low + close) / 3
    quote = Quote.objects.get()
    assert (quote.bid, quote.ask, quote.delayed) == (Decimal("155.05"), Decimal("155.12"), False)
    # Every historical request took a slot of the shared pacing budget.
    assert HistoricalRequest.objects.count() == len([w for w in run.warnings if "gap:" in w]) + 1


def test_a_pacing_violation_at_ibkr_is_left_for_the_next_run(gateway):
    message = "Historical Market Data Service error message:API historical data query cancelled: pacing violation"
    gateway.faults(historical_data={"errors": [{"code": 162, "message": message}]})

    run = market_data_sync(broker=get_broker(), symbols=["AAPL"], since=date(2026, 11, 19), now=NOW, quotes=False)

    assert run.status == SyncStatus.SUCCESS
    assert any("left for the next run" in w and "162" in w for w in run.warnings), run.warnings
    assert not Bar.objects.exists()
    gateway.faults()
    # The same request again within 15 s would wait for its pacing slot: as if those 15 s had passed.
    HistoricalRequest.objects.all().delete()
    assert (
        market_data_sync(broker=get_broker(), symbols=["AAPL"], since=date(2026, 11, 19), now=NOW, quotes=False).created
        == 1
    )
