"""The Option Greeks rules (domain-rules.md, "Option Greeks"): pure, no database."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from portfolio.rules.greeks import (
    SOURCE_COMPUTED,
    RiskRow,
    bsm_greeks,
    days_to_expiry,
    expiry_close,
    portfolio_risk,
    position_greeks,
)

D = Decimal
# Hull, Options, Futures and Other Derivatives, examples 17.1-17.6: S 49, K 50, r 5%, T 20 weeks
# (0.3846 years), sigma 20%, no dividend; the call is worth 2.40.
HULL_DAYS = D("0.3846") * 365
HULL_PRICE = D("2.4005")


def hull_call(price: Decimal = HULL_PRICE, **overrides):
    kwargs = {
        "right": "C",
        "underlying_price": D(49),
        "strike": D(50),
        "days": HULL_DAYS,
        "option_price": price,
        "price_kind": "mid",
        "rate": D("0.05"),
        "dividend_yield": D(0),
    }
    return bsm_greeks(**(kwargs | overrides))


def test_the_domain_rules_example_long_two_spy_calls():
    values = position_greeks(
        delta=D("0.52"),
        gamma=D("0.031"),
        theta=D("-0.21"),
        vega=D("0.44"),
        multiplier=D(100),
        quantity=D(2),
        underlying_price=D("598.10"),
    )
    assert values.delta_shares == D(104)
    assert values.theta == D("-42.00")
    assert values.dollar_delta == D("62202.40")  # 104 shares x 598.10
    assert values.gamma == D("6.2")
    assert values.vega == D("88.00")


def test_a_computed_set_matches_the_reference_within_tolerance():
    """Hull's textbook values (delta 0.522, gamma 0.066, annual theta -4.31, vega 12.1 per unit of
    volatility) within their rounding; the implied volatility solved back from the 2.40 price is 20%."""
    greeks = hull_call()
    assert greeks.source == SOURCE_COMPUTED
    assert greeks.reason == ""
    assert abs(greeks.iv - D("0.20")) < D("0.0005")
    assert abs(greeks.delta - D("0.522")) < D("0.001")
    assert abs(greeks.gamma - D("0.066")) < D("0.001")
    assert abs(greeks.theta * 365 - D("-4.31")) < D("0.01")  # stored per calendar day
    assert abs(greeks.vega - D("0.121")) < D("0.001")  # stored per volatility point
    assert greeks.inputs["option_price"] == "2.4005"
    assert greeks.inputs["price_kind"] == "mid"
    assert greeks.inputs["risk_free_rate"] == "0.05"


def test_a_put_from_its_price_gives_the_put_greeks():
    # Put-call parity at sigma 20%: P = C - S + K e^(-rT) = 2.4005 - 49 + 50 e^(-0.05 x 0.3846) = 2.4481
    greeks = hull_call(D("2.4481"), right="P")
    assert abs(greeks.iv - D("0.20")) < D("0.0005")
    assert abs(greeks.delta - D("-0.478")) < D("0.001")  # call delta - 1
    assert abs(greeks.gamma - D("0.066")) < D("0.001")
    assert greeks.vega > 0


def test_a_price_below_intrinsic_value_leaves_them_empty_with_the_reason():
    greeks = hull_call(D("5.00"), underlying_price=D(60))  # worth at least 10.96 (60 - 50 discounted)
    assert greeks.delta is greeks.gamma is greeks.theta is greeks.vega is greeks.iv is None
    assert greeks.source == ""
    assert "intrinsic value" in greeks.reason
    assert "5.00" in greeks.reason
    assert greeks.underlying_price == D(60)  # what is known is kept
    assert not greeks.known


def test_a_price_above_the_no_arbitrage_bound_is_refused():
    greeks = hull_call(D("49.50"))  # a call is never worth more than its underlying
    assert greeks.delta is None
    assert "no-arbitrage bound" in greeks.reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"underlying_price": None}, "no underlying price"),
        ({"option_price": None}, "no option price"),
        ({"days": D(0)}, "expired"),
    ],
)
def test_missing_inputs_say_which(overrides, reason):
    greeks = hull_call(**overrides)
    assert greeks.delta is None
    assert reason in greeks.reason


def test_a_short_puts_signs():
    per_share = hull_call(D("2.4481"), right="P")
    short = position_greeks(
        delta=per_share.delta,
        gamma=per_share.gamma,
        theta=per_share.theta,
        vega=per_share.vega,
        multiplier=D(100),
        quantity=D(-1),
        underlying_price=D(49),
    )
    assert per_share.delta < 0 and per_share.theta < 0
    assert short.delta_shares > 0  # short a put: long the underlying's direction
    assert short.gamma < 0  # short gamma
    assert short.theta > 0  # time decay earns the seller money
    assert short.vega < 0  # a rise in volatility costs it
    assert short.dollar_delta == (short.delta_shares * 49).quantize(D("0.0001"))


def test_a_short_calls_delta_is_negative():
    call = hull_call()
    short = position_greeks(
        delta=call.delta,
        gamma=call.gamma,
        theta=call.theta,
        vega=call.vega,
        multiplier=D(100),
        quantity=D(-2),
        underlying_price=None,
    )
    assert short.delta_shares < 0
    assert short.dollar_delta is None  # no underlying price: unknown, not 0


def test_days_to_expiry_across_a_weekend_are_calendar_days():
    friday_close = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)  # 16:00 New York
    assert days_to_expiry(expiry=date(2026, 12, 7), now=friday_close) == D(3)  # to Monday's close
    friday_noon = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)  # 12:00 New York
    assert days_to_expiry(expiry=date(2026, 12, 7), now=friday_noon) == D("3.1666666667")  # 3 days 4 hours


def test_days_to_expiry_on_an_early_close_end_at_13_00():
    # The day after Thanksgiving 2026 closes at 13:00 New York (18:00 UTC).
    assert expiry_close(date(2026, 11, 27)) == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    assert days_to_expiry(expiry=date(2026, 11, 27), now=datetime(2026, 11, 26, 18, 0, tzinfo=UTC)) == D(1)
    assert days_to_expiry(expiry=date(2026, 11, 27), now=datetime(2026, 11, 27, 18, 0, tzinfo=UTC)) == D(0)


def test_an_expiry_on_a_holiday_ends_at_the_session_before():
    # Good Friday 2027 (March 26) is an NYSE holiday: that week's options stop on Thursday's close.
    assert expiry_close(date(2027, 3, 26)) == datetime(2027, 3, 25, 20, 0, tzinfo=UTC)


def test_days_to_expiry_are_zero_once_expired():
    assert days_to_expiry(expiry=date(2026, 12, 4), now=datetime(2026, 12, 7, 15, 0, tzinfo=UTC)) == D(0)


def test_portfolio_risk_per_underlying_with_the_stock_and_totals():
    rows = [
        # Long 2 SPY calls (the domain example) and 100 SPY shares.
        RiskRow("SPY", "USD", True, D(2), D(100), None, D("0.52"), D("0.031"), D("-0.21"), D("0.44"), D("598.10")),
        RiskRow("SPY", "USD", False, D(100), D(1), D("598.00")),
        # Short 1 AAPL put.
        RiskRow("AAPL", "USD", True, D(-1), D(100), None, D("-0.30"), D("0.02"), D("-0.05"), D("0.10"), D("150")),
        # An option without Greeks, and a stock without options: neither adds anything.
        RiskRow("QQQ", "USD", True, D(1), D(100), None),
        RiskRow("MSFT", "USD", False, D(10), D(1), D("400")),
    ]
    risk = portfolio_risk(rows)
    by_symbol = {u.symbol: u for u in risk.underlyings}
    assert list(by_symbol) == ["AAPL", "QQQ", "SPY"]
    spy = by_symbol["SPY"]
    assert spy.delta_shares == D(204)  # 104 from the calls, 100 shares
    assert spy.dollar_delta == D("62202.40") + D("59800.00")
    assert spy.theta == D("-42.00")
    aapl = by_symbol["AAPL"]
    assert aapl.delta_shares == D(30)
    assert aapl.theta == D("5.00")
    assert by_symbol["QQQ"].without_greeks == 1
    assert risk.without_greeks == 1
    assert risk.theta == {"USD": D("-37.00")}
    assert risk.dollar_delta == {"USD": D("62202.40") + D("59800.00") + D("4500.00")}
