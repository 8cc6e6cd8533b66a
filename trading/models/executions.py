"""Fills as the broker reported them (and as staff corrected them), and cash movements."""

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from core.fields import MoneyField, PriceField, QuantityField
from marketdata.models import Instrument
from trading.models.accounts import Account


class Side(models.TextChoices):
    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"


class ExecutionSource(models.TextChoices):
    API = "API", "Broker API"
    FLEX = "FLEX", "Flex report"
    STAFF = "STAFF", "Entered by staff"
    INFERRED = "INFERRED", "Inferred by the position sync (option expiry, exercise, assignment)"
    PAPER = "PAPER", "Paper engine"


class ExecutionQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ExecutionQuerySet":
        return self.filter(account__in=Account.objects.visible_to(user))


class Execution(models.Model):
    """One fill. ``(broker, exec_id)`` is the natural key: ingesting it twice changes nothing.

    ``realized_pnl`` is set on fills that close (part of) a position, by the lot matcher.
    ``staff_fields`` lists the fields staff corrected: a later broker ingest keeps them and records
    what the broker said in ``broker_disagreement`` instead of overwriting them.
    """

    broker = models.CharField(max_length=16, default="ibkr", help_text="Namespace of exec_id (IBKR's execId).")
    exec_id = models.CharField(max_length=64)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="executions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="executions")
    order_id = models.BigIntegerField(null=True, blank=True)
    perm_id = models.BigIntegerField(null=True, blank=True)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = QuantityField(help_text="Positive; the side gives the direction.")
    price = PriceField()
    commission = MoneyField(null=True, blank=True, help_text="Empty until the broker's commission report arrives.")
    commission_currency = models.CharField(max_length=3, default="USD")
    exchange = models.CharField(max_length=16, blank=True)
    executed_at = models.DateTimeField()
    trade_date = models.DateField(help_text="In the exchange's time zone.")
    settlement_date = models.DateField(null=True, blank=True)
    broker_settlement_date = models.DateField(
        null=True, blank=True, help_text="From the broker (Flex settleDateTarget)."
    )
    realized_pnl = MoneyField(null=True, blank=True)
    basis_transfer = MoneyField(
        null=True,
        blank=True,
        help_text="An option exercise or assignment: the option's premium moved into the delivered stock's cost "
        "basis (domain rules). On the option's closing fill, what it would have realized (so it realizes 0); on "
        "the stock's fill, the same amount with the other sign, counted like a commission.",
    )
    source = models.CharField(max_length=8, choices=ExecutionSource.choices, default=ExecutionSource.API)
    raw = models.JSONField(default=dict, blank=True)
    staff_fields = models.JSONField(default=list, blank=True)
    broker_disagreement = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["raw", "realized_pnl", "updated_at"])
    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-executed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["broker", "exec_id"], name="execution_unique_broker_exec_id"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="execution_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gte=0), name="execution_price_not_negative"),
        ]
        indexes = [
            models.Index(fields=["account", "instrument", "executed_at"], name="exec_acct_instr_time"),
            models.Index(fields=["account", "trade_date"], name="exec_acct_trade_date"),
            models.Index(fields=["account", "-executed_at"], name="exec_acct_time_desc"),
            # Lets the portfolio summary count fills and sum realized P&L from the index alone.
            models.Index(fields=["account", "realized_pnl"], name="exec_acct_realized"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.exec_id} {self.side} {self.quantity.normalize():f} {self.instrument} @ {self.price.normalize():f}"
        )

    @property
    def signed_quantity(self):
        return self.quantity if self.side == Side.BUY else -self.quantity


class CashFlowKind(models.TextChoices):
    DEPOSIT = "DEPOSIT", "Deposit"
    WITHDRAWAL = "WITHDRAWAL", "Withdrawal"


class CashFlow(models.Model):
    """A deposit or withdrawal: never performance. Identified by the broker's id when it has one."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="cash_flows")
    flow_id = models.CharField(max_length=64, help_text="The broker's id, or one made up for staff entries.")
    kind = models.CharField(max_length=10, choices=CashFlowKind.choices)
    amount = MoneyField(help_text="Positive; the kind gives the direction.")
    currency = models.CharField(max_length=3, default="USD")
    at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=ExecutionSource.choices, default=ExecutionSource.API)
    note = models.CharField(max_length=255, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "flow_id"], name="cashflow_unique_account_flow_id"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="cashflow_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency} ({self.account_id})"

    @property
    def signed_amount(self):
        return self.amount if self.kind == CashFlowKind.DEPOSIT else -self.amount
