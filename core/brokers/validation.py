"""Broker rows checked against the columns they are written to, in one place for every adapter.

Each adapter (simulated, ibkr, flex) builds its boundary objects and passes them through the
``checked_*`` function of their type before it hands them out. A value that would not fit its column
(limits.py) raises ``RowRejected`` naming the field, and the adapter skips the row with a warning that
names the row, as it does for a row it cannot parse. Anything else that parsing one row raises
(``ROW_ERRORS``: a time past year 9999 once in UTC is an OverflowError, a digit string too long for
``int()`` a ValueError, ...) is that row's warning too (``problem``), never the failure of the whole
answer, of the account's sync, or of the accounts after it.

What this module cannot judge is not here: an answer of the wrong shape (a string where the rows
belong) is a failed request, raised as BrokerError by the adapter that reads it; a settlement date from
the broker is judged against the trade date, which only the ledger computes (trading/services).
"""

import dataclasses
import re
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from django.utils import timezone

from core.brokers import limits
from core.brokers.base import Bar, BrokerAccount, BrokerCashFlow, BrokerExecution, BrokerPosition, Quote
from core.brokers.contracts import InstrumentSpec
from core.fields import MONEY_PLACES, PRICE_PLACES, QUANTITY_PLACES


class RowRejected(ValueError):  # noqa: N818 - reads as "this row is rejected"
    """One row from the broker cannot be used; the message names the field and says why."""


# What parsing one row may raise besides RowRejected. ArithmeticError covers OverflowError and
# decimal.InvalidOperation; LookupError a missing key; TypeError and AttributeError a value of the
# wrong type where an adapter does not check it.
ROW_ERRORS = (ValueError, TypeError, AttributeError, LookupError, ArithmeticError)

SHOWN_LENGTH = 40  # characters of a value shown in a warning


def problem(exc: BaseException) -> str:
    """The reason a row was skipped: a rejection's own message, anything else with its type."""
    if isinstance(exc, RowRejected):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# Control characters (Unicode category Cc; NUL cannot be stored in PostgreSQL text or JSON at all) and
# lone surrogates (valid in JSON, not encodable as UTF-8): never in a name, an id or a warning.
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# In free text (a fill's raw row, kept as JSON) only what cannot be stored at all.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def shown(value: object, length: int = SHOWN_LENGTH) -> str:
    """A value for a warning: control characters escaped (a NUL cannot be stored in a warning either),
    long values cut, so a 10,000-character symbol does not make a 10,000-character warning."""
    text = str(value)
    cut = text[:length]
    cut = UNPRINTABLE.sub(lambda match: ascii(match.group())[1:-1], cut)
    return f"{cut}... ({len(text):,} characters)" if len(text) > length else cut


# --- single values -------------------------------------------------------------------------------
def text(value: str, *, field: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise RowRejected(f"{field}: expected text, got {type(value).__name__}")
    if len(value) > max_length:
        raise RowRejected(f"{field}: {len(value):,} characters, more than the {max_length} its column holds")
    if UNPRINTABLE.search(value):
        raise RowRejected(
            f"{field}: holds a character that cannot be stored (control or lone surrogate): {shown(value)}"
        )
    return value


def identifier(value: int | None, *, field: str) -> int | None:
    """An IBKR id (conId, orderId, permId): stored in a 64-bit column."""
    low, high = limits.BIG_INTEGER_RANGE
    if value is not None and not low <= value <= high:
        raise RowRejected(f"{field}: {shown(value)} is beyond the 64-bit range of its column")
    return value


def integer(value: Decimal | int, *, field: str) -> int:
    """A whole number for a 32-bit column (DayTradesRemaining)."""
    if value != int(value):
        raise RowRejected(f"{field}: not a whole number: {value}")
    low, high = limits.INTEGER_RANGE
    if not low <= int(value) <= high:
        raise RowRejected(f"{field}: {shown(value)} is beyond the range of its column ({low:,}..{high:,})")
    return int(value)


def _in_range(value: Decimal, *, field: str, limit: Decimal) -> Decimal:
    if not value.is_finite() or abs(value) >= limit:
        digits = limit.adjusted()
        raise RowRejected(
            f"{field}: {shown(f'{value:f}')} does not fit its column (at most {digits} digits before the point)"
        )
    return value


def money(value: Decimal | None, *, field: str) -> Decimal | None:
    return None if value is None else _in_range(value, field=field, limit=limits.MONEY_LIMIT)


def price(value: Decimal | None, *, field: str) -> Decimal | None:
    return None if value is None else _in_range(value, field=field, limit=limits.PRICE_LIMIT)


def quantity(value: Decimal | None, *, field: str) -> Decimal | None:
    """In range, and rounded to the places its column keeps when it has more (100.0 stays 100.0)."""
    if value is None:
        return None
    return _fit(_in_range(value, field=field, limit=limits.QUANTITY_LIMIT), QUANTITY_PLACES)


def _fit(value: Decimal, places: int) -> Decimal:
    if value.as_tuple().exponent >= -places:
        return value
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def _not_rounded_away(value: Decimal, *, field: str, places: int) -> None:
    if value != 0 and _fit(value, places) == 0:
        raise RowRejected(f"{field}: {value:f} rounds to 0 at the {places} decimal places its column keeps")


def moment(value: datetime, *, field: str) -> datetime:
    """A fill or cash-flow time: trade and settlement dates can be computed for it (limits.EARLIEST_TIME),
    and it is not in the future."""
    if value < limits.EARLIEST_TIME:
        raise RowRejected(
            f"{field}: {value.isoformat()} is before {limits.EARLIEST_TIME:%Y-%m-%d}, where the exchange calendar "
            "that gives trade and settlement dates begins"
        )
    if value > timezone.now() + limits.FUTURE_TOLERANCE:
        raise RowRejected(f"{field}: {value.isoformat()} is in the future")
    return value


def notional(amount: Decimal, *, field: str) -> None:
    """quantity x price x multiplier (plus fees): the money columns it ends up in (market value,
    settlement amount, realized P&L) must hold it."""
    if abs(amount) >= limits.MONEY_LIMIT:
        raise RowRejected(
            f"{field}: {shown(f'{amount:f}')} does not fit the money columns "
            f"(at most {limits.MONEY_LIMIT.adjusted()} digits before the point)"
        )


def storable(values: object, *, field: str) -> None:
    """Every text in a JSON value (a fill's raw row) can be stored: no NUL, no lone surrogate."""
    where = _unstorable(values)
    if where is not None:
        path, text = where
        raise RowRejected(f"{field}{path}: holds a NUL or a lone surrogate: {shown(text)}")


def _unstorable(values: object) -> tuple[str, str] | None:
    """The path and text of the first text that cannot be stored, if any (built only when found)."""
    if isinstance(values, str):
        return ("", values) if UNSTORABLE.search(values) else None
    if isinstance(values, dict):
        for key, value in values.items():
            if isinstance(key, str) and UNSTORABLE.search(key):
                return "", key
            found = _unstorable(value)
            if found is not None:
                return f".{shown(key)}{found[0]}", found[1]
    elif isinstance(values, list | tuple):
        for index, value in enumerate(values):
            found = _unstorable(value)
            if found is not None:
                return f"[{index}]{found[0]}", found[1]
    return None


# --- boundary objects ----------------------------------------------------------------------------
def checked_instrument(spec: InstrumentSpec) -> InstrumentSpec:
    text(spec.symbol, field="symbol", max_length=limits.SYMBOL_LENGTH)
    text(spec.currency, field="currency", max_length=limits.CURRENCY_LENGTH)
    text(spec.exchange, field="exchange", max_length=limits.EXCHANGE_LENGTH)
    identifier(spec.con_id, field="con_id")
    # The spec keeps the broker's digits (they are part of its key); the column keeps 8 places.
    _in_range(spec.multiplier, field="multiplier", limit=limits.QUANTITY_LIMIT)
    _not_rounded_away(spec.multiplier, field="multiplier", places=QUANTITY_PLACES)
    if spec.strike is not None:
        price(spec.strike, field="strike")
        _not_rounded_away(spec.strike, field="strike", places=PRICE_PLACES)
    key = spec.key
    if len(key) > limits.INSTRUMENT_KEY_LENGTH:
        raise RowRejected(
            f"key: the instrument's key {shown(key)!r} is longer than the {limits.INSTRUMENT_KEY_LENGTH} "
            "characters its column holds"
        )
    return spec


def checked_position(row: BrokerPosition, notes: list[str]) -> BrokerPosition:
    """A position that fits; a quantity that rounds to 0 is 0 (closed at the broker), with a note."""
    instrument = checked_instrument(row.instrument)
    stored = quantity(row.quantity, field="quantity")
    if stored == 0 and row.quantity != 0:
        notes.append(
            f"quantity {row.quantity:f} rounds to 0 at the {QUANTITY_PLACES} decimal places it is stored with; "
            "read as 0 (closed at the broker)"
        )
        stored = Decimal(0)
    price(row.average_price, field="average_price")
    price(row.market_price, field="market_price")
    highest = max(row.average_price, row.market_price or Decimal(0))
    notional(stored * highest * instrument.multiplier, field="quantity x price x multiplier")
    return row if stored is row.quantity else dataclasses.replace(row, quantity=stored)


def checked_execution(row: BrokerExecution) -> BrokerExecution:
    text(row.exec_id, field="exec_id", max_length=limits.EXEC_ID_LENGTH)
    instrument = checked_instrument(row.instrument)
    stored = quantity(row.quantity, field="quantity")
    if stored <= 0:
        raise RowRejected(
            f"quantity: {row.quantity:f} rounds to 0 at the {QUANTITY_PLACES} decimal places its column keeps"
        )
    price(row.price, field="price")
    money(row.commission, field="commission")
    text(row.commission_currency, field="commission_currency", max_length=limits.CURRENCY_LENGTH)
    text(row.exchange, field="exchange", max_length=limits.EXCHANGE_LENGTH)
    identifier(row.order_id, field="order_id")
    identifier(row.perm_id, field="perm_id")
    moment(row.executed_at, field="executed_at")
    notional(
        stored * row.price * instrument.multiplier + abs(row.commission or 0),
        field="quantity x price x multiplier",
    )
    storable(row.raw, field="raw")
    return row if stored is row.quantity else dataclasses.replace(row, quantity=stored)


def checked_cash_flow(row: BrokerCashFlow) -> BrokerCashFlow:
    text(row.flow_id, field="flow_id", max_length=limits.FLOW_ID_LENGTH)
    money(row.amount, field="amount")
    _not_rounded_away(row.amount, field="amount", places=MONEY_PLACES)
    text(row.currency, field="currency", max_length=limits.CURRENCY_LENGTH)
    moment(row.at, field="at")
    return row


def checked_account(row: BrokerAccount) -> BrokerAccount:
    """The account's identity; its values are checked one by one where the adapter reads them."""
    text(row.account_id, field="account_id", max_length=limits.ACCOUNT_ID_LENGTH)
    text(row.base_currency, field="base_currency", max_length=limits.CURRENCY_LENGTH)
    return row


def checked_bar(row: Bar) -> Bar:
    for name in ("open", "high", "low", "close"):
        price(getattr(row, name), field=name)
    quantity(row.volume, field="volume")
    if row.wap is not None:
        price(row.wap, field="wap")
    if not row.low <= row.open <= row.high:
        raise RowRejected(f"open {row.open} is outside [low {row.low}, high {row.high}]")
    if not row.low <= row.close <= row.high:
        raise RowRejected(f"close {row.close} is outside [low {row.low}, high {row.high}]")
    return row


def checked_quote(row: Quote) -> Quote:
    for name in ("bid", "ask", "last"):
        price(getattr(row, name), field=name)
    for name in ("bid_size", "ask_size", "last_size", "volume"):
        if getattr(row, name) is not None:
            quantity(getattr(row, name), field=name)
    return row
