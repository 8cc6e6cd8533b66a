"""Derived from the fills: lots, lot matches and round trips. Recomputed, never edited by hand."""

from django.db import models

from core.fields import MoneyField, PriceField, QuantityField
from marketdata.models import Instrument
from trading.models.accounts import Account
from trading.models.executions import Execution

# db_constraint=False on the account and instrument of the rows derived from the fills, on purpose.
#
# These rows are rebuilt by ``trading.services.ledger`` from the account's fills, in the transaction
# that changed the fills, and every one of them refers to a fill (or two) through a constrained
# foreign key. Their account and instrument are copies of that fill's, whose own constraints the
# database checks; an account or instrument cannot go while a fill refers to it (PROTECT in the ORM,
# the fill's constraint in the database), so neither can it while a derived row does. A constraint
# here would check the same thing again for every row, at COMMIT: on a first ingest of 100,000 fills
# that is ~430,000 more lookups (~1.4 s of a ~4 s COMMIT). The ORM's on_delete (CASCADE, PROTECT) is
# unaffected, and the columns keep their indexes. (Also SettlementTracking and DayTrade.)


class Lot(models.Model):
    """What an opening fill left open. ``quantity`` is signed (negative for a short) and shrinks
    as closing fills match it; ``cost_price`` is per unit with the opening commission in it."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="lots", db_constraint=False)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="lots", db_constraint=False)
    opening_execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="lots")
    opened_at = models.DateTimeField()
    original_quantity = QuantityField()
    quantity = QuantityField(help_text="Still open (signed).")
    cost_price = PriceField(help_text="Per unit, commission included (net of it for a short).")
    position_opening_execution = models.ForeignKey(
        Execution,
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        blank=True,
        help_text="The fill that opened the current position (from flat), which this lot belongs to.",
    )

    class Meta:
        ordering = ["account", "instrument", "opened_at", "id"]
        indexes = [models.Index(fields=["account", "instrument"], name="lot_account_instrument")]

    def __str__(self) -> str:
        return f"lot {self.quantity.normalize():f}/{self.original_quantity.normalize():f} @ {self.cost_price}"


class LotMatch(models.Model):
    """A closing fill matched against an opening one (FIFO by default)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="lot_matches", db_constraint=False)
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, related_name="lot_matches", db_constraint=False
    )
    opening_execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="opening_matches")
    closing_execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="closing_matches")
    quantity = QuantityField(help_text="Signed in the direction of the position that was closed.")
    entry_price = PriceField(help_text="Per unit, opening commission included.")
    exit_price = PriceField(help_text="Per unit, closing commission included.")
    realized_pnl = MoneyField()
    method = models.CharField(max_length=8, default="fifo")

    class Meta:
        verbose_name_plural = "lot matches"
        ordering = ["closing_execution__executed_at", "id"]
        indexes = [models.Index(fields=["account", "instrument"], name="lotmatch_account_instrument")]

    def __str__(self) -> str:
        return f"match {self.quantity.normalize():f}: {self.realized_pnl}"


class RoundTripDirection(models.TextChoices):
    LONG = "LONG", "Long"
    SHORT = "SHORT", "Short"


class RoundTripOutcome(models.TextChoices):
    WIN = "WIN", "Win"
    LOSS = "LOSS", "Loss"
    BREAKEVEN = "BREAKEVEN", "Break-even"


class RoundTrip(models.Model):
    """From flat to flat in one account and instrument, net of commissions."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="round_trips", db_constraint=False)
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, related_name="round_trips", db_constraint=False
    )
    direction = models.CharField(max_length=5, choices=RoundTripDirection.choices)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(db_index=True)
    quantity = QuantityField(help_text="Largest absolute size held during the trip.")
    average_entry = PriceField()
    average_exit = PriceField()
    realized_pnl = MoneyField()
    commissions = MoneyField(default=0)
    outcome = models.CharField(max_length=9, choices=RoundTripOutcome.choices)
    holding_seconds = models.BigIntegerField()
    opening_execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="+")
    closing_execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["-closed_at", "-id"]
        indexes = [models.Index(fields=["account", "closed_at"], name="roundtrip_account_closed")]

    def __str__(self) -> str:
        return f"{self.direction} {self.instrument} {self.realized_pnl}"


class LedgerInstrument(models.Model):
    """An instrument the account has fills in: the ledger's own index of them, and its change feed.

    ``changed_since`` is the time of the earliest fill whose derived rows changed (new, corrected,
    late or deleted fills) since the layers above last caught up; empty once they have. The ledger
    sets it in the transaction that changed the fills, so no change is lost to a missed notification;
    a layer above reads and clears it with ``trading.services.ledger_changes``. The row itself stays:
    it says the account has fills in the instrument, and with them in any instrument the account's
    positions come from its fills.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="ledger_instruments")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    changed_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["account", "instrument"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "instrument"], name="ledgerinstrument_unique_account_instrument"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.instrument_id} changed since {self.changed_since}"
