"""Recognising a stock split in two position readings with no fills between them."""

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

# Split ratios seen in practice are small fractions: 2, 3, 3/2, 1/10, 1/20...
MAX_SPLIT_TERM = 50
# The broker rounds the new average price: allowed error per unit (and per whole position, a cent).
AVERAGE_ROUNDING = Decimal("0.0001")


@dataclass(frozen=True)
class Split:
    """A split of ``ratio`` (new shares per old share). ``quantity_split`` is the holding the ratio
    gives; when it is not whole, the fraction ``quantity_split - quantity_after`` was paid out in cash
    in lieu (a small sale)."""

    ratio: Decimal
    quantity_split: Decimal


def _same_side(quantity_before: Decimal, quantity_after: Decimal) -> bool:
    """Both readings hold something, long both times or short both times: what a split can link."""
    return quantity_before != 0 and quantity_after != 0 and (quantity_before > 0) == (quantity_after > 0)


def split_ratio(
    *, quantity_before: Decimal, average_before: Decimal, quantity_after: Decimal, average_after: Decimal
) -> Decimal | None:
    """The split ratio (after/before) when the change looks like a split, else None.

    A split changes quantity and per-unit cost by the same ratio and keeps total cost, so
    quantity x average price is preserved (within the rounding of the broker's average price) and
    the ratio is a fraction of small whole numbers.
    """
    if not _same_side(quantity_before, quantity_after) or quantity_before == quantity_after:
        return None
    # Total cost first: it rules out nearly every trade at the price of two multiplications.
    cost_before = quantity_before * average_before
    cost_after = quantity_after * average_after
    # The broker rounds the new average price; allow that rounding on every unit, plus a cent.
    tolerance = abs(quantity_after) * AVERAGE_ROUNDING + Decimal("0.01")
    if abs(cost_after - cost_before) > tolerance:
        return None
    exact = Fraction(quantity_after) / Fraction(quantity_before)
    simple = exact.limit_denominator(MAX_SPLIT_TERM)
    if simple != exact or simple.numerator > MAX_SPLIT_TERM:
        return None
    return Decimal(simple.numerator) / Decimal(simple.denominator)


def split_detect(
    *, quantity_before: Decimal, average_before: Decimal, quantity_after: Decimal, average_after: Decimal
) -> Split | None:
    """A split, possibly with cash in lieu of a fractional share, or None.

    Without a fraction the total cost is preserved (``split_ratio``). With one (a 1-for-10 reverse
    split of 105 shares leaves 10 and pays half a share in cash) the cost is not, but the per-unit
    cost still moved by exactly the ratio and the holding is the whole part of quantity x ratio.
    """
    ratio = split_ratio(
        quantity_before=quantity_before,
        average_before=average_before,
        quantity_after=quantity_after,
        average_after=average_after,
    )
    if ratio is not None:
        return Split(ratio=ratio, quantity_split=quantity_after)
    if not _same_side(quantity_before, quantity_after) or average_before <= 0 or average_after <= 0:
        return None
    implied = (Fraction(average_before) / Fraction(average_after)).limit_denominator(MAX_SPLIT_TERM)
    if implied == 1 or implied.numerator > MAX_SPLIT_TERM:
        return None
    ratio = Decimal(implied.numerator) / Decimal(implied.denominator)
    if abs(average_after * ratio - average_before) > AVERAGE_ROUNDING * max(ratio, Decimal(1)):
        return None
    whole = Fraction(quantity_before) * implied
    if whole.denominator == 1:
        return None  # no fraction to pay out, yet the cost moved: a trade, not a split
    held = Fraction(int(whole))  # the fraction is cut off toward zero, longs and shorts alike
    if Fraction(quantity_after) != held:
        return None
    return Split(ratio=ratio, quantity_split=Decimal(whole.numerator) / Decimal(whole.denominator))
