"""The broker boundary's limits are the columns its rows are written to (issue #16).

``core.brokers.limits`` may not import the apps that own those columns (tests/test_layers.py), so it
holds copies; these tests make the copies fail the moment a column changes.
"""

from datetime import timedelta

import pytest
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations

from core import fields
from core.brokers import limits
from marketdata.models import Instrument
from portfolio.models import AccountSnapshot, AccountStatus, Position, PositionEvent
from trading.calendars import CALENDAR_START, CALENDAR_YEARS_AHEAD, exchange_zone
from trading.models import Account, CashFlow, Execution, LotMatch, RoundTrip, SettlementTracking

# Every column a value from the broker (or computed from one row of it) is written to, by limit.
TEXT_COLUMNS = {
    "ACCOUNT_ID_LENGTH": [(Account, "account_id")],
    "SYMBOL_LENGTH": [(Instrument, "symbol")],
    "CURRENCY_LENGTH": [
        (Account, "base_currency"),
        (Instrument, "currency"),
        (Execution, "commission_currency"),
        (CashFlow, "currency"),
        (AccountStatus, "currency"),
        (AccountSnapshot, "currency"),
    ],
    "EXCHANGE_LENGTH": [(Instrument, "exchange"), (Execution, "exchange")],
    "INSTRUMENT_KEY_LENGTH": [(Instrument, "key")],
    "EXEC_ID_LENGTH": [(Execution, "exec_id")],
    "FLOW_ID_LENGTH": [(CashFlow, "flow_id")],
}
INTEGER_COLUMNS = {
    "BIG_INTEGER_RANGE": [(Instrument, "con_id"), (Execution, "order_id"), (Execution, "perm_id")],
    "INTEGER_RANGE": [(AccountStatus, "day_trades_remaining")],
}
DECIMAL_COLUMNS = {
    "QUANTITY_LIMIT": [
        (Instrument, "multiplier"),
        (Execution, "quantity"),
        (Position, "quantity"),
        (PositionEvent, "quantity_after"),
    ],
    "PRICE_LIMIT": [
        (Instrument, "strike"),
        (Execution, "price"),
        (Position, "average_price"),
        (Position, "current_price"),
    ],
    "MONEY_LIMIT": [
        (Execution, "commission"),
        (CashFlow, "amount"),
        (SettlementTracking, "amount"),
        (LotMatch, "realized_pnl"),
        (RoundTrip, "realized_pnl"),
        (Position, "market_value"),
        (Position, "unrealized_pnl"),
        (AccountStatus, "net_liquidation"),
        (AccountSnapshot, "net_liquidation"),
    ],
}
PLACES = {"QUANTITY_LIMIT": "QUANTITY_PLACES", "PRICE_LIMIT": "PRICE_PLACES", "MONEY_LIMIT": "MONEY_PLACES"}


def _ids(table: dict) -> list[str]:
    return [f"{name}-{model.__name__}.{field}" for name, columns in table.items() for model, field in columns]


def _cases(table: dict) -> list[tuple]:
    return [(name, model, field) for name, columns in table.items() for model, field in columns]


@pytest.mark.parametrize(("limit", "model", "field"), _cases(TEXT_COLUMNS), ids=_ids(TEXT_COLUMNS))
def test_text_limits_are_the_max_length_of_their_columns(limit, model, field):
    assert getattr(limits, limit) == model._meta.get_field(field).max_length


@pytest.mark.parametrize(("limit", "model", "field"), _cases(INTEGER_COLUMNS), ids=_ids(INTEGER_COLUMNS))
def test_integer_ranges_are_the_ranges_of_their_columns(limit, model, field):
    column = model._meta.get_field(field)
    # SQLite reports no range at all; the portable range is the one every other backend enforces.
    assert getattr(limits, limit) == BaseDatabaseOperations.integer_field_ranges[column.get_internal_type()]


@pytest.mark.parametrize(("limit", "model", "field"), _cases(DECIMAL_COLUMNS), ids=_ids(DECIMAL_COLUMNS))
def test_decimal_limits_are_the_whole_digits_of_their_columns(limit, model, field):
    column = model._meta.get_field(field)
    assert isinstance(column, models.DecimalField)
    assert getattr(limits, limit) == 10 ** (column.max_digits - column.decimal_places)
    assert getattr(fields, PLACES[limit]) == column.decimal_places


def test_times_from_the_broker_are_inside_the_nyse_calendar():
    """Trade and settlement dates are computed from fill times with the NYSE calendar, which raises
    outside its range: the boundary's window must lie inside it, with room for settlement."""
    earliest_trade_date = limits.EARLIEST_TIME.astimezone(exchange_zone()).date()
    assert earliest_trade_date >= CALENDAR_START
    latest_settlement_room = timedelta(days=365 * CALENDAR_YEARS_AHEAD - 30)
    assert latest_settlement_room > limits.FUTURE_TOLERANCE
