"""Live orders through the broker boundary (the in-memory broker): placed once, followed, cancelled,
never doubled by a lost answer or a worker killed between sending and storing."""

from datetime import timedelta
from decimal import Decimal

import pytest

from core.brokers.base import BrokerAccount, BrokerUnavailable
from core.brokers.memory import MemoryBroker
from core.brokers.simulated import SimulatedBroker
from portfolio.models import AccountStatus
from tests.factories import AccountFactory
from trading.models import Execution, OrderEvent, OrderStatus
from trading.selectors import order_fills
from trading.services.executions import executions_ingest
from trading.services.orders import OrderInput, order_cancel, order_execute, orders_status_sync

pytestmark = pytest.mark.django_db


class Killed(BaseException):
    """The worker died: nothing after this point runs (not an Exception: no handler catches it)."""


class KilledAfterPlacing(MemoryBroker):
    def place_order(self, request):
        super().place_order(request)
        raise Killed


@pytest.fixture
def live(settings, trader, clock, aapl):
    settings.LIVE_TRADING_ENABLED = True
    settings.BROKER = "simulated"
    account = AccountFactory(account_id="DU1", users=[trader])
    AccountStatus.objects.create(account=account, net_liquidation=Decimal(1_000_000), read_at=clock.now)
    return account


@pytest.fixture
def broker():
    return MemoryBroker(accounts=[BrokerAccount("DU1", "MARGIN", "USD")], fill_prices={"AAPL": Decimal("100.02")})


def place(account, broker, cid="L1", **kwargs):
    values = {"client_order_id": cid, "symbol": "AAPL", "side": "BUY", "quantity": Decimal(10)}
    values.update(kwargs)
    return order_execute(account=account, data=OrderInput(**values), broker=broker).order


def test_a_live_round_trip_placed_once_with_the_brokers_ids_and_its_fill_matched_by_perm_id(live, broker):
    order = place(live, broker, decision_price=Decimal(100))
    assert order.status == OrderStatus.FILLED and order.mode == "LIVE"
    assert order.broker_order_id == 1 and order.perm_id == 900_000_001
    assert order.average_fill_price == Decimal("100.02") and order.slippage == Decimal("0.02")
    assert [e.to_status for e in order.events.order_by("id")] == ["PENDING", "FILLED"]
    request, _ = broker.placed[1]
    assert request.order_ref == "L1" and request.account_id == "DU1"
    executions_ingest(account=live, broker=broker)  # the fill arrives by the executions ingest
    fills = list(order_fills(order=order))
    assert [f.exec_id for f in fills] == ["MEM.900000001.1"]
    assert place(live, broker).pk == order.pk and len(broker.placed) == 1  # the same id again: nothing sent


def test_live_trading_off_or_read_only_sends_nothing(live, broker, settings):
    settings.LIVE_TRADING_ENABLED = False
    assert place(live, broker, cid="off").status == OrderStatus.REJECTED
    settings.LIVE_TRADING_ENABLED = True
    settings.BROKER, settings.IBKR_READONLY = "ibkr", True
    refused = place(live, broker, cid="ro")
    assert refused.status == OrderStatus.REJECTED and "read-only" in " ".join(refused.reject_reasons)
    assert broker.placed == {}


def test_a_lost_answer_is_looked_up_by_its_reference_not_sent_again(live, broker):
    broker.fail_next_place = BrokerUnavailable("timed out after 15 s")
    order = place(live, broker, order_type="LMT", limit_price=Decimal("99.50"))
    assert order.status == OrderStatus.SUBMITTED and order.broker_order_id == 1
    assert len(broker.placed) == 1


def test_a_worker_killed_between_sending_and_storing_is_reconciled_not_duplicated(live, clock):
    broker = KilledAfterPlacing(accounts=[BrokerAccount("DU1", "MARGIN", "USD")], fill_prices={"AAPL": Decimal(100)})
    with pytest.raises(Killed):
        place(live, broker)
    from trading.models import Order

    stuck = Order.objects.get()
    assert stuck.status == OrderStatus.PENDING and stuck.sent_at is not None
    clock.set(clock.now + timedelta(seconds=30))
    assert orders_status_sync(account=live, broker=broker) == 1
    stuck.refresh_from_db()
    assert stuck.status == OrderStatus.FILLED and stuck.perm_id == 900_000_001
    assert len(broker.placed) == 1
    assert OrderEvent.objects.filter(order=stuck, source="STATUS_SYNC").count() == 1


def test_an_order_the_broker_never_got_becomes_error_after_the_grace(live, broker, clock):
    class DiesBeforeSending(MemoryBroker):
        def place_order(self, request):
            raise Killed

    with pytest.raises(Killed):
        place(live, DiesBeforeSending(accounts=[BrokerAccount("DU1", "MARGIN", "USD")]))
    from trading.models import Order

    clock.set(clock.now + timedelta(seconds=30))
    assert orders_status_sync(account=live, broker=broker) == 0  # not yet: it may still be on its way
    clock.set(clock.now + timedelta(minutes=3))
    assert orders_status_sync(account=live, broker=broker) == 1
    order = Order.objects.get()
    assert order.status == OrderStatus.ERROR and "never reached the broker" in order.broker_message


def test_a_broker_refusal_is_error_with_its_code_and_text(live, broker):
    broker.refuse_with = (201, "Order rejected - reason: insufficient margin")
    order = place(live, broker)
    assert order.status == OrderStatus.ERROR
    assert (order.broker_code, order.broker_message) == (201, "Order rejected - reason: insufficient margin")


def test_the_simulated_broker_refuses_live_orders_clearly(live, settings, broker_state):
    order = place(live, SimulatedBroker(settings.BROKER_STATE_FILE))
    assert order.status == OrderStatus.ERROR and "takes no orders" in order.broker_message
    assert not Execution.objects.exists()


def test_cancel_a_resting_live_order_through_the_broker(live, broker):
    order = place(live, broker, order_type="LMT", limit_price=Decimal("99.50"))
    assert order.status == OrderStatus.SUBMITTED
    cancelled = order_cancel(order=order, broker=broker)
    assert cancelled.status == OrderStatus.CANCELLED
    assert broker.placed[1][1].status == "CANCELLED"


def test_refresh_asks_the_broker_now(client, trader, live, broker, monkeypatch):
    from core.brokers.base import BrokerUnavailable as Unavailable

    order = place(live, broker, order_type="LMT", limit_price=Decimal("99.50"))
    request, ack = broker.placed[1]
    from dataclasses import replace as dc_replace

    broker.placed[1] = (
        request,
        dc_replace(ack, status="FILLED", filled=Decimal(10), average_fill_price=Decimal("99.50")),
    )
    monkeypatch.setattr("trading.api.views.get_broker", lambda: broker)
    client.force_login(trader)
    answer = client.post(f"/api/trading/orders/{order.pk}/refresh")
    assert answer.status_code == 200 and answer.json()["status"] == "FILLED"
    assert [e["source"] for e in answer.json()["events"]][-1] == "STATUS_SYNC"

    other = place(live, broker, cid="L2", order_type="LMT", limit_price=Decimal("99.50"))

    def down():
        raise Unavailable("gateway down")

    monkeypatch.setattr(broker, "orders", lambda account_id: down())
    assert client.post(f"/api/trading/orders/{other.pk}/refresh").status_code == 503
