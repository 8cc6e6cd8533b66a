"""The sizes of the columns that broker data is written to, as the broker boundary checks them.

The boundary sits below the apps that own those columns (trading, marketdata, portfolio) and may not
import them, so the sizes are copied here; tests/core/test_broker_limits.py fails the moment a copy
and its column differ. A value that would not fit is refused at the boundary, where the row it came
in can still be named, instead of failing the whole write (and every later one) in the database.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from core.fields import (
    MONEY_DIGITS,
    MONEY_PLACES,
    PRICE_DIGITS,
    PRICE_PLACES,
    QUANTITY_DIGITS,
    QUANTITY_PLACES,
)

# Text columns: max_length.
ACCOUNT_ID_LENGTH = 32  # trading.Account.account_id
SYMBOL_LENGTH = 32  # marketdata.Instrument.symbol
CURRENCY_LENGTH = 3  # every currency column (accounts, instruments, fills, cash flows, account values)
EXCHANGE_LENGTH = 16  # marketdata.Instrument.exchange, trading.Execution.exchange
INSTRUMENT_KEY_LENGTH = 120  # marketdata.Instrument.key (InstrumentSpec.key)
EXEC_ID_LENGTH = 64  # trading.Execution.exec_id
FLOW_ID_LENGTH = 64  # trading.CashFlow.flow_id

# Integer columns: the ranges every database but SQLite enforces (SQLite overflows past 64 bits).
BIG_INTEGER_RANGE = (-(2**63), 2**63 - 1)  # con_id, order_id, perm_id
INTEGER_RANGE = (-(2**31), 2**31 - 1)  # portfolio.AccountStatus.day_trades_remaining

# Decimal columns (core.fields): a value's magnitude must stay below 10 ** (digits - places).
QUANTITY_LIMIT = Decimal(10) ** (QUANTITY_DIGITS - QUANTITY_PLACES)  # quantities, multipliers
PRICE_LIMIT = Decimal(10) ** (PRICE_DIGITS - PRICE_PLACES)  # prices, strikes
MONEY_LIMIT = Decimal(10) ** (MONEY_DIGITS - MONEY_PLACES)  # commissions, amounts, quantity x price

# Fill and cash-flow times: trade and settlement dates are computed from them with the NYSE calendar
# (core.calendars), which starts on 1990-01-01 and raises before; a day later here leaves room for any
# time zone. A fill from the future is impossible: a day of clock difference is allowed.
EARLIEST_TIME = datetime(1990, 1, 2, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)
