from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class AccountType(models.TextChoices):
    MARGIN = "MARGIN", "Margin"
    CASH = "CASH", "Cash"


class DayTradeRule(models.TextChoices):
    # FINRA replaced the pattern-day-trader rule on 2026-06-04; the legacy rule still applies to
    # earlier trades and to accounts whose broker keeps it during the phase-in (to 2027-10-20).
    BY_DATE = "BY_DATE", "By trade date (legacy before 2026-06-04)"
    LEGACY = "LEGACY", "Pinned to the legacy PDT rule"


class AccountMode(models.TextChoices):
    # A LIVE account is the broker's; a PAPER account is the product's own: never asked of the broker,
    # its orders filled by the paper engine, its positions and values built from its own fills.
    LIVE = "LIVE", "Live (the broker's)"
    PAPER = "PAPER", "Paper (simulated fills)"


class AccountQuerySet(models.QuerySet):
    def visible_to(self, user) -> "AccountQuerySet":
        """A trader sees the accounts they belong to; staff see all; anyone else sees none."""
        if not user or not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self
        return self.filter(users=user)


class Account(models.Model):
    account_id = models.CharField("broker account id", max_length=32, unique=True)
    name = models.CharField(max_length=100, blank=True)
    account_type = models.CharField(max_length=8, choices=AccountType.choices, default=AccountType.MARGIN)
    base_currency = models.CharField(max_length=3, default="USD")
    mode = models.CharField(max_length=5, choices=AccountMode.choices, default=AccountMode.LIVE)
    day_trade_rule = models.CharField(max_length=8, choices=DayTradeRule.choices, default=DayTradeRule.BY_DATE)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="accounts", blank=True)
    is_active = models.BooleanField(default=True, help_text="Inactive accounts are not synced.")
    seen_at_broker_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["seen_at_broker_at", "updated_at"])
    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["account_id"]

    def __str__(self) -> str:
        return f"{self.account_id} ({self.name})" if self.name else self.account_id

    @property
    def is_paper(self) -> bool:
        return self.mode == AccountMode.PAPER
