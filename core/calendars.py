"""NYSE sessions (opens, closes, early closes), settlement days and settlement dates.

A settlement day is an NYSE session on which the Federal Reserve is open. NYSE sessions come from
``exchange_calendars`` (``XNYS``); Federal Reserve holidays come from the rules below, because no
calendar in ``exchange_calendars`` models them. Where the two differ, money cannot move on an NYSE
session: Columbus Day and Veterans Day every year, and Martin Luther King Jr. Day 1990-1997 (a Fed
holiday since 1986, an NYSE holiday only since 1998). Every other Fed holiday is also an NYSE
holiday, or falls on a Saturday, which the Fed does not move to the Friday while the NYSE does.

Juneteenth 2021: the holiday became law on 2021-06-17. June 19 2021 was a Saturday; federal
employees had Friday June 18 off, but Federal Reserve Financial Services operated normally that
day ("standard practice for any federal holiday that falls on a Saturday", Fed press release of
2021-06-17) and the NYSE was open. So 2021-06-18 is a settlement day, which the Saturday rule gives
without a special case. The Fed and the NYSE both observe Juneteenth from 2022 (Monday 2022-06-20).

Unscheduled NYSE closures (e.g. 2025-01-09, the national day of mourning for President Carter) are
in ``exchange_calendars`` and are not sessions, so not settlement days. Unscheduled Fed-only
closures on an NYSE session are not modelled: there is none in the calendar's range.
"""

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars
import pandas as pd
from django.conf import settings

CALENDAR_START = date(1990, 1, 1)
CALENDAR_YEARS_AHEAD = 3
T_PLUS_ONE_SINCE = date(2024, 5, 28)  # US equities: T+1 for trades dated on or after this day, T+2 before
OPTION_SEC_TYPES = frozenset({"OPT", "FOP"})  # option premiums settle T+1


@dataclass(frozen=True, slots=True)
class _Nyse:
    calendar: exchange_calendars.ExchangeCalendar
    start: date
    end: date
    sessions: tuple[date, ...]  # sorted
    session_set: frozenset[date]


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@lru_cache(maxsize=1)
def _nyse() -> _Nyse:
    """Built once per process: building XNYS over ~40 years takes a noticeable fraction of a second."""
    start = CALENDAR_START
    end = _years_later(date.today(), CALENDAR_YEARS_AHEAD)
    calendar = exchange_calendars.get_calendar("XNYS", start=start.isoformat(), end=end.isoformat())
    sessions = tuple(calendar.sessions.date)
    return _Nyse(calendar=calendar, start=start, end=end, sessions=sessions, session_set=frozenset(sessions))


def _checked(day: date) -> _Nyse:
    nyse = _nyse()
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(f"expected a date, got {day!r}")
    if not nyse.start <= day <= nyse.end:
        raise ValueError(
            f"{day.isoformat()} is outside the NYSE calendar's range "
            f"{nyse.start.isoformat()}..{nyse.end.isoformat()}: sessions there are unknown"
        )
    return nyse


def exchange_zone() -> ZoneInfo:
    """The exchange's time zone (``EXCHANGE_TIME_ZONE``): trade dates and session times are read in it."""
    return ZoneInfo(settings.EXCHANGE_TIME_ZONE)


def trade_date_of(executed_at: datetime) -> date:
    """The trade date of an execution: its date in the exchange's time zone."""
    if executed_at.tzinfo is None or executed_at.utcoffset() is None:
        raise ValueError(f"executed_at must be timezone-aware, got naive {executed_at.isoformat()}")
    return executed_at.astimezone(exchange_zone()).date()


def is_nyse_session(day: date) -> bool:
    return day in _checked(day).session_set


def nyse_sessions(start: date, end: date) -> list[date]:
    """The NYSE sessions from start to end, both inclusive, oldest first."""
    nyse = _checked(start)
    _checked(end)
    return list(nyse.sessions[bisect_left(nyse.sessions, start) : bisect_right(nyse.sessions, end)])


def previous_sessions(end: date, count: int) -> list[date]:
    """The last ``count`` NYSE sessions up to ``end`` (included when it is a session), oldest first."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    nyse = _checked(end)
    stop = bisect_right(nyse.sessions, end)
    if count > stop:
        raise ValueError(f"fewer than {count} NYSE sessions up to {end.isoformat()} in the calendar")
    return list(nyse.sessions[stop - count : stop])


def session_close(day: date) -> datetime:
    """The close of an NYSE session as an aware UTC datetime, early closes included."""
    nyse = _checked(day)
    if day not in nyse.session_set:
        raise ValueError(f"{day.isoformat()} is not an NYSE session")
    close = nyse.calendar.session_close(pd.Timestamp(day))
    return close.to_pydatetime().astimezone(UTC)


@lru_cache(maxsize=64)
def session_open(day: date) -> datetime:
    """The open of an NYSE session (regular hours) as an aware UTC datetime."""
    nyse = _checked(day)
    if day not in nyse.session_set:
        raise ValueError(f"{day.isoformat()} is not an NYSE session")
    return nyse.calendar.session_open(pd.Timestamp(day)).to_pydatetime().astimezone(UTC)


@lru_cache(maxsize=64)
def _session_close_cached(day: date) -> datetime:
    return session_close(day)


def next_session(day: date) -> date:
    """The first NYSE session after ``day``."""
    nyse = _checked(day)
    index = bisect_right(nyse.sessions, day)
    if index >= len(nyse.sessions):
        raise ValueError(f"no NYSE session after {day.isoformat()} in the calendar")
    return nyse.sessions[index]


def market_is_open(at: datetime) -> bool:
    """Regular trading hours: ``at`` falls in an NYSE session between its open and its close (early ones too)."""
    day = trade_date_of(at)
    if not is_nyse_session(day):
        return False
    return session_open(day) <= at < _session_close_cached(day)


# The name market data uses (#12); the same rule.
market_open_at = market_is_open


def order_session(at: datetime) -> date:
    """The session an order placed at ``at`` belongs to: today's until its close, else the next one."""
    day = trade_date_of(at)
    if is_nyse_session(day) and at < _session_close_cached(day):
        return day
    return next_session(day)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday (Monday = 0) of a month; n = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last = next_month - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _fed_observed(day: date) -> date | None:
    """The Fed moves a Sunday holiday to Monday and does not move a Saturday one."""
    if day.weekday() == 6:
        return day + timedelta(days=1)
    if day.weekday() == 5:
        return None
    return day


@lru_cache(maxsize=128)
def fed_holidays(year: int) -> frozenset[date]:
    """The days the Federal Reserve Banks are closed for a holiday in a year, by rule."""
    monday, thursday = 0, 3
    fixed = [date(year, 1, 1), date(year, 7, 4), date(year, 11, 11), date(year, 12, 25)]
    if year >= 2021:  # Juneteenth National Independence Day Act, 2021-06-17
        fixed.append(date(year, 6, 19))
    observed = {d for d in map(_fed_observed, fixed) if d is not None}
    observed |= {
        _nth_weekday(year, 2, monday, 3),  # Washington's Birthday
        _nth_weekday(year, 5, monday, -1),  # Memorial Day
        _nth_weekday(year, 9, monday, 1),  # Labor Day
        _nth_weekday(year, 10, monday, 2),  # Columbus Day
        _nth_weekday(year, 11, thursday, 4),  # Thanksgiving
    }
    if year >= 1986:  # Martin Luther King Jr. Day, first observed 1986
        observed.add(_nth_weekday(year, 1, monday, 3))
    return frozenset(observed)


def is_fed_holiday(day: date) -> bool:
    return day in fed_holidays(day.year)


def is_settlement_day(day: date) -> bool:
    """An NYSE session on which the Federal Reserve is open."""
    return is_nyse_session(day) and not is_fed_holiday(day)


def add_settlement_days(day: date, n: int) -> date:
    """The n-th settlement day after ``day`` (``day`` itself does not count; n = 0 returns it)."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    nyse = _checked(day)
    index = bisect_right(nyse.sessions, day)
    while n > 0:
        if index >= len(nyse.sessions):
            raise ValueError(f"settlement day {n} after {day.isoformat()} is beyond the NYSE calendar's range")
        candidate = nyse.sessions[index]
        if not is_fed_holiday(candidate):
            n -= 1
            day = candidate
        index += 1
    return day


def settlement_cycle(trade_date: date, sec_type: str) -> int:
    """Settlement days from trade date to settlement: option premiums T+1; equities T+1 since 2024-05-28, T+2 before.

    Anything that is not an option (STK, ETFs, warrants, ...) follows the equity cycle.
    """
    if sec_type.upper() in OPTION_SEC_TYPES:
        return 1
    return 1 if trade_date >= T_PLUS_ONE_SINCE else 2


def settlement_date(*, trade_date: date, sec_type: str, broker_date: date | None = None) -> date:
    """When a trade's cash moves: the broker's date (IBKR ``settleDateTarget``) when given, else the rule.

    Stock delivered by an option exercise or assignment settles on the equity cycle: callers pass
    ``sec_type="STK"`` for that delivery, not the option's type.
    """
    if broker_date is not None:
        return broker_date
    return add_settlement_days(trade_date, settlement_cycle(trade_date, sec_type))
