"""Closing a paper trade by hand: a closing order through the normal order path, exit reason MANUAL."""

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.factories import UserFactory
from tests.trading.test_signals import quote, signal_input
from trading.models import Order, OrderStatus, PaperTrade, PaperTradeStatus, SignalStatus
from trading.services.signals import (
    PaperTradeClosed,
    paper_trade_close_by_hand,
    paper_trades_monitor,
    signal_create,
    signal_execute,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def opened(paper_account, aapl, clock):
    signal, _ = signal_create(account=paper_account, data=signal_input())
    return PaperTrade.objects.get(signal=signal_execute(signal=signal))


@pytest.fixture
def api(client, trader):
    client.force_login(trader)
    return client


def close_url(trade) -> str:
    return f"/api/trading/paper-trades/{trade.pk}/close"


def test_manual_close_sells_at_the_bid_through_the_order_path(api, opened, clock):
    clock.set(clock.now + timedelta(minutes=3))
    quote("101.50", "101.60", clock.now)
    paper_trades_monitor()  # stores the price the trader sees: it becomes the decision price
    answer = api.post(close_url(opened))
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["status"] == "MANUAL" and body["exit_reason"] == "MANUAL" and body["exit_price"] == "101.50000000"
    trade = PaperTrade.objects.select_related("exit_order", "signal").get(pk=opened.pk)
    exit_order = trade.exit_order
    assert exit_order.side == "SELL" and exit_order.status == OrderStatus.FILLED
    assert all(c["passed"] for c in exit_order.checks)  # judged by every check like any order
    assert exit_order.decision_price == Decimal("101.50") and exit_order.slippage == 0
    # 100 x (101.50 - 100.00) less both commissions (1.00 each: the minimum)
    assert trade.realized_pnl == Decimal("148.00") and trade.exit_date.isoformat() == "2026-12-08"
    assert trade.signal.status == SignalStatus.CLOSED
    assert "Closed by hand" in exit_order.reasoning


def test_closing_twice_is_409_and_places_no_second_order(api, opened, clock):
    assert api.post(close_url(opened)).status_code == 200
    orders = Order.objects.count()
    again = api.post(close_url(opened))
    assert again.status_code == 409 and "closed already" in again.json()["detail"]
    assert Order.objects.count() == orders


def test_a_refused_closing_order_is_422_and_the_trade_stays_open(api, opened, clock):
    clock.set(clock.now + timedelta(minutes=5))  # the stored quote is now stale: no fresh quote
    answer = api.post(close_url(opened))
    assert answer.status_code == 422
    body = answer.json()
    assert body["status"] == "OPEN" and "no fresh quote" in body["exit_note"]
    quote("100.20", "100.30", clock.now)
    assert api.post(close_url(opened)).json()["status"] == "MANUAL"  # a second attempt, a new order
    assert Order.objects.filter(client_order_id__startswith=f"pt-{opened.pk}-x").count() == 2


def test_another_traders_trade_is_403_and_an_unknown_one_404(client, opened):
    client.force_login(UserFactory())
    assert client.post(close_url(opened)).status_code == 403
    assert client.post("/api/trading/paper-trades/999999/close").status_code == 404
    assert PaperTrade.objects.get(pk=opened.pk).status == PaperTradeStatus.OPEN


def test_staff_may_close_any_trade(client, opened):
    client.force_login(UserFactory(staff=True))
    assert client.post(close_url(opened)).status_code == 200


def test_anonymous_is_refused(client, opened):
    assert client.post(close_url(opened)).status_code in (401, 403)


def test_a_close_by_the_monitor_between_the_read_and_the_lock_is_a_conflict(opened, clock):
    stale = PaperTrade.objects.select_related("exit_order").get(pk=opened.pk)  # read by the request: OPEN
    clock.set(clock.now + timedelta(minutes=1))
    quote("97.90", "98.00", clock.now)
    paper_trades_monitor()  # the stop closes it first
    with pytest.raises(PaperTradeClosed, match="closed already"):
        paper_trade_close_by_hand(trade=stale)
    assert PaperTrade.objects.get(pk=opened.pk).status == PaperTradeStatus.STOP_LOSS
    assert Order.objects.filter(side="SELL").count() == 1
