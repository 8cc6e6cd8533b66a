"""Closed lots in the layout of IRS Form 8949's columns, with wash sales flagged. Pure: no database.

Holding period: long term when the lot is sold more than one year after it was acquired (sold after the
anniversary of the acquisition date), short term otherwise. A short sale is always short term; its
"date acquired" is the day it was covered (bought back), its "date sold" the day it was sold short.

Wash sale (flagged, code ``W``): a lot sold at a loss when the same security (same account and
instrument) was bought within 30 days before or after the sale, other than the buy that opened the lot.
The adjustment is a documented estimate: the loss is disallowed in proportion to the shares bought in
the window (at most all of it), added back in column (g). It does not carry the disallowed loss into
the replacement lot's basis, nor look across accounts or at substantially identical securities
(options on the stock): a tax preparer must confirm.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

TAX_LOT_FIELDS = (
    "description",
    "date_acquired",
    "date_sold",
    "proceeds",
    "cost_basis",
    "code",
    "adjustment",
    "gain_or_loss",
    "term",
    "account_id",
    "symbol",
    "quantity",
    "wash_sale",
)
# Appended to each row: the lot's currency and the columns in the account's base currency, each side at
# the rate of its own date (proceeds at the sale date's, cost basis at the acquisition date's), as a
# US filer reports a foreign sale in USD. Empty when a rate is not known; never at 1.
TAX_LOT_BASE_FIELDS = (
    "currency",
    "base_currency",
    "proceeds_base",
    "cost_basis_base",
    "adjustment_base",
    "gain_or_loss_base",
)
WASH_WINDOW = timedelta(days=30)
CENT = Decimal("0.01")


def is_long_term(acquired: date, sold: date) -> bool:
    """Held more than one year: sold after the anniversary of the acquisition (Feb 29 -> Feb 28)."""
    try:
        anniversary = acquired.replace(year=acquired.year + 1)
    except ValueError:
        anniversary = acquired.replace(year=acquired.year + 1, day=28)
    return sold > anniversary


@dataclass(frozen=True, slots=True)
class ClosedLot:
    account_id: str
    symbol: str
    quantity: Decimal  # signed: negative for a short
    multiplier: Decimal
    opened_on: date
    closed_on: date
    entry_price: Decimal  # per unit, the opening commission included
    exit_price: Decimal  # per unit, the closing commission included


def tax_lot_row(lot: ClosedLot, *, replacement_quantity: Decimal) -> dict:
    """One Form 8949 row; ``replacement_quantity``: shares of the same security bought within 30 days."""
    short = lot.quantity < 0
    units = abs(lot.quantity)
    entry_value = (units * lot.entry_price * lot.multiplier).quantize(CENT)
    exit_value = (units * lot.exit_price * lot.multiplier).quantize(CENT)
    if short:
        proceeds, basis, acquired, sold = entry_value, exit_value, lot.closed_on, lot.opened_on
    else:
        proceeds, basis, acquired, sold = exit_value, entry_value, lot.opened_on, lot.closed_on
    gain = proceeds - basis
    wash = gain < 0 and replacement_quantity > 0
    adjustment = Decimal("0.00")
    if wash:
        adjustment = (-gain * min(Decimal(1), replacement_quantity / units)).quantize(CENT)
    return {
        "description": f"{units.normalize():f} sh {lot.symbol}" + (" (short sale)" if short else ""),
        "date_acquired": acquired.isoformat(),
        "date_sold": sold.isoformat(),
        "proceeds": f"{proceeds:f}",
        "cost_basis": f"{basis:f}",
        "code": "W" if wash else "",
        "adjustment": f"{adjustment:f}",
        "gain_or_loss": f"{gain + adjustment:f}",
        "term": "long" if not short and is_long_term(acquired, sold) else "short",
        "account_id": lot.account_id,
        "symbol": lot.symbol,
        "quantity": f"{units.normalize():f}",
        "wash_sale": wash,
    }


def tax_lot_row_in_base(
    row: dict, *, currency: str, base: str, sold_rate: Decimal | None, acquired_rate: Decimal | None
) -> dict:
    """``row`` (from :func:`tax_lot_row`) with ``TAX_LOT_BASE_FIELDS``: proceeds at ``sold_rate`` (the
    rate of ``date_sold``), cost basis at ``acquired_rate`` (of ``date_acquired``). A wash sale disallows
    the same share of the loss in base as in the lot's currency, when there is a loss in base."""
    out = {**row, "currency": currency, "base_currency": base}
    if sold_rate is None or acquired_rate is None:
        return {
            **out,
            "proceeds_base": None,
            "cost_basis_base": None,
            "adjustment_base": None,
            "gain_or_loss_base": None,
        }
    proceeds = (Decimal(row["proceeds"]) * sold_rate).quantize(CENT)
    basis = (Decimal(row["cost_basis"]) * acquired_rate).quantize(CENT)
    gain = proceeds - basis
    adjustment = Decimal("0.00")
    local_loss = Decimal(row["cost_basis"]) - Decimal(row["proceeds"])
    if row["wash_sale"] and gain < 0 and local_loss > 0:
        share = min(Decimal(1), Decimal(row["adjustment"]) / local_loss)
        adjustment = (-gain * share).quantize(CENT)
    return {
        **out,
        "proceeds_base": f"{proceeds:f}",
        "cost_basis_base": f"{basis:f}",
        "adjustment_base": f"{adjustment:f}",
        "gain_or_loss_base": f"{gain + adjustment:f}",
    }
