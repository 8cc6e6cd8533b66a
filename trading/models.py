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


class SyncKind(models.TextChoices):
    ACCOUNTS = "ACCOUNTS", "Accounts"
    POSITIONS = "POSITIONS", "Positions"
    EXECUTIONS = "EXECUTIONS", "Executions"
    SNAPSHOTS = "SNAPSHOTS", "Snapshots"
    MARKET_DATA = "MARKET_DATA", "Market data"


class SyncReason(models.TextChoices):
    SCHEDULE = "SCHEDULE", "Schedule"
    MANUAL = "MANUAL", "Manual (command or admin)"
    API = "API", "API"
    AFTER_TRADE = "AFTER_TRADE", "After a trade"
    BROKER_EVENT = "BROKER_EVENT", "Broker event"


class SyncStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"
    SUCCESS = "SUCCESS", "Success"
    SKIPPED = "SKIPPED", "Skipped"
    FAILED = "FAILED", "Failed"


class SyncRun(models.Model):
    """One run of a sync against the broker: what, for which account, why, and how it ended.

    It lives in ``trading`` (not ``portfolio``) because position sync, execution ingest and market
    data runs all record here, and imports only point downwards. A RUNNING row is also the
    single-flight lock: at most one RUNNING run per account and kind, enforced by the database.
    """

    kind = models.CharField(max_length=16, choices=SyncKind.choices)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sync_runs", null=True, blank=True)
    reason = models.CharField(max_length=16, choices=SyncReason.choices, default=SyncReason.SCHEDULE)
    status = models.CharField(max_length=8, choices=SyncStatus.choices, default=SyncStatus.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    closed = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["account", "kind", "-started_at"], name="syncrun_account_kind_started"),
            models.Index(fields=["status", "-started_at"], name="syncrun_status_started"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "kind"],
                condition=models.Q(status="RUNNING"),
                name="syncrun_one_running_per_account_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.account_id or '-'} {self.status} @ {self.started_at:%Y-%m-%d %H:%M:%S}"
