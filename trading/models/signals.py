"""Signals and the paper trades they become: stored only here, so a restart of any process loses nothing.

A signal is identified per account by the sender's ``signal_id`` (a unique constraint: sending it again
returns the first signal). Executing it places an order through ``order_execute`` (every risk check);
when that order fills, a ``PaperTrade`` opens with the signal's stop and target, and the paper trade
monitor closes it through the same order path (stop, target, end of day, or by hand).
"""

from django.db import models
from django.db.models import Q

from core.fields import MoneyField, PriceField, QuantityField
from marketdata.models import Instrument
from trading.models.accounts import Account
from trading.models.executions import Side
from trading.models.orders import Order


class SignalStatus(models.TextChoices):
    GENERATED = "GENERATED", "Generated"
    EXECUTED = "EXECUTED", "Executed"
    EXPIRED = "EXPIRED", "Expired"
    CLOSED = "CLOSED", "Closed"


class Timeframe(models.TextChoices):
    INTRADAY = "intraday", "Intraday (closed before the session's close)"
    SWING = "swing", "Swing (held overnight)"


class SignalQuerySet(models.QuerySet):
    def visible_to(self, user) -> "SignalQuerySet":
        return self.filter(account__in=Account.objects.visible_to(user))


class Signal(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="signals")
    signal_id = models.CharField(max_length=64, help_text="The sender's id: unique per account.")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="signals")
    action = models.CharField(max_length=4, choices=Side.choices, help_text="BUY opens a long, SELL a short.")
    entry_price = PriceField()
    stop_loss = PriceField()
    take_profit = PriceField()
    confidence = models.DecimalField(max_digits=5, decimal_places=4, help_text="0 to 1.")
    timeframe = models.CharField(max_length=8, choices=Timeframe.choices, default=Timeframe.INTRADAY)
    risk_amount = MoneyField(help_text="Money at risk between entry and stop: sizes the order.")
    quantity = QuantityField(null=True, blank=True, help_text="Given by the sender; else sized from the risk.")
    strategy = models.CharField(max_length=64, blank=True)
    entry_type = models.CharField(max_length=32, blank=True)
    reasoning = models.TextField(blank=True)
    indicators = models.JSONField(default=list, blank=True)
    confluence_score = models.DecimalField(
        max_digits=7, decimal_places=2, null=True, blank=True, help_text="Sentiment's confluence x100 at the time."
    )
    confluence_components = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=9, choices=SignalStatus.choices, default=SignalStatus.GENERATED)
    status_reasons = models.JSONField(default=list, blank=True, help_text="Why the last execute was refused.")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)

    objects = SignalQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "signal_id"], name="signal_unique_signal_id"),
            models.CheckConstraint(condition=Q(risk_amount__gt=0), name="signal_risk_amount_positive"),
            models.CheckConstraint(condition=Q(entry_price__gt=0), name="signal_entry_price_positive"),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="signal_account_created"),
            models.Index(fields=["status", "expires_at"], name="signal_status_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.signal_id}: {self.action} {self.instrument} ({self.status})"


class PaperTradeStatus(models.TextChoices):
    OPEN = "OPEN", "Open"
    STOP_LOSS = "STOP_LOSS", "Stopped out"
    TAKE_PROFIT = "TAKE_PROFIT", "Target reached"
    EOD_CLOSE = "EOD_CLOSE", "Closed before the session's close"
    MANUAL = "MANUAL", "Closed by hand"


class PaperTradeQuerySet(models.QuerySet):
    def visible_to(self, user) -> "PaperTradeQuerySet":
        return self.filter(account__in=Account.objects.visible_to(user))


class PaperTrade(models.Model):
    """A position opened by a signal's filled order, watched against its stop and target until closed."""

    signal = models.OneToOneField(Signal, on_delete=models.PROTECT, related_name="paper_trade")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="paper_trades")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="paper_trades")
    side = models.CharField(max_length=4, choices=Side.choices, help_text="The entry's side.")
    quantity = QuantityField()
    entry_price = PriceField()
    stop_loss = PriceField()
    take_profit = PriceField()
    risk_amount = MoneyField()
    timeframe = models.CharField(max_length=8, choices=Timeframe.choices)
    entry_order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="paper_trade_opened")
    entry_commission = MoneyField(default=0)
    opened_at = models.DateTimeField()
    status = models.CharField(max_length=11, choices=PaperTradeStatus.choices, default=PaperTradeStatus.OPEN)
    exit_reason = models.CharField(max_length=11, choices=PaperTradeStatus.choices, blank=True)
    exit_order = models.OneToOneField(
        Order, on_delete=models.PROTECT, null=True, blank=True, related_name="paper_trade_closed"
    )
    exit_note = models.CharField(max_length=255, blank=True, help_text="Why a closing order is not done yet.")
    exit_price = PriceField(null=True, blank=True)
    exited_at = models.DateTimeField(null=True, blank=True)
    exit_date = models.DateField(null=True, blank=True, help_text="The trade date of the exit (New York).")
    current_price = PriceField(null=True, blank=True)
    price_at = models.DateTimeField(null=True, blank=True)
    realized_pnl = MoneyField(null=True, blank=True, help_text="Net of the entry's and the exit's commissions.")
    unrealized_pnl = MoneyField(null=True, blank=True)

    objects = PaperTradeQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="paper_trade_quantity_positive")]
        indexes = [
            models.Index(fields=["status", "account"], name="paper_trade_status_account"),
            models.Index(fields=["account", "exit_date"], name="paper_trade_account_exit_date"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity.normalize():f} {self.instrument} @ {self.entry_price} ({self.status})"

    @property
    def direction(self) -> int:
        return 1 if self.side == Side.BUY else -1

    @property
    def exit_side(self) -> str:
        return Side.SELL if self.side == Side.BUY else Side.BUY
