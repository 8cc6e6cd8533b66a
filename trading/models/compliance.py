"""Settlement, day trades, trade frequency and cash-account state, all derived from the fills."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.fields import MoneyField, QuantityField
from marketdata.models import Instrument
from trading.models.accounts import Account
from trading.models.executions import Execution
from trading.models.orders import Order


class SettlementStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    SETTLED = "SETTLED", "Settled"


class SettlementTracking(models.Model):
    """When a fill's cash moves: T+1 (T+2 before 2024-05-28) settlement days, or the broker's date.

    Derived from the fill: its account is checked through the fill's (see trading/models/ledger.py).
    """

    execution = models.OneToOneField(Execution, on_delete=models.CASCADE, related_name="settlement")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="settlements", db_constraint=False)
    trade_date = models.DateField()
    settlement_date = models.DateField(db_index=True)
    amount = MoneyField(help_text="Signed cash: negative for a purchase, positive for a sale; net of commission.")
    status = models.CharField(max_length=7, choices=SettlementStatus.choices, default=SettlementStatus.PENDING)
    from_broker = models.BooleanField(default=False, help_text="The settlement date came from the broker.")

    class Meta:
        verbose_name_plural = "settlement tracking"
        ordering = ["settlement_date", "id"]
        indexes = [models.Index(fields=["account", "status", "settlement_date"], name="settle_acct_status_date")]

    def __str__(self) -> str:
        return f"{self.execution_id} settles {self.settlement_date} ({self.status})"


class DayTradeCounting(models.TextChoices):
    OPENING = "opening", "Each opening transaction closed the same day"
    DIRECTION = "direction", "Each change of direction"


class DayTrade(models.Model):
    """Derived from the fills: account and instrument are checked through them (see trading/models/ledger.py)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="day_trades", db_constraint=False)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="day_trades", db_constraint=False)
    trade_date = models.DateField()
    quantity = QuantityField()
    opening_execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="+")
    closing_execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="+")
    counting = models.CharField(max_length=9, choices=DayTradeCounting.choices)

    class Meta:
        ordering = ["-trade_date", "id"]
        indexes = [models.Index(fields=["account", "trade_date"], name="daytrade_account_date")]

    def __str__(self) -> str:
        return f"day trade {self.instrument_id} on {self.trade_date}"


class FrequencyPeriod(models.TextChoices):
    DAY = "DAY", "Trade date"
    WEEK = "WEEK", "ISO week"


class TradeFrequencyTracking(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="trade_frequency")
    period = models.CharField(max_length=4, choices=FrequencyPeriod.choices)
    period_start = models.DateField(help_text="The trade date, or the Monday of the ISO week.")
    trades = models.PositiveIntegerField(default=0)
    day_trades = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "trade frequency tracking"
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["account", "period", "period_start"], name="tradefreq_unique_period"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.period} {self.period_start}: {self.trades} trades"


class CashAccountState(models.Model):
    """A CASH account's settled and unsettled cash at the end of a day."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="cash_states")
    date = models.DateField()
    settled_cash = MoneyField()
    unsettled_cash = MoneyField()
    violations_12m = models.PositiveIntegerField(default=0, help_text="Violations in the 12 months to this date.")

    class Meta:
        ordering = ["-date"]
        constraints = [models.UniqueConstraint(fields=["account", "date"], name="cashstate_unique_account_date")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.date}: settled {self.settled_cash}"


class ViolationKind(models.TextChoices):
    GOOD_FAITH = "GOOD_FAITH", "Good-faith violation"
    FREE_RIDING = "FREE_RIDING", "Free-riding"


class CashViolation(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="cash_violations")
    kind = models.CharField(max_length=11, choices=ViolationKind.choices)
    trade_date = models.DateField(help_text="The date of the sale that completed the violation.")
    buy_execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="+")
    sell_execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="+")
    amount = MoneyField(help_text="The unpaid or unsettled amount used.")
    detail = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-trade_date", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "buy_execution", "sell_execution"], name="cashviolation_unique_pair"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="cashviolation_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.trade_date}"


class RiskEventKind(models.TextChoices):
    MAX_DRAWDOWN = "MAX_DRAWDOWN", "Drawdown beyond the limit"
    CONSECUTIVE_LOSSES = "CONSECUTIVE_LOSSES", "Consecutive losing round trips"
    DAILY_LOSS = "DAILY_LOSS", "Daily loss beyond the limit"
    POSITION_REJECTED = "POSITION_REJECTED", "Order refused by a risk check"
    CIRCUIT_BREAKER_TRIP = "CIRCUIT_BREAKER_TRIP", "Circuit breaker: opening orders paused"


class RiskAction(models.TextChoices):
    NONE = "", "None"
    ORDER_REJECTED = "order_rejected", "Order rejected"
    TRADING_PAUSED = "trading_paused", "Opening orders paused"


class RiskSeverity(models.TextChoices):
    WARNING = "WARNING", "Warning"
    CRITICAL = "CRITICAL", "Critical"


class RiskEvent(models.Model):
    """A threshold crossed: written once per crossing (when the value goes over), not on every run."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="risk_events")
    kind = models.CharField(max_length=20, choices=RiskEventKind.choices)
    severity = models.CharField(max_length=8, choices=RiskSeverity.choices, default=RiskSeverity.WARNING)
    value = models.DecimalField(max_digits=24, decimal_places=10, help_text="The measured value.")
    threshold = models.DecimalField(max_digits=24, decimal_places=10)
    as_of = models.DateField(help_text="The day the metric was computed for.")
    message = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When the value came back within the limit.")
    action = models.CharField(max_length=16, choices=RiskAction.choices, blank=True, default="")
    settings_snapshot = models.JSONField(default=dict, blank=True, help_text="The settings it was judged by.")
    order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="risk_events")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolution_note = models.CharField(max_length=255, blank=True, help_text="Why staff resumed trading.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "kind", "-created_at"], name="riskevent_account_kind")]
        constraints = [
            # One open event per kind: a crossing is written once, until the value comes back.
            models.UniqueConstraint(
                fields=["account", "kind"], condition=Q(resolved_at__isnull=True), name="riskevent_one_open_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.account_id} {self.as_of}"
