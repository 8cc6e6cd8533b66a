"""Cash-account rules: settled cash, good-faith violations, free-riding (pure, no database)."""

import itertools
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from trading.calendars import settlement_date
from trading.rules.cash import FREE_RIDING, GOOD_FAITH, CashFill, CashMovement, cash_account_replay
from trading.rules.types import LedgerFill

NY = ZoneInfo("America/New_York")
D = Decimal
_ids = itertools.count(1)

MON, TUE, WED = date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12)


def at(day: date, hhmm: str = "10:00") -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), tzinfo=NY)


def trade(side, quantity, price, day, hhmm="10:00", *, instrument=1, commission="0", order_ref=None, sec_type="STK"):
    fill_id = next(_ids)
    quantity, price, commission = D(quantity), D(price), D(commission)
    fill = LedgerFill(
        id=fill_id,
        exec_id=f"E{fill_id:05d}",
        instrument_id=instrument,
        executed_at=at(day, hhmm),
        trade_date=day,
        side=side,
        quantity=quantity,
        price=price,
        commission=commission,
        order_ref=order_ref,
    )
    gross = quantity * price
    amount = -(gross + commission) if side == "BUY" else gross - commission
    return CashFill(fill=fill, settlement_date=settlement_date(trade_date=day, sec_type=sec_type), amount=amount)


def buy(*args, **kwargs):
    return trade("BUY", *args, **kwargs)


def sell(*args, **kwargs):
    return trade("SELL", *args, **kwargs)


def deposit(amount, day, hhmm="09:00"):
    return CashMovement(at=at(day, hhmm), amount=D(amount))


def replay(fills, movements=(), *, start=None, end=None, opening="0"):
    fills = list(fills)
    start = start or min(f.fill.trade_date for f in fills)
    end = end or max(f.settlement_date for f in fills)
    return cash_account_replay(fills=fills, movements=movements, start=start, end=end, opening_settled_cash=D(opening))


def by_date(result):
    return {d.date: (d.settled_cash, d.unsettled_cash) for d in result.days}


def summary(result):
    return [(v.kind, v.trade_date, v.buy_fill_id, v.sell_fill_id, v.amount) for v in result.violations]


def paid_position(instrument=100, quantity="100", price="100"):
    """A position bought the week before with settled cash and settled since: selling it is clean."""
    return buy(quantity, price, date(2025, 3, 3), instrument=instrument)


def test_a_purchase_with_settled_cash_is_clean_even_when_sold_the_same_day():
    bought = buy("100", "50", MON, commission="1")
    sold = sell("100", "51", MON, "11:00", commission="1")
    result = replay([bought, sold], opening="10000")

    assert result.violations == ()
    assert by_date(result) == {MON: (D("10000"), D("98")), TUE: (D("10098"), D("0"))}
    assert [d.violations_12m for d in result.days] == [0, 0]


def test_classic_good_faith_violation():
    held = paid_position()
    sold_a = sell("100", "100", MON, "10:00", instrument=100)  # proceeds settle Tuesday
    bought_b = buy("100", "100", MON, "10:30", instrument=200)  # paid with those unsettled proceeds
    sold_b = sell("100", "101", MON, "11:00", instrument=200)  # before they settle
    result = replay([held, sold_a, bought_b, sold_b], opening="10000")

    assert summary(result) == [(GOOD_FAITH, MON, bought_b.fill.id, sold_b.fill.id, D("10000.0000"))]
    assert "Good-faith violation" in result.violations[0].detail
    assert "2025-03-11" in result.violations[0].detail
    assert result.days[-1].violations_12m == 1


def test_selling_after_the_proceeds_settle_is_not_a_violation():
    held = paid_position()
    sold_a = sell("100", "100", MON, instrument=100)
    bought_b = buy("100", "100", MON, "10:30", instrument=200)
    sold_b = sell("100", "101", TUE, "09:45", instrument=200)  # the day A's proceeds settle
    result = replay([held, sold_a, bought_b, sold_b], opening="10000")

    assert result.violations == ()


def test_good_faith_in_the_t_plus_two_era_lasts_two_settlement_days():
    monday = date(2024, 3, 4)
    held = buy("100", "100", date(2024, 2, 26), instrument=100)
    sold_a = sell("100", "100", monday, instrument=100)  # settles Wednesday 2024-03-06
    bought_b = buy("100", "100", monday, "10:30", instrument=200)
    sold_b = sell("100", "100", date(2024, 3, 5), instrument=200)
    assert sold_a.settlement_date == date(2024, 3, 6)

    result = replay([held, sold_a, bought_b, sold_b], opening="10000")

    assert summary(result) == [(GOOD_FAITH, date(2024, 3, 5), bought_b.fill.id, sold_b.fill.id, D("10000.0000"))]


def test_free_riding_buying_and_selling_without_paying():
    bought = buy("100", "10", MON)
    sold = sell("100", "11", MON, "11:00")
    result = replay([bought, sold])

    assert summary(result) == [(FREE_RIDING, MON, bought.fill.id, sold.fill.id, D("1000.0000"))]
    assert result.violations[0].detail.startswith("Free-riding")
    # the sale's own proceeds do not pay for the purchase they sold
    assert by_date(result) == {MON: (D("0"), D("100")), TUE: (D("100"), D("0"))}


def test_a_deposit_before_the_sale_pays_for_the_purchase():
    bought = buy("100", "10", MON, "10:00")
    sold = sell("100", "11", MON, "11:00")
    result = replay([bought, sold], [deposit("1000", MON, "10:30")])

    assert result.violations == ()


def test_proceeds_of_a_later_sale_pay_for_an_unpaid_purchase_and_make_it_good_faith():
    held = paid_position(quantity="10", price="100")
    bought_b = buy("10", "100", MON, "10:00", instrument=200)  # no free cash: unpaid for now
    sold_a = sell("10", "100", MON, "10:30", instrument=100)  # settles Tuesday, with B's purchase
    sold_b = sell("10", "100", MON, "11:00", instrument=200)
    result = replay([held, bought_b, sold_a, sold_b], opening="1000")

    assert summary(result) == [(GOOD_FAITH, MON, bought_b.fill.id, sold_b.fill.id, D("1000.0000"))]


def test_partial_use_of_unsettled_funds_is_pro_rated():
    held = paid_position()  # 10,000 of the 14,000 opening cash
    sold_a = sell("100", "100", MON, instrument=100)  # +10,000 unsettled
    bought_b = buy("100", "100", MON, "10:30", instrument=200)  # 4,000 settled + 6,000 unsettled
    sold_half = sell("50", "100", MON, "11:00", instrument=200)
    sold_rest = sell("50", "100", MON, "11:30", instrument=200)
    result = replay([held, sold_a, bought_b, sold_half, sold_rest], opening="14000")

    assert summary(result) == [
        (GOOD_FAITH, MON, bought_b.fill.id, sold_half.fill.id, D("3000.0000")),
        (GOOD_FAITH, MON, bought_b.fill.id, sold_rest.fill.id, D("3000.0000")),
    ]
    assert result.days[-1].violations_12m == 2  # two sale orders


def test_partial_fills_of_one_sale_order_count_once():
    held = paid_position()
    sold_a = sell("100", "100", MON, instrument=100)
    bought_b = buy("100", "100", MON, "10:30", instrument=200)
    first = sell("60", "100", MON, "11:00", instrument=200, order_ref="perm-7")
    second = sell("40", "100", MON, "11:01", instrument=200, order_ref="perm-7")
    result = replay([held, sold_a, bought_b, first, second], opening="10000")

    assert [v.amount for v in result.violations] == [D("6000.0000"), D("4000.0000")]
    assert result.days[-1].violations_12m == 1


def test_only_the_unsettled_part_of_a_larger_purchase_is_the_violation():
    held = paid_position()
    sold_a = sell("100", "100", MON, instrument=100)
    bought_b = buy("140", "100", MON, "10:30", instrument=200)  # 4,000 settled + 10,000 unsettled
    sold_b = sell("140", "100", MON, "11:00", instrument=200)
    result = replay([held, sold_a, bought_b, sold_b], opening="14000")

    assert summary(result) == [(GOOD_FAITH, MON, bought_b.fill.id, sold_b.fill.id, D("10000.0000"))]


def test_lots_are_sold_fifo():
    held = paid_position()
    clean = buy("10", "100", MON, "09:45", instrument=200)  # settled cash (1,000 of the 11,000)
    sold_a = sell("100", "100", MON, "10:00", instrument=100)
    funded = buy("10", "100", MON, "10:30", instrument=200)  # unsettled proceeds
    first_sale = sell("10", "100", MON, "11:00", instrument=200)  # sells the clean lot
    second_sale = sell("10", "100", MON, "11:30", instrument=200)  # sells the funded one
    result = replay([held, clean, sold_a, funded, first_sale, second_sale], opening="11000")

    assert summary(result) == [(GOOD_FAITH, MON, funded.fill.id, second_sale.fill.id, D("1000.0000"))]


def test_balances_day_by_day_across_columbus_day():
    friday, monday, tuesday = date(2025, 10, 10), date(2025, 10, 13), date(2025, 10, 14)
    held = buy("100", "100", date(2025, 10, 6), instrument=100)
    sold_a = sell("100", "100", friday, instrument=100)  # settles Tuesday: Monday is Columbus Day
    bought_b = buy("50", "100", friday, "10:30", instrument=200)  # 5,000 of A's unsettled proceeds
    sold_b = sell("50", "110", monday, instrument=200)  # an NYSE session, but A's money has not settled
    assert sold_a.settlement_date == tuesday
    assert sold_b.settlement_date == tuesday  # T+1 from Monday: Tuesday is a settlement day

    result = replay([held, sold_a, bought_b, sold_b], opening="10000", start=friday, end=date(2025, 10, 16))

    assert by_date(result) == {
        friday: (D("0"), D("5000")),  # held's purchase settled Tuesday 10-07; A +10,000 and B -5,000 pending
        date(2025, 10, 11): (D("0"), D("5000")),
        date(2025, 10, 12): (D("0"), D("5000")),
        monday: (D("0"), D("10500")),  # + B's 5,500
        tuesday: (D("10500"), D("0")),
        date(2025, 10, 15): (D("10500"), D("0")),
        date(2025, 10, 16): (D("10500"), D("0")),
    }
    assert summary(result) == [(GOOD_FAITH, monday, bought_b.fill.id, sold_b.fill.id, D("5000.0000"))]


def test_deposits_are_settled_at_once_and_withdrawals_leave_at_once():
    bought = buy("100", "50", MON, "10:00")
    sold = sell("100", "50", MON, "11:00")
    movements = [deposit("5000", MON, "09:00"), deposit("-1000", TUE, "12:00")]
    result = replay([bought, sold], movements, end=WED)

    assert result.violations == ()
    assert by_date(result) == {
        MON: (D("5000"), D("0")),  # -5,000 and +5,000 pending
        TUE: (D("4000"), D("0")),
        WED: (D("4000"), D("0")),
    }


def test_a_purchase_that_settles_unpaid_leaves_a_debt_that_a_deposit_repays_first():
    bought = buy("10", "100", MON)  # nothing pays for it
    later = buy("10", "100", WED, instrument=200)
    sold_later = sell("10", "100", WED, "11:00", instrument=200)
    movements = [deposit("1500", WED, "09:00")]  # 1,000 repays the debt, 500 is free
    result = replay([bought, later, sold_later], movements, end=WED)

    assert by_date(result)[TUE] == (D("-1000"), D("0"))
    # 500 settled paid for half of the later purchase; the other half was never paid
    assert summary(result) == [(FREE_RIDING, WED, later.fill.id, sold_later.fill.id, D("500.0000"))]


def test_selling_more_than_held_opens_no_lot_and_a_covering_buy_opens_none():
    written = sell("1", "2", MON, instrument=9, sec_type="OPT")  # a covered call, written
    covered = buy("1", "1", MON, "11:00", instrument=9, sec_type="OPT")  # bought back with its premium
    written_again = sell("1", "2", MON, "12:00", instrument=9, sec_type="OPT")
    result = replay([written, covered, written_again])

    assert result.violations == ()


def test_the_rolling_twelve_month_count():
    def good_faith_on(day):
        instrument = day.toordinal()
        return [
            buy("1", "100", date(2024, 2, 26), instrument=instrument),
            sell("1", "100", day, "10:00", instrument=instrument),
            buy("1", "100", day, "10:30", instrument=instrument + 1),
            sell("1", "100", day, "11:00", instrument=instrument + 1),
        ]

    violation_days = [date(2024, 3, 4), date(2024, 9, 3), date(2025, 3, 3)]
    fills = [f for day in violation_days for f in good_faith_on(day)]
    # each violation's repurchase is sold for 100 that settles: withdraw it so the next one has no settled cash
    withdrawals = [deposit("-100", day) for day in violation_days[1:]]
    result = replay(fills, withdrawals, opening="300", start=date(2024, 3, 1), end=date(2025, 3, 5))
    count = {d.date: d.violations_12m for d in result.days}

    assert [v.trade_date for v in result.violations] == violation_days
    assert [v.kind for v in result.violations] == [GOOD_FAITH] * 3
    assert count[date(2024, 3, 3)] == 0
    assert count[date(2024, 3, 4)] == 1
    assert count[date(2024, 9, 3)] == 2
    assert count[date(2025, 3, 3)] == 3
    assert count[date(2025, 3, 4)] == 2  # 2024-03-04 left the window
    assert len(result.days) == (date(2025, 3, 5) - date(2024, 3, 1)).days + 1


def test_fills_are_replayed_in_fill_order_whatever_order_they_arrive_in():
    held = paid_position()
    fills = [
        held,
        sell("100", "100", MON, "10:00", instrument=100),
        buy("100", "100", MON, "10:30", instrument=200),
        sell("100", "101", MON, "11:00", instrument=200),
    ]
    assert replay(fills, opening="10000") == replay(list(reversed(fills)), opening="10000")


def test_activity_before_start_is_replayed_without_days_and_after_end_ignored():
    held = paid_position()
    sold = sell("100", "110", MON, instrument=100)
    ignored = buy("1000", "100", WED)
    result = replay([held, sold, ignored], opening="10000", start=MON, end=TUE)

    assert by_date(result) == {MON: (D("0"), D("11000")), TUE: (D("11000"), D("0"))}


def test_start_after_end_raises():
    with pytest.raises(ValueError, match="after end"):
        cash_account_replay(fills=[], movements=[], start=TUE, end=MON)


def test_details_fit_the_stored_column():
    held = paid_position(quantity="1234567.123", price="999999.99")
    sold_a = sell("1234567.123", "999999.99", MON, instrument=100)
    bought_b = buy("2469134.246", "999999.99", MON, "10:30", instrument=200)  # half unsettled, half unpaid
    sold_b = sell("2469134.246", "999999.99", MON, "11:00", instrument=200)
    result = replay([held, sold_a, bought_b, sold_b], opening="1234567122876.54")

    (violation,) = result.violations
    assert violation.kind == FREE_RIDING
    assert "of unsettled sale proceeds" in violation.detail
    assert len(violation.detail) <= 255
