"""Day trades, trade frequency and the PDT status against docs/domain-rules.md ("Day trades and the
pattern-day-trader rule"). Pure functions: no database.
"""

import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import factory
import pytest

from trading.rules.daytrades import (
    LEGACY_RULE_END,
    DayTradeResult,
    FrequencyRow,
    day_trade_count_by_date,
    day_trades_find,
    pdt_status,
    trade_frequency,
    trades_by_date,
)
from trading.rules.types import LedgerFill

STOCK = 1
OTHER_STOCK = 2
OPTION = 3
MONDAY = date(2025, 11, 3)
TUESDAY = date(2025, 11, 4)


class LedgerFillFactory(factory.Factory):
    """Fills in creation order: each one is executed a second after the one built before it."""

    class Meta:
        model = LedgerFill

    id = factory.Sequence(lambda n: n + 1)
    exec_id = factory.LazyAttribute(lambda o: f"0000e0d5.{o.id:08d}.01.01")
    instrument_id = STOCK
    trade_date = MONDAY
    executed_at = factory.LazyAttributeSequence(
        lambda o, n: datetime.combine(o.trade_date, time(15, 0), tzinfo=UTC) + timedelta(seconds=n)
    )
    side = "BUY"
    quantity = Decimal(100)
    price = Decimal("10.00")


def buy(quantity, **kwargs) -> LedgerFill:
    return LedgerFillFactory(side="BUY", quantity=Decimal(quantity), **kwargs)


def sell(quantity, **kwargs) -> LedgerFill:
    return LedgerFillFactory(side="SELL", quantity=Decimal(quantity), **kwargs)


def day_trade(opening: LedgerFill, closing: LedgerFill, quantity) -> DayTradeResult:
    return DayTradeResult(
        instrument_id=closing.instrument_id,
        trade_date=closing.trade_date,
        quantity=Decimal(quantity),
        opening_fill_id=opening.id,
        closing_fill_id=closing.id,
    )


both_methods = pytest.mark.parametrize("counting", ["opening", "direction"])


# --- finding day trades ---------------------------------------------------------------------------
class TestCountingMethods:
    def test_buy_50_buy_50_sell_100_is_two_by_opening_transaction(self):
        first, second, sale = buy(50), buy(50), sell(100)

        assert day_trades_find([first, second, sale]) == [day_trade(first, sale, 50), day_trade(second, sale, 50)]

    def test_buy_50_buy_50_sell_100_is_one_by_direction(self):
        first, second, sale = buy(50), buy(50), sell(100)

        assert day_trades_find([first, second, sale], counting="direction") == [day_trade(first, sale, 100)]

    def test_opening_is_the_default(self):
        fills = [buy(50), buy(50), sell(100)]

        assert day_trades_find(fills) == day_trades_find(fills, counting="opening")

    def test_unknown_method_is_refused(self):
        with pytest.raises(ValueError, match="unknown day-trade counting 'fifo'"):
            day_trades_find([buy(1), sell(1)], counting="fifo")

    def test_several_round_trips_in_a_day(self):
        fills = [b1 := buy(100), s1 := sell(100), b2 := buy(100), s2 := sell(100), s3 := sell(50), b3 := buy(50)]
        expected = [day_trade(b1, s1, 100), day_trade(b2, s2, 100), day_trade(s3, b3, 50)]

        assert day_trades_find(fills, counting="opening") == expected
        assert day_trades_find(fills, counting="direction") == expected

    def test_scaling_in_and_out_counts_openings_or_changes_of_direction(self):
        a, b, c, d, e, f, g = buy(50), buy(50), sell(30), sell(70), buy(100), sell(50), sell(50)
        fills = [a, b, c, d, e, f, g]

        # Closes are matched to the day's openings FIFO: C closes 30 of A, D the other 20 of A and all of B.
        assert day_trades_find(fills, counting="opening") == [
            day_trade(a, c, 50),
            day_trade(b, d, 50),
            day_trade(e, f, 100),
        ]
        # Two runs of sells (C-D and F-G), each after a run of buys.
        assert day_trades_find(fills, counting="direction") == [day_trade(a, c, 100), day_trade(e, f, 100)]

    def test_partly_closed_opening_still_counts_once(self):
        first, second, sale = buy(50), buy(50), sell(60)

        assert day_trades_find([first, second, sale]) == [day_trade(first, sale, 50), day_trade(second, sale, 10)]
        assert day_trades_find([first, second, sale], counting="direction") == [day_trade(first, sale, 60)]

    def test_one_opening_closed_by_several_sales_is_one_day_trade(self):
        opening, s1, s2 = buy(100), sell(40), sell(60)

        for counting in ("opening", "direction"):
            assert day_trades_find([opening, s1, s2], counting=counting) == [day_trade(opening, s1, 100)]

    def test_sales_separated_by_a_buy_are_two_changes_of_direction(self):
        b1, s1, b2, s2 = buy(100), sell(40), buy(10), sell(70)

        # FIFO: S2 closes the 60 left of B1 and all of B2.
        assert day_trades_find([b1, s1, b2, s2]) == [day_trade(b1, s1, 100), day_trade(b2, s2, 10)]
        assert day_trades_find([b1, s1, b2, s2], counting="direction") == [
            day_trade(b1, s1, 40),
            day_trade(b1, s2, 70),
        ]


class TestWhatIsADayTrade:
    @both_methods
    def test_short_then_cover(self, counting):
        short, cover = sell(100), buy(100)

        assert day_trades_find([short, cover], counting=counting) == [day_trade(short, cover, 100)]

    @both_methods
    def test_options(self, counting):
        opening = buy(2, instrument_id=OPTION, price=Decimal("3.20"), multiplier=Decimal(100))
        closing = sell(2, instrument_id=OPTION, price=Decimal("3.90"), multiplier=Decimal(100))

        assert day_trades_find([opening, closing], counting=counting) == [day_trade(opening, closing, 2)]

    @both_methods
    def test_a_different_security_is_not_a_close(self, counting):
        # The stock bought and a call on it sold (written) the same day: two openings, no day trade.
        fills = [buy(100), sell(1, instrument_id=OPTION), buy(100, instrument_id=OTHER_STOCK), sell(100)]

        assert day_trades_find(fills, counting=counting) == [day_trade(fills[0], fills[3], 100)]

    @both_methods
    def test_opened_and_closed_on_different_days_is_not_a_day_trade(self, counting):
        assert day_trades_find([buy(100, trade_date=MONDAY), sell(100, trade_date=TUESDAY)], counting=counting) == []

    @both_methods
    def test_carried_overnight_then_closed_before_any_opening_trade(self, counting):
        # Sold next morning, then a new purchase kept open: nothing opened that day was closed.
        fills = [buy(100, trade_date=MONDAY), sell(100, trade_date=TUESDAY), buy(100, trade_date=TUESDAY)]

        assert day_trades_find(fills, counting=counting) == []

    @both_methods
    def test_carried_plus_bought_more_then_sold_all_is_a_day_trade_for_the_same_day_part(self, counting):
        carried = buy(100, trade_date=MONDAY)
        more, sale = buy(50, trade_date=TUESDAY), sell(150, trade_date=TUESDAY)

        assert day_trades_find([carried, more, sale], counting=counting) == [day_trade(more, sale, 50)]

    @both_methods
    def test_a_sale_after_a_same_day_purchase_closes_that_purchase_first(self, counting):
        # 100 carried; the sale of 50 after buying 50 is a day trade although 100 were carried.
        carried = buy(100, trade_date=MONDAY)
        more, sale = buy(50, trade_date=TUESDAY), sell(50, trade_date=TUESDAY)

        assert day_trades_find([carried, more, sale], counting=counting) == [day_trade(more, sale, 50)]

    @both_methods
    def test_carried_part_closed_first_then_a_round_trip(self, counting):
        carried = buy(100, trade_date=MONDAY)
        morning = sell(40, trade_date=TUESDAY)  # closes carried quantity only
        more, sale = buy(50, trade_date=TUESDAY), sell(110, trade_date=TUESDAY)

        assert day_trades_find([carried, morning, more, sale], counting=counting) == [day_trade(more, sale, 50)]

    @both_methods
    def test_short_carried_overnight_and_covered_next_morning(self, counting):
        fills = [sell(100, trade_date=MONDAY), buy(100, trade_date=TUESDAY)]

        assert day_trades_find(fills, counting=counting) == []

    @both_methods
    def test_a_flip_through_zero_closes_and_opens(self, counting):
        opening, flip, cover = buy(50), sell(80), buy(30)

        assert day_trades_find([opening, flip, cover], counting=counting) == [
            day_trade(opening, flip, 50),
            day_trade(flip, cover, 30),
        ]

    @both_methods
    def test_a_flip_of_a_carried_position_opens_a_same_day_short(self, counting):
        carried = buy(50, trade_date=MONDAY)
        flip, cover = sell(80, trade_date=TUESDAY), buy(30, trade_date=TUESDAY)

        assert day_trades_find([carried, flip, cover], counting=counting) == [day_trade(flip, cover, 30)]

    def test_instruments_are_replayed_separately(self):
        a1, b1, a2, b2 = buy(10), sell(20, instrument_id=OTHER_STOCK), sell(10), buy(20, instrument_id=OTHER_STOCK)

        assert day_trades_find([a1, b1, a2, b2]) == [day_trade(a1, a2, 10), day_trade(b1, b2, 20)]

    @both_methods
    def test_day_trades_on_several_days(self, counting):
        fills = [
            m1 := buy(100, trade_date=MONDAY),
            m2 := sell(60, trade_date=MONDAY),  # 40 carried into Tuesday
            t1 := buy(10, trade_date=TUESDAY),
            t2 := sell(50, trade_date=TUESDAY),  # 10 bought Tuesday, 40 carried
        ]

        assert day_trades_find(fills, counting=counting) == [day_trade(m1, m2, 60), day_trade(t1, t2, 10)]


class TestTransactions:
    @both_methods
    def test_partial_fills_of_one_order_count_once(self, counting):
        fills = [
            first := buy(30, order_ref="1001"),
            buy(30, order_ref="1001"),
            buy(40, order_ref="1001"),
            sale := sell(50, order_ref="1002"),
            sell(50, order_ref="1002"),
        ]

        assert day_trades_find(fills, counting=counting) == [day_trade(first, sale, 100)]

    def test_fills_without_an_order_are_separate_openings(self):
        fills = [b1 := buy(30), b2 := buy(30), b3 := buy(40), s1 := sell(50), sell(50)]

        assert day_trades_find(fills) == [day_trade(b1, s1, 30), day_trade(b2, s1, 30), day_trade(b3, fills[4], 40)]
        assert len(day_trades_find(fills, counting="direction")) == 1

    def test_an_order_filled_around_another_is_still_one_opening(self):
        fills = [
            x1 := buy(30, order_ref="X"),
            y := buy(30, order_ref="Y"),
            buy(30, order_ref="X"),
            sale := sell(90),
        ]

        assert day_trades_find(fills) == [day_trade(x1, sale, 60), day_trade(y, sale, 30)]

    def test_an_order_that_opens_again_after_a_close_is_one_opening(self):
        fills = [x1 := buy(50, order_ref="X"), s1 := sell(50), buy(50, order_ref="X"), sell(50)]

        assert day_trades_find(fills) == [day_trade(x1, s1, 100)]
        assert len(day_trades_find(fills, counting="direction")) == 2

    def test_an_order_filling_on_two_days_opens_only_its_same_day_part(self):
        monday_part = buy(50, order_ref="GTC-7", trade_date=MONDAY)
        tuesday_part = buy(50, order_ref="GTC-7", trade_date=TUESDAY)
        sale = sell(100, trade_date=TUESDAY)

        assert day_trades_find([monday_part, tuesday_part, sale]) == [day_trade(tuesday_part, sale, 50)]


class TestReplayOrder:
    @both_methods
    def test_fills_given_out_of_order_give_the_same_result(self, counting):
        fills = [
            buy(100, trade_date=MONDAY),
            buy(50, trade_date=TUESDAY, order_ref="A"),
            buy(50, trade_date=TUESDAY, order_ref="A"),
            sell(80, trade_date=TUESDAY),
            sell(200, trade_date=TUESDAY),
            buy(30, trade_date=TUESDAY),
            sell(1, instrument_id=OPTION, trade_date=TUESDAY),
            buy(1, instrument_id=OPTION, trade_date=TUESDAY),
        ]
        expected = day_trades_find(fills, counting=counting)
        assert expected  # the case is not vacuous

        shuffled = fills[:]
        for seed in range(5):
            random.Random(seed).shuffle(shuffled)
            assert day_trades_find(shuffled, counting=counting) == expected
        assert day_trades_find(reversed(fills), counting=counting) == expected

    def test_fills_with_the_same_time_are_ordered_by_exec_id(self):
        at = datetime(2025, 11, 3, 15, 0, tzinfo=UTC)
        short = sell(100, executed_at=at, exec_id="0000e0d5.00000001.01.01")
        cover = buy(100, executed_at=at, exec_id="0000e0d5.00000002.01.01")

        assert day_trades_find([cover, short]) == [day_trade(short, cover, 100)]


# --- counts and frequency -------------------------------------------------------------------------
class TestCountsByDate:
    def test_day_trade_count_by_date(self):
        fills = [
            buy(10, trade_date=MONDAY),
            sell(10, trade_date=MONDAY),
            buy(10, trade_date=TUESDAY),
            buy(10, trade_date=TUESDAY),
            sell(20, trade_date=TUESDAY),
        ]

        assert day_trade_count_by_date(day_trades_find(fills)) == {MONDAY: 1, TUESDAY: 2}
        assert day_trade_count_by_date(day_trades_find(fills, counting="direction")) == {MONDAY: 1, TUESDAY: 1}
        assert day_trade_count_by_date([]) == {}

    def test_trades_are_distinct_orders_per_trade_date(self):
        fills = [
            buy(30, order_ref="1001"),
            buy(70, order_ref="1001"),  # same order: one trade
            sell(100, order_ref="1002"),
            buy(5),  # no order: its own trade
            buy(5),
            buy(1, instrument_id=OPTION, order_ref="combo-9"),  # a combo's legs share the order
            sell(1, instrument_id=OTHER_STOCK, order_ref="combo-9"),
            buy(10, order_ref="1001", trade_date=TUESDAY),  # the same order filling again the next day
        ]

        assert trades_by_date(fills) == {MONDAY: 5, TUESDAY: 1}
        assert trades_by_date([]) == {}


class TestTradeFrequency:
    def test_day_and_iso_week_rows(self):
        # Mon 2025-12-29 starts ISO week 1 of 2026: Wed 12-31 and Fri 2026-01-02 are in the same week.
        new_year_eve, second_january = date(2025, 12, 31), date(2026, 1, 2)
        fills = [
            buy(10, trade_date=date(2025, 12, 26), order_ref="1"),
            buy(10, trade_date=new_year_eve, order_ref="2"),
            sell(10, trade_date=new_year_eve, order_ref="3"),
            buy(10, trade_date=second_january, order_ref="4"),
            buy(10, trade_date=second_january, order_ref="4"),
            sell(30, trade_date=second_january, order_ref="5"),
        ]

        assert trade_frequency(fills, day_trades_find(fills)) == [
            FrequencyRow(period="DAY", period_start=date(2025, 12, 26), trades=1, day_trades=0),
            FrequencyRow(period="DAY", period_start=new_year_eve, trades=2, day_trades=1),
            FrequencyRow(period="DAY", period_start=second_january, trades=2, day_trades=1),
            FrequencyRow(period="WEEK", period_start=date(2025, 12, 22), trades=1, day_trades=0),
            FrequencyRow(period="WEEK", period_start=date(2025, 12, 29), trades=4, day_trades=2),
        ]

    def test_a_week_across_a_month_boundary(self):
        fills = [buy(10, trade_date=date(2025, 9, 30)), sell(10, trade_date=date(2025, 10, 1))]

        weeks = [row for row in trade_frequency(fills, []) if row.period == "WEEK"]

        assert weeks == [FrequencyRow(period="WEEK", period_start=date(2025, 9, 29), trades=2, day_trades=0)]

    def test_no_fills_no_rows(self):
        assert trade_frequency([], []) == []


# --- PDT status -----------------------------------------------------------------------------------
# The five sessions ending Fri 2025-11-07 are 11-03 .. 11-07.
WEEK_OF_NOV_3 = [date(2025, 11, 3) + timedelta(days=i) for i in range(5)]


def status(**kwargs):
    defaults = {
        "as_of": date(2025, 11, 7),
        "pinned_legacy": False,
        "is_margin": True,
        "day_trades_by_date": {},
        "trades_by_date": {},
    }
    return pdt_status(**defaults | kwargs)


class TestLegacyRule:
    def test_four_day_trades_in_five_sessions_over_six_percent_is_a_pattern_day_trader(self):
        result = status(
            day_trades_by_date={date(2025, 11, 3): 1, date(2025, 11, 5): 2, date(2025, 11, 7): 1},
            trades_by_date=dict.fromkeys(WEEK_OF_NOV_3, 4),
        )

        assert result.rule == "LEGACY"
        assert (result.window_start, result.window_end) == (date(2025, 11, 3), date(2025, 11, 7))
        assert (result.day_trades, result.trades) == (4, 20)
        assert result.is_pattern_day_trader is True
        assert result.day_trades_remaining == 0

    @pytest.mark.parametrize(
        ("trades", "is_pdt"),
        [(66, True), (67, False), (70, False)],  # 4/66 = 6.06% > 6%; 4/67 = 5.97%; 4/70 = 5.7%
    )
    def test_four_day_trades_that_are_not_over_six_percent_of_trades_is_not(self, trades, is_pdt):
        result = status(day_trades_by_date={date(2025, 11, 4): 4}, trades_by_date={date(2025, 11, 4): trades})

        assert result.is_pattern_day_trader is is_pdt

    def test_exactly_six_percent_is_not_more_than_six_percent(self):
        result = status(day_trades_by_date={date(2025, 11, 4): 6}, trades_by_date={date(2025, 11, 4): 100})

        assert result.is_pattern_day_trader is False

    def test_three_day_trades_is_not_a_pattern_day_trader(self):
        result = status(day_trades_by_date={date(2025, 11, 4): 3}, trades_by_date={date(2025, 11, 4): 6})

        assert result.is_pattern_day_trader is False
        assert result.day_trades_remaining == 0

    def test_day_trades_before_the_window_are_not_counted(self):
        result = status(
            day_trades_by_date={date(2025, 10, 31): 3, date(2025, 11, 7): 1},
            trades_by_date={date(2025, 10, 31): 6, date(2025, 11, 7): 2},
        )

        assert (result.day_trades, result.trades) == (1, 2)
        assert result.is_pattern_day_trader is False
        assert result.day_trades_remaining == 2

    def test_window_skips_a_holiday(self):
        # Thanksgiving 2025-11-27 is no session: the five sessions ending 11-28 start on 11-21.
        result = status(
            as_of=date(2025, 11, 28),
            day_trades_by_date={date(2025, 11, 20): 1, date(2025, 11, 21): 2, date(2025, 11, 28): 2},
            trades_by_date={date(2025, 11, 20): 2, date(2025, 11, 21): 3, date(2025, 11, 28): 3},
        )

        assert (result.window_start, result.window_end) == (date(2025, 11, 21), date(2025, 11, 28))
        assert (result.day_trades, result.trades) == (4, 6)
        assert result.is_pattern_day_trader is True

    def test_as_of_a_weekend_day_is_the_window_ending_the_session_before(self):
        result = status(as_of=date(2025, 11, 8), day_trades_by_date={date(2025, 11, 3): 1})

        assert (result.window_start, result.window_end) == (date(2025, 11, 3), date(2025, 11, 7))
        assert result.day_trades == 1

    def test_no_trades_is_not_a_pattern_day_trader(self):
        result = status()

        assert (result.day_trades, result.trades, result.is_pattern_day_trader) == (0, 0, False)
        assert result.day_trades_remaining == 3


class TestDayTradesRemaining:
    BUSY = {"day_trades_by_date": {date(2025, 11, 4): 2}, "trades_by_date": {date(2025, 11, 4): 4}}

    def test_below_25000_or_unknown_equity_three_minus_the_window_count(self):
        assert status(**self.BUSY).day_trades_remaining == 1
        assert status(**self.BUSY, equity=Decimal("24999.99")).day_trades_remaining == 1

    def test_25000_or_more_is_unlimited(self):
        assert status(**self.BUSY, equity=Decimal("25000.00")).day_trades_remaining == -1

    @pytest.mark.parametrize("broker_figure", [3, 0, -1])
    def test_the_brokers_figure_is_preferred(self, broker_figure):
        result = status(**self.BUSY, broker_day_trades_remaining=broker_figure, equity=Decimal(1000))

        assert result.day_trades_remaining == broker_figure
        assert result.day_trades == 2  # the count is still ours

    def test_the_brokers_figure_is_shown_under_the_2026_rule_too(self):
        assert status(as_of=LEGACY_RULE_END, broker_day_trades_remaining=3).day_trades_remaining == 3


class TestCashAccount:
    def test_a_cash_account_is_never_a_pattern_day_trader(self):
        result = status(
            is_margin=False,
            day_trades_by_date={date(2025, 11, 4): 5},
            trades_by_date={date(2025, 11, 4): 10},
        )

        assert result.day_trades == 5  # recorded all the same
        assert result.is_pattern_day_trader is False
        assert result.day_trades_remaining == -1

    def test_cash_account_day_trades_are_found(self):
        # day_trades_find does not know the account type: a cash account's day trades are recorded.
        assert len(day_trades_find([buy(10), sell(10)])) == 1


class TestRuleSwitch:
    BUSY = {
        "day_trades_by_date": {date(2026, 6, 1): 2, date(2026, 6, 3): 2},
        "trades_by_date": {date(2026, 6, 1): 4, date(2026, 6, 3): 4},
    }

    def test_the_day_before_the_switch_is_legacy(self):
        result = status(as_of=date(2026, 6, 3), **self.BUSY)

        assert result.rule == "LEGACY"
        assert result.is_pattern_day_trader is True
        assert result.day_trades_remaining == 0

    def test_from_the_switch_the_2026_rule_has_no_pattern_and_no_limit(self):
        result = status(as_of=date(2026, 6, 4), **self.BUSY)

        assert result.rule == "INTRADAY_MARGIN_2026"
        assert (result.window_start, result.window_end) == (date(2026, 5, 29), date(2026, 6, 4))
        assert result.day_trades == 4  # still counted, for history
        assert result.is_pattern_day_trader is None
        assert result.day_trades_remaining is None

    def test_an_account_pinned_to_legacy_after_the_switch(self):
        result = status(as_of=date(2026, 6, 4), pinned_legacy=True, **self.BUSY)

        assert result.rule == "LEGACY"
        assert result.is_pattern_day_trader is True
        assert result.day_trades_remaining == 0

    def test_a_pin_lasts_through_the_phase_in_only(self):
        assert status(as_of=date(2027, 10, 20), pinned_legacy=True).rule == "LEGACY"
        assert status(as_of=date(2027, 10, 21), pinned_legacy=True).rule == "INTRADAY_MARGIN_2026"

    def test_pinned_before_the_switch_is_legacy_as_well(self):
        assert status(as_of=date(2026, 6, 3), pinned_legacy=True).rule == "LEGACY"


def test_from_fills_to_pdt_status():
    """The four functions together, as a service would chain them."""
    fills = []
    for day in WEEK_OF_NOV_3[:4]:
        fills += [buy(100, trade_date=day), sell(100, trade_date=day)]
    results = day_trades_find(fills)

    result = status(day_trades_by_date=day_trade_count_by_date(results), trades_by_date=trades_by_date(fills))

    assert (result.day_trades, result.trades, result.is_pattern_day_trader) == (4, 8, True)
