"""The fill as the pure ledger functions see it: already normalised, Decimal, aware UTC."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class LedgerFill:
    id: int  # the Execution's primary key (any unique, hashable id in tests)
    exec_id: str  # the broker's id: the tie-breaker when two fills share a timestamp
    instrument_id: int
    executed_at: datetime  # aware, UTC
    trade_date: date  # in the exchange's time zone
    side: str  # "BUY" or "SELL"
    quantity: Decimal  # positive
    price: Decimal  # per unit
    commission: Decimal = Decimal(0)  # 0 while the broker's commission report is missing
    multiplier: Decimal = Decimal(1)
    order_ref: str | None = None  # perm id or order id: partial fills of one order are one trade
    # An exercise or assignment: money moved between the option's closing fill and the delivered stock's
    # fill (the premium into the stock's basis), counted like a commission but not one.
    basis_transfer: Decimal = Decimal(0)

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == "BUY" else -self.quantity


def fill_order(fill: LedgerFill) -> tuple:
    """The one order in which fills are replayed, whatever order they arrived in."""
    return (fill.executed_at, fill.exec_id, fill.id)
