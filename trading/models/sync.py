from django.db import models

from trading.models.accounts import Account


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
