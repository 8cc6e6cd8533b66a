"""The NYSE calendar moved to ``core.calendars`` (marketdata, below trading, needs it for gap-free bars).

Kept as a re-export so every ``from trading.calendars import ...`` goes on working.
"""

from core.calendars import *  # noqa: F403
from core.calendars import (  # noqa: F401 - names tests and callers import from here
    CALENDAR_START,
    CALENDAR_YEARS_AHEAD,
    OPTION_SEC_TYPES,
    T_PLUS_ONE_SINCE,
    _nyse,
    add_settlement_days,
    exchange_zone,
    fed_holidays,
    is_fed_holiday,
    is_nyse_session,
    is_settlement_day,
    market_is_open,
    market_open_at,
    next_session,
    nyse_sessions,
    order_session,
    previous_sessions,
    session_close,
    session_open,
    settlement_cycle,
    settlement_date,
    trade_date_of,
)
