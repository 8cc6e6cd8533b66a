from decimal import Decimal

from django.db import models
from django.db.models import Q

from core.brokers.contracts import InstrumentSpec, OptionRight, SecType
from core.fields import PriceField, QuantityField


class Instrument(models.Model):
    """A tradable contract. ``key`` is the natural key; ``con_id`` is IBKR's id when known."""

    key = models.CharField(max_length=120, unique=True, editable=False)
    symbol = models.CharField(max_length=32, db_index=True)
    sec_type = models.CharField(max_length=8, choices=SecType.choices, default=SecType.STOCK)
    con_id = models.BigIntegerField(null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3, default="USD")
    exchange = models.CharField(max_length=16, blank=True, default="SMART")
    multiplier = QuantityField(default=1)
    expiry = models.DateField(null=True, blank=True)
    strike = PriceField(null=True, blank=True)
    right = models.CharField(max_length=1, choices=OptionRight.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol", "sec_type", "expiry", "strike", "right"]
        constraints = [
            models.CheckConstraint(condition=Q(multiplier__gt=0), name="instrument_multiplier_positive"),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def spec(self) -> InstrumentSpec:
        """This contract as it crosses the broker boundary; ``spec.key`` is what ``key`` holds."""
        return InstrumentSpec(
            symbol=self.symbol,
            sec_type=self.sec_type,
            currency=self.currency,
            con_id=self.con_id,
            exchange=self.exchange,
            multiplier=Decimal(self.multiplier),
            expiry=self.expiry,
            strike=None if self.strike is None else Decimal(self.strike),
            right=self.right,
        )

    @property
    def is_derivative(self) -> bool:
        return self.sec_type in {SecType.OPTION, SecType.FUTURE, SecType.FUTURE_OPTION}

    @property
    def display_name(self) -> str:
        if self.sec_type in {SecType.OPTION, SecType.FUTURE_OPTION} and self.expiry:
            strike = f"{self.strike.normalize():f}" if self.strike is not None else "?"
            return f"{self.symbol} {self.expiry:%Y-%m-%d} {strike}{self.right}"
        if self.sec_type == SecType.FUTURE and self.expiry:
            return f"{self.symbol} {self.expiry:%Y-%m}"
        return self.symbol
