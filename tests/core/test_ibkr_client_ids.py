"""Every live IBKR connection borrows its own client id from the pool (IBKR_CLIENT_IDS)."""

import pytest
from ib_async import Position

from core.brokers import BrokerUnavailable, client_id_lease, get_broker
from core.brokers.ibkr import IBKRBroker
from core.locks import lock_acquire, lock_release
from tests.core.test_ibkr_broker import FakeIB, aapl

pytestmark = pytest.mark.django_db


def broker_with(fake: FakeIB, pool: list[int]) -> IBKRBroker:
    return IBKRBroker(
        host="127.0.0.1",
        port=4002,
        client_id=pool[0],
        account="DU1",
        ib_factory=lambda: fake,
        client_id_lease=lambda: client_id_lease(pool),
    )


def test_a_free_id_is_borrowed_and_returned():
    fake = FakeIB(accounts=["DU1"], positions=[Position("DU1", aapl(), 100.0, 150.25)])
    held = lock_acquire(name="ibkr.client_id.17")  # another process is connected with 17
    try:
        broker_with(fake, [17, 18]).positions("DU1")
    finally:
        lock_release(name="ibkr.client_id.17", token=held)
    (connect,) = fake.called("connectAsync")
    assert connect["clientId"] == 18
    assert lock_acquire(name="ibkr.client_id.18") is not None  # released after the call


def test_all_ids_in_use_is_broker_unavailable_without_connecting():
    fake = FakeIB(accounts=["DU1"])
    tokens = [lock_acquire(name=f"ibkr.client_id.{i}") for i in (17, 18)]
    try:
        with pytest.raises(BrokerUnavailable, match="IBKR_CLIENT_IDS"):
            broker_with(fake, [17, 18]).positions("DU1")
    finally:
        for i, token in zip((17, 18), tokens, strict=True):
            lock_release(name=f"ibkr.client_id.{i}", token=token)
    assert fake.called("connectAsync") == []


def test_get_broker_uses_the_configured_pool(settings):
    settings.BROKER = "ibkr"
    settings.IBKR_CLIENT_IDS = [30, 31]
    broker = get_broker()
    assert isinstance(broker, IBKRBroker) and broker.client_id_lease is not None
    with broker.client_id_lease() as client_id:
        assert client_id == 30


def test_client_ids_setting_parses_ranges_and_lists():
    from config.settings import _client_ids

    assert _client_ids("17-20") == [17, 18, 19, 20]
    assert _client_ids("17, 30-31") == [17, 30, 31]
