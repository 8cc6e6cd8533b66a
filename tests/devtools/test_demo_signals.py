"""The demo's signals: one executed into an open paper trade through the order path, the others GENERATED."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.brokers.contracts import InstrumentSpec
from devtools.demo_signals import demo_signals_create
from marketdata.models import Quote
from marketdata.services import instrument_get_or_create
from tests.factories import QuoteFactory
from trading.calendars import trade_date_of
from trading.models import OrderStatus, PaperTradeStatus, SignalStatus
from trading.services.accounts import paper_account_create

pytestmark = pytest.mark.django_db
PRICES = {"AAPL": Decimal("228.00"), "MSFT": Decimal("415.00"), "NVDA": Decimal("135.00")}


@pytest.mark.parametrize(
    ("now", "entry_at"),
    [
        (datetime(2026, 12, 8, 16, 0, tzinfo=UTC), datetime(2026, 12, 8, 16, 0, tzinfo=UTC)),  # market open
        (datetime(2026, 12, 8, 23, 0, tzinfo=UTC), datetime(2026, 12, 8, 15, 30, tzinfo=UTC)),  # after the close
    ],
)
def test_demo_signals(now, entry_at):
    account = paper_account_create(account_id="PAPER-DEMO", cash=Decimal(100_000), at=datetime(2026, 12, 1, tzinfo=UTC))
    aapl = instrument_get_or_create(spec=InstrumentSpec(symbol="AAPL"))
    QuoteFactory(instrument=aapl, bid=Decimal("229.99"), ask=Decimal("230.00"), at=now, fetched_at=now)
    signals = demo_signals_create(account=account, now=now, prices=PRICES)
    assert [s.status for s in signals] == [SignalStatus.EXECUTED, SignalStatus.GENERATED, SignalStatus.GENERATED]
    assert all(trade_date_of(s.created_at) == trade_date_of(now) for s in signals)
    executed = signals[0]
    executed.refresh_from_db()
    assert executed.order.status == OrderStatus.FILLED and all(c["passed"] for c in executed.order.checks)
    trade = executed.paper_trade
    assert trade.status == PaperTradeStatus.OPEN and trade.opened_at == entry_at
    assert Quote.objects.get(instrument=aapl).at == now  # the newer stored quote is put back
    again = demo_signals_create(account=account, now=now, prices=PRICES)
    assert [s.pk for s in again] == [s.pk for s in signals]  # once a day
