"""Recognising a stock split in two position readings with no fills between them."""

from decimal import Decimal
from fractions import Fraction

# Split ratios seen in practice are small fractions: 2, 3, 3/2, 1/10, 1/20...
MAX_SPLIT_TERM = 50


def split_ratio(
    *, quantity_before: Decimal, average_before: Decimal, quantity_after: Decimal, average_after: Decimal
) -> Decimal | None:
    """The split ratio (after/before) when the change looks like a split, else None.

    A split changes quantity and per-unit cost by the same ratio and keeps total cost, so
    quantity x average price is preserved (within the rounding of the broker's average price) and
    the ratio is a fraction of small whole numbers.
    """
    if quantity_before == 0 or quantity_after == 0 or quantity_before == quantity_after:
        return None
    if (quantity_before > 0) != (quantity_after > 0):
        return None
    # Total cost first: it rules out nearly every trade at the price of two multiplications.
    cost_before = quantity_before * average_before
    cost_after = quantity_after * average_after
    # The broker rounds the new average price; allow that rounding on every unit, plus a cent.
    tolerance = abs(quantity_after) * Decimal("0.0001") + Decimal("0.01")
    if abs(cost_after - cost_before) > tolerance:
        return None
    exact = Fraction(quantity_after) / Fraction(quantity_before)
    simple = exact.limit_denominator(MAX_SPLIT_TERM)
    if simple != exact or simple.numerator > MAX_SPLIT_TERM:
        return None
    return Decimal(simple.numerator) / Decimal(simple.denominator)
