"""50 concurrent requests with the same client_order_id make exactly one order and one fill (PostgreSQL)."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from trading.models import Execution, Order, OrderStatus
from trading.services.orders import OrderInput, order_execute

REQUESTS = 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_requests_with_one_client_order_id_make_one_order(paper_account, aapl):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: concurrent writers on one database")
    barrier = threading.Barrier(REQUESTS)
    outcomes, errors = [], []
    lock = threading.Lock()

    def request() -> None:
        try:
            barrier.wait(timeout=60)
            outcome = order_execute(
                account=paper_account,
                data=OrderInput(client_order_id="same", symbol="AAPL", side="BUY", quantity=Decimal(10)),
            )
            with lock:
                outcomes.append((outcome.order.pk, outcome.created, outcome.order.status))
        except Exception as exc:
            with lock:
                errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=request) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert len(outcomes) == REQUESTS
    assert len({pk for pk, _, _ in outcomes}) == 1
    assert sum(created for _, created, _ in outcomes) == 1
    assert Order.objects.count() == 1
    assert Order.objects.get().status == OrderStatus.FILLED
    assert Execution.objects.count() == 1
