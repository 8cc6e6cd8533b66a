"""Orders before they become fills: the request, every risk check it was judged by, its lifecycle.

An order is identified per account by the client's ``client_order_id``: sending the same request
again finds the first order (a unique constraint, not a check in Python), so no order and no fill is
ever placed twice. Every status change is an ``OrderEvent`` row with its time and what said so.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.fields import MoneyField, PriceField, QuantityField, RatioField
from marketdata.models import Instrument
from trading.models.accounts import Account, AccountMode
from trading.models.executions import Side


class OrderType(models.TextChoices):
    MARKET = "MKT", "Market"
    LIMIT = "LMT", "Limit"
    STOP = "STP", "Stop"
    STOP_LIMIT = "STP_LMT", "Stop limit"


class TimeInForce(models.TextChoices):
    DAY = "DAY", "Day"
    GTC = "GTC", "Good till cancelled"


class OrderStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    REJECTED = "REJECTED", "Rejected by a risk check"
    SUBMITTED = "SUBMITTED", "Submitted"
    PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
    FILLED = "FILLED", "Filled"
    CANCELLED = "CANCELLED", "Cancelled"
    EXPIRED = "EXPIRED", "Expired"
    ERROR = "ERROR", "Refused by the broker"


# An order in one of these may still fill (and holds buying power); the others are final.
WORKING_STATUSES = (OrderStatus.PENDING, OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED)
FINAL_STATUSES = (
    OrderStatus.REJECTED,
    OrderStatus.FILLED,
    OrderStatus.CANCELLED,
    OrderStatus.EXPIRED,
    OrderStatus.ERROR,
)


class OrderQuerySet(models.QuerySet):
    def visible_to(self, user) -> "OrderQuerySet":
        return self.filter(account__in=Account.objects.visible_to(user))


class Order(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.CharField(max_length=64, help_text="The client's id: unique per account.")
    mode = models.CharField(max_length=5, choices=AccountMode.choices)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="orders")
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = QuantityField(help_text="Positive; the side gives the direction.")
    order_type = models.CharField(max_length=7, choices=OrderType.choices)
    limit_price = PriceField(null=True, blank=True)
    stop_price = PriceField(null=True, blank=True)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.DAY)
    outside_rth = models.BooleanField(default=False, help_text="May it fill outside regular trading hours.")
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    session_date = models.DateField(help_text="The NYSE session a DAY order lives in (it expires at its close).")
    # What it was judged by.
    reference_price = PriceField(null=True, blank=True, help_text="The limit price, or the quote at the time.")
    checks = models.JSONField(default=list, help_text="Every risk check: name, passed, message.")
    reject_reasons = models.JSONField(default=list, blank=True)
    stop_triggered = models.BooleanField(default=False, help_text="A stop-limit's stop was reached.")
    # What came of it.
    filled_quantity = QuantityField(default=0)
    average_fill_price = PriceField(null=True, blank=True)
    commission = MoneyField(default=0)
    decision_price = PriceField(null=True, blank=True, help_text="The price the decision was made at.")
    slippage = PriceField(
        null=True, blank=True, help_text="Per unit: fill price - decision price, positive is worse for the trader."
    )
    broker_order_id = models.BigIntegerField(null=True, blank=True)
    perm_id = models.BigIntegerField(null=True, blank=True, help_text="The broker's perm id; the order's id on paper.")
    broker_code = models.IntegerField(null=True, blank=True, help_text="The broker's error code (ERROR).")
    broker_message = models.CharField(max_length=255, blank=True)
    # The decision, for the trade record.
    strategy = models.CharField(max_length=64, blank=True)
    entry_type = models.CharField(max_length=32, blank=True)
    stop_loss = PriceField(null=True, blank=True)
    target = PriceField(null=True, blank=True)
    reasoning = models.TextField(blank=True)
    indicators = models.JSONField(default=dict, blank=True)
    risk_reward = RatioField(null=True, blank=True)
    session = models.ForeignKey(
        "trading.TradingSession", on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    config_hash = models.CharField(max_length=16, blank=True, help_text="The settings in force when it was placed.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When it was handed to the broker.")
    done_at = models.DateTimeField(null=True, blank=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "client_order_id"], name="order_unique_client_order_id"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="order_account_created"),
            models.Index(fields=["status", "instrument"], name="order_status_instrument"),
            models.Index(fields=["account", "perm_id"], name="order_account_perm_id"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity.normalize():f} {self.instrument} {self.order_type} ({self.status})"

    @property
    def signed_quantity(self):
        return self.quantity if self.side == Side.BUY else -self.quantity

    @property
    def remaining_quantity(self):
        return self.quantity - self.filled_quantity

    @property
    def is_working(self) -> bool:
        return self.status in WORKING_STATUSES


class OrderEventSource(models.TextChoices):
    API = "API", "The request"
    RISK = "RISK", "Risk checks"
    PAPER = "PAPER", "Paper engine"
    BROKER = "BROKER", "The broker"
    STATUS_SYNC = "STATUS_SYNC", "Status sync"
    EXPIRY = "EXPIRY", "Session close"
    USER = "USER", "The trader"
    STAFF = "STAFF", "Staff"


class OrderEvent(models.Model):
    """One change of an order: from which status to which, when, and what said so."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    from_status = models.CharField(max_length=16, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    source = models.CharField(max_length=11, choices=OrderEventSource.choices)
    message = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["order", "at", "id"]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.from_status or '-'} -> {self.to_status} ({self.source})"
