from decimal import Decimal

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

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


class BarSize(models.TextChoices):
    ONE_MINUTE = "1m", "1 minute"
    FIVE_MINUTES = "5m", "5 minutes"
    FIFTEEN_MINUTES = "15m", "15 minutes"
    ONE_HOUR = "1h", "1 hour"
    ONE_DAY = "1d", "1 day"


class Bar(models.Model):
    """One OHLCV bar of an instrument; ``start`` is the bar's opening time in UTC.

    A daily bar's ``start`` is midnight UTC of its session date (the date is what matters: IBKR gives
    daily bars as exchange-zone dates), an intraday bar's is the exact minute it opens.
    """

    # No index of its own: the unique key (instrument, bar_size, start) starts with it. No database
    # constraint either, on purpose: bars are written a million at a time (bars_store, from instruments
    # it has just resolved) and a constraint checks every row again at insert, a third of a first
    # store's time; the ORM still cascades an instrument's deletion to its bars.
    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, related_name="bars", db_index=False, db_constraint=False
    )
    bar_size = models.CharField(max_length=3, choices=BarSize.choices)
    start = models.DateTimeField()
    open = PriceField()
    high = PriceField()
    low = PriceField()
    close = PriceField()
    volume = QuantityField()
    wap = PriceField(null=True, blank=True)
    trade_count = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=32)
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["instrument", "bar_size", "start"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "bar_size", "start"], name="bar_unique_key"),
            models.CheckConstraint(condition=Q(high__gte=models.F("low")), name="bar_high_not_below_low"),
            models.CheckConstraint(condition=Q(volume__gte=0), name="bar_volume_not_negative"),
        ]
        # No (bar_size, start) index: retention's batches walk the primary key in order with the rule as
        # a filter (EXPLAIN: the planner never took that index), and keeping it up cost as much as the
        # rest of a first store's insert (4.5 s of 1,014,000 one-minute bars).

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.bar_size} {self.start:%Y-%m-%d %H:%M}"


class Quote(models.Model):
    """The latest quote of an instrument, kept so a price survives the broker and the cache.

    ``delayed`` records whether the broker answered with delayed data (no live subscription).
    """

    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, related_name="quote")
    bid = PriceField(null=True, blank=True)
    ask = PriceField(null=True, blank=True)
    last = PriceField(null=True, blank=True)
    bid_size = QuantityField(null=True, blank=True)
    ask_size = QuantityField(null=True, blank=True)
    last_size = QuantityField(null=True, blank=True)
    volume = QuantityField(null=True, blank=True)
    at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=32)
    delayed = models.BooleanField(default=False)
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["instrument"]

    def __str__(self) -> str:
        return f"{self.instrument_id} bid {self.bid} ask {self.ask} last {self.last}"

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None or self.bid <= 0 or self.ask < self.bid:
            return None
        return (Decimal(self.bid) + Decimal(self.ask)) / 2


def default_bar_sizes() -> list[str]:
    return [BarSize.ONE_DAY.value]


class WatchedInstrument(models.Model):
    """An instrument whose bars and quote are kept current (besides every open position's, watched implicitly)."""

    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, related_name="watch")
    bar_sizes = models.JSONField(default=default_bar_sizes, help_text='Bar sizes to keep, e.g. ["1d", "5m"].')
    enabled = models.BooleanField(default=True)
    backfill_start = models.DateField(null=True, blank=True, help_text="Earliest date to backfill bars from.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["instrument"]

    def __str__(self) -> str:
        return f"watch {self.instrument_id}"


class FxRate(models.Model):
    """A daily exchange rate: one unit of ``currency`` is worth ``rate`` units of ``base`` on ``day``.

    ``day`` is the date the rate applies to (the broker's rate of that day, or the close of the cash pair's
    daily bar); ``marketdata.fx`` reads these to convert amounts to an account's base currency. A day's
    rate is replaced when a newer answer for the same day arrives (the broker's rate moves during a day).
    """

    currency = models.CharField(max_length=3)
    base = models.CharField(max_length=3)
    day = models.DateField()
    rate = models.DecimalField(max_digits=24, decimal_places=10)
    source = models.CharField(max_length=32, help_text="Who said so: the broker's name, 'history' or 'admin'.")
    fetched_at = models.DateTimeField()
    # Staff corrections in the admin are kept with who, when and why; a later sync does not undo them.
    history = HistoricalRecords(excluded_fields=["fetched_at"])

    class Meta:
        ordering = ["base", "currency", "-day"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "base", "day"], name="fxrate_unique_day"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="fxrate_rate_positive"),
            models.CheckConstraint(condition=~Q(currency=models.F("base")), name="fxrate_not_identity"),
        ]

    def __str__(self) -> str:
        return f"1 {self.currency} = {self.rate.normalize():f} {self.base} on {self.day}"
