"""Cash-account rules through the order service: no credit (cash available) and good-faith violations."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from trading.models import AccountType, OrderStatus
from trading.services.accounts import paper_account_create
from trading.services.orders import OrderInput, order_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def cash_account(clock, trader, settings):
    settings.MAX_POSITION_PCT = Decimal(2)  # this test is about cash, not position size
    return paper_account_create(
        account_id="PCASH",
        cash=Decimal(10000),
        account_type=AccountType.CASH,
        members=[trader],
        at=datetime(2026, 12, 1, 14, tzinfo=UTC),
    )


def order(account, cid, side, quantity):
    return order_execute(
        account=account, data=OrderInput(client_order_id=cid, symbol="AAPL", side=side, quantity=Decimal(quantity))
    ).order


def failed(o) -> list[str]:
    return [c["name"] for c in o.checks if not c["passed"]]


def test_a_buy_costing_more_than_the_cash_available_is_refused(cash_account, aapl):
    # 100.00 ask: 99 shares cost 9,900 (+1.00 commission) of 10,000; 101 would cost 10,100
    assert failed(order(cash_account, "too-much", "BUY", "101")) == ["cash_available"]
    assert order(cash_account, "fits", "BUY", "99").status == OrderStatus.FILLED
    # What is left (99.00) buys no more share at 100.00: no credit in a cash account.
    assert failed(order(cash_account, "again", "BUY", "1")) == ["cash_available"]


def test_selling_shares_bought_with_unsettled_proceeds_is_a_good_faith_violation(cash_account, aapl, settings):
    assert order(cash_account, "b1", "BUY", "50").status == OrderStatus.FILLED  # paid with settled cash
    assert order(cash_account, "s1", "SELL", "50").status == OrderStatus.FILLED  # proceeds settle T+1
    # Buying with those unsettled proceeds is allowed (cash available counts them) ...
    assert order(cash_account, "b2", "BUY", "90").status == OrderStatus.FILLED
    # ... selling that purchase before they settle is not.
    refused = order(cash_account, "s2", "SELL", "90")
    assert failed(refused) == ["good_faith"]
    assert "good-faith violation" in " ".join(refused.reject_reasons)
    settings.CASH_ACCOUNT_BLOCK_GFV = False
    assert order(cash_account, "s3", "SELL", "90").status == OrderStatus.FILLED


def test_open_buy_orders_hold_their_cash(cash_account, aapl):
    resting = order_execute(
        account=cash_account,
        data=OrderInput(
            client_order_id="rest",
            symbol="AAPL",
            side="BUY",
            quantity=Decimal(50),
            order_type="LMT",
            limit_price=Decimal(95),
        ),
    ).order
    assert resting.status == OrderStatus.SUBMITTED  # holds 50 x 95 = 4,750 of 10,000
    assert failed(order(cash_account, "over", "BUY", "53")) == ["cash_available"]  # 5,300 > 5,250
    assert order(cash_account, "under", "BUY", "52").status == OrderStatus.FILLED  # 5,200
