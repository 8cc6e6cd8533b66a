"""The Orders page: the order ticket (checks shown before sending, the API's validation), the lifecycle."""

from decimal import Decimal

import pytest

from tests.factories import UserFactory
from trading.models import Order, OrderStatus, RiskAction, RiskEvent, RiskEventKind, RiskSeverity

pytestmark = pytest.mark.django_db

TICKET = {"client_order_id": "t-1", "symbol": "AAPL", "side": "BUY", "quantity": "10", "order_type": "MKT"}


@pytest.fixture
def page(client, trader, paper_account, aapl):
    client.force_login(trader)
    return client


def test_check_shows_every_check_and_stores_nothing(page):
    answer = page.post("/orders/?account=PAPER1", {**TICKET, "check": "1"})
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "Checks before sending" in text and "position_size" in text and "circuit_breaker" in text
    assert not Order.objects.exists()


def test_send_places_the_order_and_the_list_shows_it(page):
    answer = page.post("/orders/?account=PAPER1", {**TICKET, "send": "1"}, follow=True)
    assert Order.objects.get().status == OrderStatus.FILLED
    assert "t-1" in answer.content.decode() and "Filled" in answer.content.decode()


def test_a_refused_order_shows_its_reasons(page):
    page.post("/orders/?account=PAPER1", {**TICKET, "quantity": "20000", "send": "1"})
    text = page.get("/orders/?account=PAPER1&status=REJECTED").content.decode()
    assert "quantity: quantity 20000 is more than MAX_ORDER_QUANTITY" in text


def test_malformed_input_names_the_field(page):
    text = page.post("/orders/?account=PAPER1", {**TICKET, "order_type": "LMT", "check": "1"}).content.decode()
    assert "required for a LMT order" in text
    assert not Order.objects.exists()


def test_the_breaker_banner(page, paper_account, clock):
    RiskEvent.objects.create(
        account=paper_account,
        kind=RiskEventKind.CIRCUIT_BREAKER_TRIP,
        severity=RiskSeverity.CRITICAL,
        action=RiskAction.TRADING_PAUSED,
        value=Decimal(5),
        threshold=Decimal(5),
        as_of=clock.now.date(),
        message="5 losing round trips in a row (RISK_MAX_CONSECUTIVE_LOSSES)",
    )
    text = page.get("/orders/?account=PAPER1").content.decode()
    assert "Opening orders paused since 2026-12-08 15:00 UTC: 5 losing round trips in a row" in text


def test_another_traders_orders_are_not_shown(client, page):
    page.post("/orders/?account=PAPER1", {**TICKET, "send": "1"})
    client.force_login(UserFactory())
    text = client.get("/orders/?account=PAPER1").content.decode()
    assert "<td>t-1</td>" not in text and "PAPER1" not in text
