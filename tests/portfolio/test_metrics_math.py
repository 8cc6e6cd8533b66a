"""The performance-metric definitions of docs/domain-rules.md, on plain numbers (no database)."""

import math
from datetime import date, timedelta
from decimal import Decimal

import pytest

from portfolio.rules.metrics import (
    RoundTripTally,
    daily_changes,
    daily_returns,
    drawdowns,
    max_drawdown,
    round_trip_stats,
    running_ratios,
    sharpe,
    sortino,
    twr,
    twr_index,
    xirr,
)

D = Decimal
MONDAY = date(2025, 3, 3)


def days(n: int, start: date = MONDAY) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def dated(numbers) -> list[tuple[date, Decimal]]:
    return list(zip(days(len(numbers)), [D(str(x)) for x in numbers], strict=True))


def path(start_value: str, market: list[str], flows: dict[int, str]) -> tuple[list, list]:
    """Values of an account whose market return on day i is market[i-1], with flows at the start of day i."""
    value = D(start_value)
    values = [(MONDAY, value)]
    flow_rows = []
    for i, r in enumerate(market, start=1):
        flow = D(flows.get(i, "0"))
        if flow:
            flow_rows.append((MONDAY + timedelta(days=i), flow))
        value = (value + flow) * (1 + D(r))
        values.append((MONDAY + timedelta(days=i), value))
    return values, flow_rows


# --- round trips ---------------------------------------------------------------------------------
def test_round_trip_worked_example():
    stats = round_trip_stats([D(120), D(-80), D(-40), D(200)])

    assert stats.count == 4
    assert stats.win_rate == D("0.5")
    assert stats.profit_factor.quantize(D("0.0001")) == D("2.6667")
    assert stats.profit_factor == D("2.6666666667")  # quantized to the ratio precision
    assert stats.expectancy == D("50.00")
    assert stats.gross_profit == D(320)
    assert stats.gross_loss == D(-120)
    assert stats.max_consecutive_losses == 2
    assert stats.current_consecutive_losses == 0


def test_round_trip_definitions_on_another_series():
    pnls = [D("-10"), D("-5.5"), D("30"), D("-1"), D("-2"), D("-3"), D("12.25"), D("-4")]

    stats = round_trip_stats(pnls)

    wins, losses = [p for p in pnls if p > 0], [p for p in pnls if p < 0]
    assert stats.win_rate == D(len(wins)) / len(pnls) == D("0.25")
    assert stats.profit_factor == (sum(wins) / -sum(losses)).quantize(D("1E-10"))
    assert stats.expectancy == (sum(pnls) / len(pnls)).quantize(D("0.0001"))
    assert stats.max_consecutive_losses == 3
    assert stats.current_consecutive_losses == 1


def test_break_even_is_not_a_win_and_ends_a_run_of_losses():
    stats = round_trip_stats([D(-10), D(0), D(-10), D(-10), D(0)])

    assert stats.count == 5
    assert stats.win_rate == 0
    assert stats.profit_factor == 0  # no profit over 30 of losses
    assert stats.max_consecutive_losses == 2
    assert stats.current_consecutive_losses == 0
    assert round_trip_stats([D(10), D(0)]).win_rate == D("0.5")


def test_no_losses_has_no_profit_factor():
    stats = round_trip_stats([D(10), D(20), D(0)])

    assert stats.profit_factor is None
    assert stats.gross_loss == 0
    assert stats.max_consecutive_losses == stats.current_consecutive_losses == 0
    assert stats.expectancy == D(10)


def test_no_round_trips():
    stats = round_trip_stats([])

    assert stats.count == 0
    assert stats.win_rate is None
    assert stats.profit_factor is None
    assert stats.expectancy is None
    assert stats.gross_profit == stats.gross_loss == 0
    assert stats.max_consecutive_losses == stats.current_consecutive_losses == 0


def test_current_run_of_losses_is_the_one_at_the_end():
    stats = round_trip_stats([D(5), D(-1), D(-2), D(-3), D(4), D(-1), D(-1)])

    assert stats.max_consecutive_losses == 3
    assert stats.current_consecutive_losses == 2


def test_tally_gives_the_stats_of_every_prefix():
    pnls = [D(x) for x in ("5", "-1", "0", "-2", "-3", "7.5", "-0.01", "2")]
    tally = RoundTripTally()
    for n, pnl in enumerate(pnls, start=1):
        tally.add(pnl)
        assert tally.stats() == round_trip_stats(pnls[:n])


# --- time-weighted return and drawdown -----------------------------------------------------------
def test_drawdown_worked_example():
    returns = daily_returns(dated([50, 60, 45, 70, 56]), [])

    assert max_drawdown(twr_index(returns)) == D("-0.25")
    assert [dd for _, dd in drawdowns(twr_index(returns))] == [0, D("-0.25"), 0, D("-0.2")]
    assert twr(returns) == D("0.12")  # no flows: end / start - 1


def test_twr_worked_example_with_a_deposit():
    values = dated([20000, 21000, 30450])
    flows = [(values[2][0], D(10000))]  # at the next open: the start of the third day's period

    returns = daily_returns(values, flows)

    assert returns[0][1] == D("0.05")
    assert returns[1][1].quantize(D("0.000001")) == D("-0.017742")
    assert twr(returns) == D("0.0313709677")
    assert D(30450) / D(20000) - 1 == D("0.5225")  # what end / start would say


def test_flows_do_not_change_the_time_weighted_return():
    market = ["0.02", "-0.03", "0.01", "0.04", "-0.05", "0.015"]
    plain_values, _ = path("10000", market, {})
    funded_values, funded_flows = path("10000", market, {2: "5000", 4: "-8000", 5: "250.50"})

    plain = daily_returns(plain_values, [])
    funded = daily_returns(funded_values, funded_flows)

    assert funded == plain
    assert [r for _, r in funded] == [D(r) for r in market]
    assert twr(funded) == twr(plain)
    assert max_drawdown(twr_index(funded)) == max_drawdown(twr_index(plain))


def test_a_withdrawal_is_not_a_drawdown():
    values, flows = path("100000", ["0", "0", "0"], {2: "-60000"})
    assert values[-1][1] == D(40000)  # the raw value fell 60%

    index = twr_index(daily_returns(values, flows))

    assert max_drawdown(index) == 0
    assert twr(daily_returns(values, flows)) == 0


def test_drawdown_is_measured_from_the_running_peak_of_the_index_and_from_its_base():
    index = twr_index(dated(["-0.1", "0.5", "-0.2", "0.1"]))

    assert [dd.quantize(D("0.0001")) for _, dd in drawdowns(index)] == [
        D("-0.1000"),  # a loss on the first day, against the base of 1
        D("0"),
        D("-0.2000"),
        D("-0.1200"),
    ]
    assert max_drawdown(index) == D("-0.2")


def test_index_starts_at_one_and_links_returns():
    index = twr_index(dated(["0.1", "-0.5"]))

    assert [v for _, v in index] == [D("1.1"), D("0.55")]
    assert twr([]) == 0
    assert max_drawdown([]) == 0


def test_a_flow_belongs_to_the_period_of_the_next_value():
    values = [(date(2025, 3, 7), D(1000)), (date(2025, 3, 10), D(1500)), (date(2025, 3, 11), D(1500))]
    flows = [
        (date(2025, 3, 6), D(999)),  # before the first value: part of the starting capital
        (date(2025, 3, 7), D(111)),  # on the first value's day: in that value already
        (date(2025, 3, 8), D(300)),  # Saturday: at the start of Monday's period
        (date(2025, 3, 10), D(200)),  # Monday itself
        (date(2025, 3, 12), D(50)),  # after the last value: no period yet
    ]

    changes = daily_changes(values, flows)

    assert [(c.day, c.flow, c.pnl) for c in changes] == [
        (date(2025, 3, 10), D(500), D(0)),
        (date(2025, 3, 11), D(0), D(0)),
    ]


def test_a_day_with_nothing_at_work_has_no_return():
    values = dated([1000, 0, 0, 510])
    flows = [(values[1][0], D(-1000)), (values[3][0], D(500))]

    returns = daily_returns(values, flows)

    assert returns == [(values[3][0], D("0.02"))]  # the empty days are left out, the index does not move
    assert daily_changes(values, flows)[0].ret is None


def test_two_values_on_one_day_are_refused():
    with pytest.raises(ValueError, match="one close value per day"):
        daily_returns([(MONDAY, D(1)), (MONDAY, D(2))], [])


# --- Sharpe and Sortino --------------------------------------------------------------------------
def test_sharpe_and_sortino_on_a_known_series():
    returns = dated(["0.01", "-0.02", "0.03", "0"])
    # mean = 0.02 / 4 = 0.005; deviations 0.005, -0.025, 0.025, -0.005: squares sum to 0.0013
    expected_sharpe = D("0.005") / (D("0.0013") / 3).sqrt() * D(252).sqrt()
    # downside: only -0.02 counts, 0.0004 over all 4 days = 0.0001, its root 0.01
    expected_sortino = D("0.005") / D("0.01") * D(252).sqrt()

    assert sharpe(returns) == expected_sharpe.quantize(D("1E-10"))
    assert sharpe(returns).quantize(D("0.0001")) == D("3.8129")
    assert sortino(returns) == expected_sortino.quantize(D("1E-10"))
    assert sortino(returns).quantize(D("0.0001")) == D("7.9373")


def test_sharpe_and_sortino_undefined():
    assert sharpe(dated(["0.01"])) is None
    assert sortino(dated(["-0.01"])) is None
    assert sharpe(dated(["0.01", "0.01", "0.01"])) is None  # no deviation
    assert sortino(dated(["0.01", "0.02"])) is None  # no losing day
    assert sharpe([]) is None


def test_running_ratios_are_the_ratios_of_each_prefix():
    returns = dated(["0.01", "-0.02", "0.03", "0", "0.011", "-0.004", "0.007"])

    running = running_ratios(returns)

    for n, (day, s, so) in enumerate(running, start=1):
        assert day == returns[n - 1][0]
        assert s == sharpe(returns[:n])
        assert so == sortino(returns[:n])


# --- money-weighted return -----------------------------------------------------------------------
def test_xirr_one_year_ten_percent():
    start = date(2023, 1, 1)

    assert xirr([(start, D(-1000)), (start + timedelta(days=365), D(1100))]) == D("0.1")


def test_xirr_with_a_deposit_and_a_withdrawal():
    start = date(2023, 1, 1)
    deposit = [(start, D(-1000)), (start + timedelta(days=365), D(-1000)), (start + timedelta(days=730), D(2310))]
    withdrawal = [(start, D(-1000)), (start + timedelta(days=365), D(550)), (start + timedelta(days=730), D(605))]

    assert xirr(deposit) == D("0.1")
    assert xirr(withdrawal) == D("0.1")
    assert xirr([(start, D(-1000)), (start + timedelta(days=730), D(810))]) == D("-0.1")


def test_xirr_solves_the_definition():
    start = date(2020, 6, 1)
    flows = [
        (start, D(-25000)),
        (start + timedelta(days=40), D(-5000)),
        (start + timedelta(days=200), D(3000)),
        (start + timedelta(days=333), D(-1234.56)),
        (start + timedelta(days=500), D(31000)),
    ]

    rate = float(xirr(flows))

    npv = sum(float(a) / (1 + rate) ** ((d - start).days / 365) for d, a in flows)
    assert math.isclose(npv, 0, abs_tol=0.01)


def test_xirr_undefined():
    start = date(2023, 1, 1)
    assert xirr([]) is None
    assert xirr([(start, D(-1000)), (start + timedelta(days=30), D(-10))]) is None  # no money back
    assert xirr([(start, D(-1000)), (start, D(1100))]) is None  # no time passes
    # doubling in one day is beyond any rate the database can hold once annualised
    assert xirr([(start, D(-1000)), (start + timedelta(days=1), D(2000))]) is None
