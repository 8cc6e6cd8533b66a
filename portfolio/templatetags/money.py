"""Display formats for the ledger pages: money with its currency, signed P&L, ratios, quantities, prices.

Every filter takes a ``Decimal`` (or ``None``) and never converts to ``float``: what the trader reads
is what the database holds, rounded half-up for display only. ``None`` shows as an en dash.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

register = template.Library()

EMPTY = "\u2013"  # en dash
# Prefix symbols for the currencies IBKR accounts are commonly based in; anything else gets its code.
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$", "HKD": "HK$", "CHF": "CHF "}
ZERO_DECIMAL_CURRENCIES = {"JPY", "KRW", "HUF"}


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def _fixed(number: Decimal, places: int) -> str:
    """``number`` with thousands separators and exactly ``places`` decimals, never in exponent form."""
    quantum = Decimal(1).scaleb(-places)
    return f"{number.quantize(quantum, rounding=ROUND_HALF_UP):,.{places}f}"


@register.filter
def money(value, currency: str = "USD") -> str:
    """``-1234.5|money:"USD"`` -> ``-$1,234.50``; an unknown currency is written after the amount."""
    number = _decimal(value)
    if number is None:
        return EMPTY
    code = (currency or "USD").upper()
    places = 0 if code in ZERO_DECIMAL_CURRENCIES else 2
    text = _fixed(abs(number), places)
    sign = "-" if number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) < 0 else ""
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


@register.filter
def signed_money(value, currency: str = "USD") -> str:
    """Like ``money`` with a ``+`` on gains, for P&L columns."""
    text = money(value, currency)
    number = _decimal(value)
    return f"+{text}" if number is not None and text != EMPTY and not text.startswith("-") and number > 0 else text


@register.filter
def percent(value, places: int = 2) -> str:
    """A fraction as a percentage: ``0.031371|percent`` -> ``3.14%``."""
    number = _decimal(value)
    if number is None:
        return EMPTY
    return f"{_fixed(number * 100, int(places))}%"


@register.filter
def signed_percent(value, places: int = 2) -> str:
    text = percent(value, places)
    number = _decimal(value)
    return f"+{text}" if number is not None and number > 0 and not text.startswith("-") else text


@register.filter
def ratio(value, places: int = 2) -> str:
    """A plain number such as a profit factor or a Sharpe ratio, to ``places`` decimals."""
    number = _decimal(value)
    return EMPTY if number is None else _fixed(number, int(places))


@register.filter
def quantity(value) -> str:
    """A quantity without trailing zeros: ``100.00000000`` -> ``100``, ``0.50000000`` -> ``0.5``."""
    number = _decimal(value)
    if number is None:
        return EMPTY
    places = max(0, -number.normalize().as_tuple().exponent)
    return _fixed(number, places)


@register.filter
def price(value, max_places: int = 8) -> str:
    """A per-unit price with at least 2 decimals and as many more as it really has, up to ``max_places``
    (an average price is rounded to 4: ``505.04533333|price:4`` -> ``505.0453``)."""
    number = _decimal(value)
    if number is None:
        return EMPTY
    places = min(int(max_places), max(2, -number.normalize().as_tuple().exponent))
    return _fixed(number, places)


@register.filter
def pnl_class(value) -> str:
    """The CSS class for a signed figure: ``pos``, ``neg`` or nothing for zero and unknown."""
    number = _decimal(value)
    if number is None or number == 0:
        return ""
    return "pos" if number > 0 else "neg"


@register.filter
def duration(seconds) -> str:
    """A holding time: ``45s``, ``12m 30s``, ``3h 05m``, ``2d 4h``."""
    number = _decimal(seconds)
    if number is None:
        return EMPTY
    total = int(number)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
