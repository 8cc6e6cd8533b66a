from datetime import UTC, date, datetime, timedelta

import pytest

from trading.calendars import (
    add_settlement_days,
    fed_holidays,
    is_fed_holiday,
    is_nyse_session,
    is_settlement_day,
    nyse_sessions,
    previous_sessions,
    session_close,
    settlement_cycle,
    settlement_date,
    trade_date_of,
)


@pytest.mark.parametrize(
    ("trade_date", "sec_type", "settles", "why"),
    [
        (date(2025, 10, 10), "STK", date(2025, 10, 14), "Mon 10-13 is Columbus Day"),
        (date(2025, 11, 10), "STK", date(2025, 11, 12), "Tue 11-11 is Veterans Day"),
        (date(2024, 5, 24), "STK", date(2024, 5, 29), "T+2 before the switch; Mon 05-27 is Memorial Day"),
        (date(2024, 5, 28), "STK", date(2024, 5, 29), "T+1 from 2024-05-28"),
        (date(2024, 5, 23), "STK", date(2024, 5, 28), "T+2 over Memorial Day weekend"),
        (date(2025, 11, 26), "STK", date(2025, 11, 28), "Thanksgiving; the half day after it settles"),
        (date(2025, 12, 24), "STK", date(2025, 12, 26), "Christmas"),
        (date(2025, 4, 17), "STK", date(2025, 4, 21), "Good Friday"),
        (date(2025, 1, 8), "STK", date(2025, 1, 10), "2025-01-09 unscheduled closure (President Carter)"),
        (date(2029, 11, 9), "STK", date(2029, 11, 13), "Veterans Day on Sunday, observed Monday"),
        (date(2028, 11, 9), "STK", date(2028, 11, 10), "Veterans Day on Saturday is not moved"),
        (date(2021, 6, 17), "STK", date(2021, 6, 21), "T+2: Friday 2021-06-18 counts"),
        (date(2023, 6, 16), "STK", date(2023, 6, 21), "Juneteenth 2023 (Mon 06-19)"),
        (date(1997, 1, 17), "STK", date(1997, 1, 22), "MLK Day 1997: NYSE open, Fed closed"),
        (date(2021, 3, 5), "OPT", date(2021, 3, 8), "option premiums settle T+1 even before 2024"),
        (date(2025, 10, 10), "FOP", date(2025, 10, 14), "options skip Columbus Day too"),
        (date(2026, 11, 21), "STK", date(2026, 11, 23), "a Saturday trade date settles the next settlement day"),
    ],
)
def test_settlement_date_follows_the_rules(trade_date, sec_type, settles, why):
    assert settlement_date(trade_date=trade_date, sec_type=sec_type) == settles, why


def test_settlement_cycle():
    assert settlement_cycle(date(2024, 5, 24), "STK") == 2
    assert settlement_cycle(date(2024, 5, 28), "STK") == 1
    assert settlement_cycle(date(2024, 5, 24), "ETF") == 2  # anything not an option is on the equity cycle
    assert settlement_cycle(date(2010, 1, 4), "OPT") == 1
    assert settlement_cycle(date(2010, 1, 4), "fop") == 1


def test_broker_date_is_preferred():
    assert settlement_date(trade_date=date(2025, 10, 10), sec_type="STK", broker_date=date(2025, 10, 15)) == date(
        2025, 10, 15
    )


@pytest.mark.parametrize(
    ("day", "session", "settlement"),
    [
        (date(2025, 10, 13), True, False),  # Columbus Day
        (date(2025, 11, 11), True, False),  # Veterans Day
        (date(2029, 11, 12), True, False),  # Veterans Day 2029 (Sunday) observed Monday
        (date(2028, 11, 10), True, True),  # Veterans Day 2028 (Saturday): the Fed does not close Friday
        (date(2021, 6, 18), True, True),  # Juneteenth 2021: federal employees off, Fed services open
        (date(2022, 6, 20), False, False),  # Juneteenth 2022 (Sunday) observed Monday by both
        (date(2021, 12, 31), True, True),  # New Year 2022 on a Saturday: neither closes Friday
        (date(1997, 1, 20), True, False),  # MLK Day before the NYSE observed it (1998)
        (date(1998, 1, 19), False, False),
        (date(2025, 1, 9), False, False),  # unscheduled closure
        (date(2025, 4, 18), False, False),  # Good Friday: NYSE closed, the Fed open
        (date(2025, 11, 27), False, False),  # Thanksgiving
        (date(2025, 12, 25), False, False),
        (date(2025, 11, 29), False, False),  # Saturday
        (date(2025, 11, 28), True, True),  # early close is still a session
    ],
)
def test_sessions_and_settlement_days(day, session, settlement):
    assert is_nyse_session(day) is session
    assert is_settlement_day(day) is settlement


def test_fed_holidays_of_a_year():
    assert fed_holidays(2027) == {
        date(2027, 1, 1),
        date(2027, 1, 18),
        date(2027, 2, 15),
        date(2027, 5, 31),
        # Juneteenth (Sat 06-19) and July 4th (Sun -> Mon 07-05)
        date(2027, 7, 5),
        date(2027, 9, 6),
        date(2027, 10, 11),
        date(2027, 11, 11),
        date(2027, 11, 25),
        # Christmas on a Saturday: not moved
    }
    assert not is_fed_holiday(date(2021, 6, 18))
    assert is_fed_holiday(date(2022, 6, 20))


def test_fed_only_holidays_on_nyse_sessions_are_columbus_veterans_and_early_mlk():
    """Which Fed holidays fall on an NYSE session across the data's range: the rule set is complete."""
    names = set()
    for year in range(1990, 2029):
        for day in fed_holidays(year):
            if is_nyse_session(day):
                if day.month == 10:
                    names.add("columbus")
                elif day.month == 11:
                    names.add("veterans")
                elif day.month == 1 and year <= 1997:
                    names.add("mlk before 1998")
                else:
                    names.add(day.isoformat())
    assert names == {"columbus", "veterans", "mlk before 1998"}


def test_add_settlement_days():
    assert add_settlement_days(date(2025, 10, 10), 0) == date(2025, 10, 10)
    assert add_settlement_days(date(2025, 10, 10), 1) == date(2025, 10, 14)
    assert add_settlement_days(date(2025, 10, 10), 3) == date(2025, 10, 16)
    with pytest.raises(ValueError, match="negative"):
        add_settlement_days(date(2025, 10, 10), -1)


def test_trade_date_of_uses_the_exchange_time_zone():
    assert trade_date_of(datetime(2026, 11, 20, 23, 30, tzinfo=UTC)) == date(2026, 11, 20)
    assert trade_date_of(datetime(2026, 11, 21, 4, 30, tzinfo=UTC)) == date(2026, 11, 20)
    assert trade_date_of(datetime(2026, 11, 21, 5, 0, tzinfo=UTC)) == date(2026, 11, 21)
    assert trade_date_of(datetime(2026, 7, 1, 3, 59, tzinfo=UTC)) == date(2026, 6, 30)  # EDT is UTC-4


def test_trade_date_of_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="aware"):
        trade_date_of(datetime(2026, 11, 20, 12, 0))


def test_session_close_includes_early_closes():
    assert session_close(date(2026, 11, 27)) == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # 13:00 New York
    assert session_close(date(2026, 11, 25)) == datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    assert session_close(date(2026, 7, 1)) == datetime(2026, 7, 1, 20, 0, tzinfo=UTC)  # 16:00 EDT
    assert session_close(date(2026, 11, 27)).utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="not an NYSE session"):
        session_close(date(2026, 11, 26))


def test_nyse_sessions_inclusive():
    assert nyse_sessions(date(2025, 12, 24), date(2025, 12, 29)) == [
        date(2025, 12, 24),
        date(2025, 12, 26),
        date(2025, 12, 29),
    ]
    assert nyse_sessions(date(2025, 12, 25), date(2025, 12, 25)) == []


def test_previous_sessions_across_a_holiday():
    assert previous_sessions(date(2025, 12, 29), 5) == [
        date(2025, 12, 22),
        date(2025, 12, 23),
        date(2025, 12, 24),
        date(2025, 12, 26),
        date(2025, 12, 29),
    ]
    # end on a holiday: the window ends at the session before it
    assert previous_sessions(date(2025, 12, 25), 2) == [date(2025, 12, 23), date(2025, 12, 24)]
    # Columbus Day is an NYSE session, so it is in the PDT window even though nothing settles on it
    assert previous_sessions(date(2025, 10, 14), 2) == [date(2025, 10, 13), date(2025, 10, 14)]
    assert previous_sessions(date(2025, 10, 14), 0) == []


def test_previous_sessions_before_the_first_session_raises():
    with pytest.raises(ValueError, match="fewer than 3"):
        previous_sessions(date(1990, 1, 3), 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: is_nyse_session(date(1989, 12, 29)),
        lambda: is_settlement_day(date(2100, 1, 4)),
        lambda: nyse_sessions(date(1989, 1, 1), date(1990, 12, 31)),
        lambda: previous_sessions(date(2100, 1, 4), 5),
        lambda: session_close(date(2100, 1, 4)),
        lambda: settlement_date(trade_date=date(2100, 1, 4), sec_type="STK"),
    ],
)
def test_dates_outside_the_calendar_raise(call):
    with pytest.raises(ValueError, match="outside the NYSE calendar's range"):
        call()


def test_the_calendar_reaches_back_to_1990():
    assert is_nyse_session(date(1990, 1, 2))
    assert not is_nyse_session(date(1990, 1, 1))
