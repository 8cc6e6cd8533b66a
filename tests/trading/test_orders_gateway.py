"""A live order round trip through the IBKR adapter over the socket, against the IB Gateway simulator."""

from decimal import Decimal

import pytest

from core.brokers.contracts import InstrumentSpec
from marketdata.services import instrument_get_or_create
from portfolio.models import AccountStatus
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT
from tests.factories import AccountFactory, QuoteFactory
from trading.models import OrderStatus
from trading.selectors import order_fills
from trading.services.executions import executions_ingest
from trading.services.orders import OrderInput, order_cancel, order_execute, orders_status_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def live(gateway, settings, trader, clock):
    settings.LIVE_TRADING_ENABLED = True
    settings.IBKR_READONLY = False
    account = AccountFactory(account_id=ACCOUNT, users=[trader])
    AccountStatus.objects.create(account=account, net_liquidation=Decimal(1_000_000), read_at=clock.now)
    aapl = instrument_get_or_create(spec=InstrumentSpec(symbol="AAPL", con_id=265598))
    QuoteFactory(instrument=aapl, bid=Decimal("155.05"), ask=Decimal("155.12"), at=clock.now, fetched_at=clock.now)
    return account


def place(account, broker, cid, **kwargs):
    values = {"client_order_id": cid, "symbol": "AAPL", "side": "BUY", "quantity": Decimal(10)}
    values.update(kwargs)
    return order_execute(account=account, data=OrderInput(**values), broker=broker).order


def test_a_live_market_order_round_trip_over_the_gateway(live, gateway):
    broker = gateway.broker(readonly=False)
    order = place(live, broker, "gw-1", decision_price=Decimal("155.00"))
    assert order.status == OrderStatus.FILLED, order.broker_message
    assert order.perm_id and order.broker_order_id
    assert order.average_fill_price == Decimal("155.12")  # the simulator fills a market buy at the ask
    assert order.slippage == Decimal("0.12")
    # The fill arrives through the executions ingest and is matched to the order by perm id.
    executions_ingest(account=live, broker=broker)
    (fill,) = order_fills(order=order)
    assert fill.quantity == Decimal(10) and fill.price == Decimal("155.12")
    # The broker knows it by its reference (the client order id).
    listed = {ack.order_ref: ack for ack in broker.orders(ACCOUNT).items}
    assert listed["gw-1"].status == "FILLED" and listed["gw-1"].perm_id == order.perm_id
    assert orders_status_sync(account=live, broker=broker) == 0  # already final: nothing to follow


def test_a_resting_live_limit_order_is_followed_and_cancelled_over_the_gateway(live, gateway):
    broker = gateway.broker(readonly=False)
    order = place(live, broker, "gw-2", order_type="LMT", limit_price=Decimal("150.00"))
    assert order.status == OrderStatus.SUBMITTED, order.broker_message
    assert orders_status_sync(account=live, broker=broker) == 0
    cancelled = order_cancel(order=order, broker=broker)
    assert cancelled.status == OrderStatus.CANCELLED


def test_a_read_only_connection_places_nothing(live, gateway):
    order = place(live, gateway.broker(readonly=True), "gw-3")
    assert order.status == OrderStatus.ERROR and "read-only" in order.broker_message
    assert gateway.sim.orders == {}
