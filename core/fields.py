"""Decimal precision for money, prices and quantities, set in one place.

Every model that stores a price, an amount of money or a quantity uses these helpers, every
service rounds with the matching ``quantize_*`` function before it writes, and every API field that
is not a model field's takes ``decimal_kwargs(kind)``, so the database, the services and the API
agree to the last digit.
"""

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Literal

from django.db import models

PRICE_DIGITS, PRICE_PLACES = 24, 8
MONEY_DIGITS, MONEY_PLACES = 24, 4
QUANTITY_DIGITS, QUANTITY_PLACES = 24, 8
RATIO_DIGITS, RATIO_PLACES = 24, 10

DecimalKind = Literal["price", "money", "quantity", "ratio"]
_PRECISION: dict[str, tuple[int, int]] = {
    "price": (PRICE_DIGITS, PRICE_PLACES),
    "money": (MONEY_DIGITS, MONEY_PLACES),
    "quantity": (QUANTITY_DIGITS, QUANTITY_PLACES),
    "ratio": (RATIO_DIGITS, RATIO_PLACES),
}

_PRICE_Q = Decimal(1).scaleb(-PRICE_PLACES)
_MONEY_Q = Decimal(1).scaleb(-MONEY_PLACES)
_QUANTITY_Q = Decimal(1).scaleb(-QUANTITY_PLACES)
_RATIO_Q = Decimal(1).scaleb(-RATIO_PLACES)
# The whole-number digits every field can hold: no parsed value may overflow a column.
_LARGEST = Decimal(10) ** min(
    PRICE_DIGITS - PRICE_PLACES, MONEY_DIGITS - MONEY_PLACES, QUANTITY_DIGITS - QUANTITY_PLACES
)


def decimal_kwargs(kind: DecimalKind) -> dict[str, int]:
    """``max_digits`` and ``decimal_places`` of ``kind``, for any decimal field (model, form, serializer):
    ``serializers.DecimalField(**decimal_kwargs("money"), allow_null=True)``."""
    digits, places = _PRECISION[kind]
    return {"max_digits": digits, "decimal_places": places}


def PriceField(**kwargs) -> models.DecimalField:  # noqa: N802 - reads like a field class
    return models.DecimalField(**decimal_kwargs("price"), **kwargs)


def MoneyField(**kwargs) -> models.DecimalField:  # noqa: N802
    return models.DecimalField(**decimal_kwargs("money"), **kwargs)


def QuantityField(**kwargs) -> models.DecimalField:  # noqa: N802
    return models.DecimalField(**decimal_kwargs("quantity"), **kwargs)


def RatioField(**kwargs) -> models.DecimalField:  # noqa: N802
    return models.DecimalField(**decimal_kwargs("ratio"), **kwargs)


def quantize_price(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(_PRICE_Q, rounding=ROUND_HALF_EVEN)


def quantize_money(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(_MONEY_Q, rounding=ROUND_HALF_EVEN)


def quantize_quantity(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(_QUANTITY_Q, rounding=ROUND_HALF_EVEN)


def quantize_ratio(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(_RATIO_Q, rounding=ROUND_HALF_EVEN)


def parse_decimal(value: object, *, field: str) -> Decimal:
    """Parse a decimal that arrived as text; floats are refused so no binary rounding sneaks in."""
    if isinstance(value, bool | float):
        raise ValueError(f"{field}: expected a decimal string, got {type(value).__name__} {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{field}: not a decimal number: {value!r}") from None
    else:
        raise ValueError(f"{field}: expected a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{field}: not a finite number: {value!r}")
    if abs(result) >= _LARGEST:
        raise ValueError(f"{field}: {value!r} is out of range (at most {_LARGEST - 1:,} in magnitude)")
    return result
