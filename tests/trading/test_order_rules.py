"""Every order risk check of domain-rules.md, passing and refusing at its boundary (pure rules)."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from trading.rules.orders import (
    Limits,
    OrderFacts,
    PaperOrder,
    QuoteFacts,
    order_checks,
    paper_commission,
    paper_fill_price,
    reducing,
    reference_price,
    slippage,
)

D = Decimal
NOW = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York: market open
LIMITS = Limits(
    max_quantity=D(10000),
    quote_stale_after=60,
    max_price_deviation=D("0.10"),
    max_position_pct=D("0.10"),
    max_trades_per_day=0,
    max_trades_per_week=0,
    pdt_min_equity=D(25000),
    block_good_faith=True,
)
QUOTE = QuoteFacts(bid=D("99.90"), ask=D("100.00"), last=D("99.95"), at=NOW - timedelta(seconds=5))
BASE = OrderFacts(
    side="BUY",
    quantity=D(10),
    order_type="MKT",
    limit_price=None,
    stop_price=None,
    symbol="AAPL",
    sec_type="STK",
    expiry=None,
    strike=None,
    right="",
    multiplier=D(1),
    now=NOW,
    market_open=True,
    quote=QUOTE,
    net_liquidation=D(100000),
)


def check(facts: OrderFacts, name: str, limits: Limits = LIMITS):
    return next(c for c in order_checks(facts, limits) if c.name == name)


def test_a_plain_order_passes_every_check():
    checks = order_checks(BASE, LIMITS)
    assert [c.name for c in checks if not c.passed] == []
    assert len(checks) == 12


def test_every_failed_check_is_named_not_only_the_first():
    facts = replace(BASE, quantity=D(20000), quote=None, breaker="paused: daily loss", live_refusal="live off")
    failed = [c.name for c in order_checks(facts, LIMITS) if not c.passed]
    assert failed == ["quantity", "live_trading", "quote", "position_size", "circuit_breaker"]


@pytest.mark.parametrize(
    ("quantity", "passed"),
    [(D(0), False), (D("-1"), False), (D("0.00000001"), True), (D(10000), True), (D("10000.00000001"), False)],
)
def test_quantity_is_more_than_zero_and_at_most_the_maximum(quantity, passed):
    facts = replace(BASE, quantity=quantity, net_liquidation=D(10) ** 12)
    assert check(facts, "quantity").passed is passed


@pytest.mark.parametrize(
    ("symbol", "passed"),
    [("A", True), ("ABCDE", True), ("BRK.B", True), ("ABCDEF", False), ("", False), ("brk b", False), ("A-B", False)],
)
def test_a_stock_symbol_is_one_to_five_letters_with_an_optional_class(symbol, passed):
    assert check(replace(BASE, symbol=symbol), "contract").passed is passed


def test_an_option_carries_expiry_strike_and_right():
    option = replace(BASE, sec_type="OPT", expiry=date(2026, 12, 18), strike=D(600), right="C", multiplier=D(100))
    assert check(option, "contract").passed
    refused = check(replace(option, strike=None, right=""), "contract")
    assert not refused.passed and "strike, right" in refused.message
    assert not check(replace(option, expiry=date(2026, 12, 7)), "contract").passed


def test_reference_price_is_the_limit_for_a_limit_order_else_the_quote_side():
    assert reference_price(BASE) == D("100.00")  # ask for a buy
    assert reference_price(replace(BASE, side="SELL")) == D("99.90")  # bid for a sell
    no_sides = replace(BASE, quote=replace(QUOTE, bid=None, ask=None))
    assert reference_price(no_sides) == D("99.95")  # last
    assert reference_price(replace(BASE, order_type="LMT", limit_price=D("99.50"))) == D("99.50")


@pytest.mark.parametrize(("age", "passed"), [(0, True), (60, True), (61, False)])
def test_no_quote_younger_than_quote_stale_after_while_open_is_refused(age, passed):
    facts = replace(BASE, quote=replace(QUOTE, at=NOW - timedelta(seconds=age)))
    result = check(facts, "quote")
    assert result.passed is passed
    if not passed:
        assert "no fresh quote" in result.message


def test_no_quote_at_all_is_refused_while_open():
    result = check(replace(BASE, quote=None), "quote")
    assert not result.passed and "no fresh quote" in result.message


def test_market_closed_an_old_quote_prices_the_order():
    facts = replace(BASE, market_open=False, quote=replace(QUOTE, at=NOW - timedelta(hours=16)))
    assert check(facts, "quote").passed
    assert not check(replace(facts, quote=None), "quote").passed  # nothing to price a market order
    assert check(replace(facts, quote=None, order_type="LMT", limit_price=D(100)), "quote").passed


@pytest.mark.parametrize(
    ("limit", "passed"), [(D(110), True), (D(90), True), (D("110.01"), False), (D("89.99"), False)]
)
def test_fat_finger_a_limit_more_than_ten_percent_from_the_quote_is_refused(limit, passed):
    facts = replace(BASE, order_type="LMT", limit_price=limit)  # quote for a buy: ask 100.00
    assert check(facts, "price_deviation").passed is passed


def test_fat_finger_applies_to_a_stop_price_too():
    facts = replace(BASE, order_type="STP", stop_price=D(111))
    assert not check(facts, "price_deviation").passed


@pytest.mark.parametrize(("quantity", "passed"), [(D(100), True), (D("100.00000001"), False)])
def test_position_size_at_most_ten_percent_of_net_liquidation(quantity, passed):
    # 100 x 100.00 = 10,000 = 10% of 100,000
    assert check(replace(BASE, quantity=quantity), "position_size").passed is passed


def test_position_size_counts_the_existing_position():
    facts = replace(BASE, position_quantity=D(50), position_price=D(100))
    assert check(replace(facts, quantity=D(50)), "position_size").passed
    assert not check(replace(facts, quantity=D(51)), "position_size").passed


def test_an_order_that_only_reduces_or_closes_always_passes_position_size():
    facts = replace(BASE, side="SELL", quantity=D(5000), position_quantity=D(5000), position_price=D(100))
    assert check(facts, "position_size").passed  # 500,000 held in a 100,000 account: closing is fine
    flipping = replace(facts, quantity=D(10000))  # flips to short 5,000: it is sized like any opening
    assert not check(flipping, "position_size").passed


def test_position_size_without_net_liquidation_is_refused():
    assert not check(replace(BASE, net_liquidation=None), "position_size").passed


def test_reducing():
    assert reducing(D(10), D(-10)) and reducing(D(-10), D(4))
    assert not reducing(D(10), D(-11)) and not reducing(D(0), D(-1)) and not reducing(D(10), D(1))


def test_circuit_breaker_pauses_opening_orders_but_closing_orders_pass():
    paused = replace(BASE, breaker="Opening orders paused since 2026-12-08 14:00 UTC: daily loss")
    result = check(paused, "circuit_breaker")
    assert not result.passed and "paused" in result.message
    closing = replace(paused, side="SELL", position_quantity=D(10), position_price=D(100))
    assert check(closing, "circuit_breaker").passed


def _pdt(**kwargs) -> OrderFacts:
    values = dict(
        side="SELL",
        position_quantity=D(10),
        legacy_pdt=True,
        completes_day_trade=True,
        day_trades_left=0,
        equity=D("24999.99"),
    )
    values.update(kwargs)
    return replace(BASE, **values)


def test_pdt_refuses_a_day_trade_with_none_left_under_25000():
    result = check(_pdt(), "pattern_day_trader")
    assert not result.passed and "no day trades left" in result.message


@pytest.mark.parametrize(
    "change",
    [
        {"equity": D(25000)},
        {"day_trades_left": 1},
        {"day_trades_left": -1},
        {"completes_day_trade": False},
        {"legacy_pdt": False},
    ],
)
def test_pdt_passes_at_each_boundary(change):
    assert check(_pdt(**change), "pattern_day_trader").passed


@pytest.mark.parametrize(("available", "passed"), [(D("1000.00"), True), (D("999.99"), False)])
def test_cash_account_buy_costing_more_than_the_cash_available_is_refused(available, passed):
    facts = replace(BASE, cash_account=True, cash_available=available)  # 10 x 100.00
    assert check(facts, "cash_available").passed is passed


def test_cash_rules_do_not_apply_to_a_margin_account_or_a_sale():
    assert check(replace(BASE, cash_available=D(0)), "cash_available").passed
    assert check(replace(BASE, side="SELL", cash_account=True, cash_available=D(0)), "cash_available").passed


def test_good_faith_violation_is_refused_unless_the_setting_allows_it():
    facts = replace(BASE, side="SELL", cash_account=True, good_faith="bought with unsettled proceeds")
    assert not check(facts, "good_faith").passed
    assert check(facts, "good_faith", replace(LIMITS, block_good_faith=False)).passed
    assert check(replace(facts, good_faith=""), "good_faith").passed


@pytest.mark.parametrize(("done", "passed"), [(1, True), (2, False)])
def test_trades_per_day_limit(done, passed):
    limits = replace(LIMITS, max_trades_per_day=2)
    assert check(replace(BASE, trades_today=done), "trade_frequency", limits).passed is passed


@pytest.mark.parametrize(("done", "passed"), [(4, True), (5, False)])
def test_trades_per_week_limit(done, passed):
    limits = replace(LIMITS, max_trades_per_week=5)
    assert check(replace(BASE, trades_week=done), "trade_frequency", limits).passed is passed


def test_unlimited_trades_by_default():
    assert check(replace(BASE, trades_today=10_000, trades_week=10_000), "trade_frequency").passed


def test_live_refusal_is_a_failed_check_with_its_reason():
    result = check(replace(BASE, live_refusal="live trading is disabled"), "live_trading")
    assert not result.passed and result.message == "live trading is disabled"


# --- the paper engine ---------------------------------------------------------------------------
def test_market_order_fills_at_the_quote_side():
    assert paper_fill_price(PaperOrder("BUY", "MKT", None, None), QUOTE) == (D("100.00"), False)
    assert paper_fill_price(PaperOrder("SELL", "MKT", None, None), QUOTE) == (D("99.90"), False)


def test_limit_order_fills_at_its_limit_when_the_quote_crosses_it():
    assert paper_fill_price(PaperOrder("BUY", "LMT", D("99.99"), None), QUOTE) == (None, False)
    assert paper_fill_price(PaperOrder("BUY", "LMT", D("100.00"), None), QUOTE) == (D("100.00"), False)
    assert paper_fill_price(PaperOrder("SELL", "LMT", D("99.91"), None), QUOTE) == (None, False)
    assert paper_fill_price(PaperOrder("SELL", "LMT", D("99.90"), None), QUOTE) == (D("99.90"), False)


def test_stop_order_becomes_market_when_reached():
    assert paper_fill_price(PaperOrder("SELL", "STP", None, D("99.80")), QUOTE) == (None, False)
    assert paper_fill_price(PaperOrder("SELL", "STP", None, D("99.90")), QUOTE) == (D("99.90"), True)
    assert paper_fill_price(PaperOrder("BUY", "STP", None, D("100.00")), QUOTE) == (D("100.00"), True)


def test_stop_limit_is_triggered_then_fills_as_a_limit():
    order = PaperOrder("BUY", "STP_LMT", D("99.00"), D("100.00"))
    assert paper_fill_price(order, QUOTE) == (None, True)  # stop reached, limit not
    assert paper_fill_price(replace(order, stop_triggered=True), replace(QUOTE, ask=D(99))) == (D("99.00"), True)


@pytest.mark.parametrize(
    ("quantity", "price", "expected"),
    [
        (D(100), D(50), D("1.0000")),  # 0.50 per share -> the 1.00 minimum
        (D(1000), D(50), D("5.0000")),  # 0.005 x 1000
        (D(1), D(50), D("0.5000")),  # minimum 1.00 but at most 1% of 50.00
    ],
)
def test_paper_commission(quantity, price, expected):
    fee = paper_commission(
        quantity=quantity, price=price, multiplier=D(1), per_share=D("0.005"), minimum=D("1.00"), max_pct=D("0.01")
    )
    assert fee == expected


def test_slippage_is_positive_when_worse_for_the_trader():
    assert slippage(side="BUY", fill_price=D("100.05"), decision_price=D(100)) == D("0.05")
    assert slippage(side="SELL", fill_price=D("99.95"), decision_price=D(100)) == D("0.05")
    assert slippage(side="SELL", fill_price=D("100.10"), decision_price=D(100)) == D("-0.10")
    assert slippage(side="BUY", fill_price=D(1), decision_price=None) is None


# --- currencies (domain-rules.md "Currencies"): the order's value converts before it is compared ------
EUR_ORDER = replace(BASE, symbol="SAP", currency="EUR", base_currency="USD", fx_rate=D("1.16"))


def test_a_foreign_order_is_sized_in_base_at_the_rate():
    # 90 x 100.00 EUR = 9,000 EUR = 10,440 USD: over 10% of 100,000 USD, although 9,000 is not.
    facts = replace(EUR_ORDER, quantity=D(90))
    assert check(facts, "currency").passed
    sized = check(facts, "position_size")
    assert not sized.passed and "10,440.00" in sized.message
    assert check(replace(facts, quantity=D(86)), "position_size").passed  # 9,976 USD


def test_a_foreign_buy_in_a_cash_account_costs_its_base_value():
    facts = replace(EUR_ORDER, quantity=D(10), cash_account=True, cash_available=D(1100))
    assert not check(facts, "cash_available").passed  # 1,000 EUR = 1,160 USD > 1,100 USD
    assert check(replace(facts, cash_available=D(1160)), "cash_available").passed


def test_a_foreign_order_without_a_rate_is_refused_never_taken_at_one():
    facts = replace(EUR_ORDER, fx_rate=None)
    failed = {c.name: c.message for c in order_checks(facts, LIMITS) if not c.passed}
    assert set(failed) == {"currency", "position_size"}
    assert "no EUR/USD rate" in failed["currency"]


def test_a_paper_account_trades_in_its_base_currency_only():
    refused = check(replace(EUR_ORDER, paper=True), "currency")
    assert not refused.passed and "paper account" in refused.message and "EUR" in refused.message
    assert check(replace(BASE, paper=True), "currency").passed
