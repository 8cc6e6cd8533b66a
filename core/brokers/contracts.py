"""How a contract is named as it crosses the broker boundary: security types, option rights and the
instrument's identity. Every package above the boundary speaks these; ``marketdata.Instrument`` stores them."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import models


class SecType(models.TextChoices):
    STOCK = "STK", "Stock"
    OPTION = "OPT", "Option"
    FUTURE = "FUT", "Future"
    FUTURE_OPTION = "FOP", "Future option"
    CASH = "CASH", "Forex"
    INDEX = "IND", "Index"
    BOND = "BOND", "Bond"
    CFD = "CFD", "CFD"
    WARRANT = "WAR", "Warrant"
    FUND = "FUND", "Fund"


class OptionRight(models.TextChoices):
    CALL = "C", "Call"
    PUT = "P", "Put"


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """What identifies a contract, as it crosses the broker boundary."""

    symbol: str
    sec_type: str = SecType.STOCK
    currency: str = "USD"
    con_id: int | None = None
    exchange: str = "SMART"
    multiplier: Decimal = Decimal(1)
    expiry: date | None = None
    strike: Decimal | None = None
    right: str = ""

    @property
    def key(self) -> str:
        """The natural key: what makes two broker rows the same instrument."""
        sec_type = str(self.sec_type).upper()
        parts = [sec_type, self.symbol.upper(), self.currency.upper()]
        if sec_type != SecType.STOCK:
            parts += [
                self.expiry.strftime("%Y%m%d") if self.expiry else "",
                f"{self.strike.normalize():f}" if self.strike is not None else "",
                self.right.upper(),
                f"{self.multiplier.normalize():f}",
            ]
        return ":".join(parts)
