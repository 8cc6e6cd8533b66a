"""Infrastructure tables: single-flight locks and the run journal."""

from django.conf import settings
from django.db import models


class TaskLock(models.Model):
    """A named single-flight lock held in the database, so it works on SQLite and PostgreSQL alike.

    Acquired by inserting the row (the primary key makes a second insert fail) and skipped, not
    waited for, when held. Its owner is the holder (``core.holders``), so a lock left behind by a
    killed worker is taken over at once; ``expires_at`` is the backstop.
    """

    name = models.CharField(max_length=200, primary_key=True)
    owner = models.CharField(max_length=200)  # host:pid:token (a hex token before holders were recorded)
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "marketdata_tasklock"  # created by marketdata before core existed; no row moved

    def __str__(self) -> str:
        return self.name


# --- the run journal ---------------------------------------------------------------------------
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


class SkipReason(models.TextChoices):
    """Why a run was SKIPPED, as data: pages, the API and scripts read this, never the message text."""

    NONE = "", "-"
    BROKER_UNREACHABLE = "BROKER_UNREACHABLE", "Broker unreachable"
    REQUEST_FAILED = "REQUEST_FAILED", "Broker request failed"
    ANOTHER_RUNNING = "ANOTHER_RUNNING", "Another run in progress"
    DISABLED = "DISABLED", "Disabled in settings"
    NOTHING_KNOWN = "NOTHING_KNOWN", "Broker away and nothing stored yet"

    @classmethod
    def broker_down(cls) -> tuple[str, str]:
        """The reasons that mean "the broker could not be asked or did not answer right"."""
        return (cls.BROKER_UNREACHABLE, cls.REQUEST_FAILED)


class FailReason(models.TextChoices):
    """Why a run FAILED, as data: an error in the run, or a run that nobody was carrying out any more."""

    NONE = "", "-"
    ERROR = "ERROR", "Error in the run"
    HOLDER_GONE = "HOLDER_GONE", "Abandoned: its process or database session is gone"
    TIMED_OUT = "TIMED_OUT", "Abandoned: still running after the lock TTL"
    QUEUE_TIMEOUT = "QUEUE_TIMEOUT", "Abandoned: queued and never picked up"
    ENQUEUE_FAILED = "ENQUEUE_FAILED", "Could not be queued"


class SyncRun(models.Model):
    """One run of work against an outside system: what, for which account, why, and how it ended.

    The journal sits in the lowest package because everything that fetches from outside records
    here (accounts, positions, executions, snapshots, market data, sentiment). Its account is the
    model named by ``RUN_JOURNAL_ACCOUNT_MODEL`` (``trading.Account``), the way Django's admin log
    names ``AUTH_USER_MODEL``: core refers to it without importing the app above it. A RUNNING row
    is also the single-flight lock: at most one RUNNING run per account and kind, enforced by the
    database. Its ``holder`` says which process carries it out (empty while it waits in the task
    queue), so a run whose holder died is recognised at once (``core.journal``).
    """

    kind = models.CharField(max_length=16, choices=SyncKind.choices)
    account = models.ForeignKey(
        settings.RUN_JOURNAL_ACCOUNT_MODEL,
        on_delete=models.CASCADE,
        related_name="sync_runs",
        null=True,
        blank=True,
    )
    reason = models.CharField(max_length=16, choices=SyncReason.choices, default=SyncReason.SCHEDULE)
    status = models.CharField(max_length=8, choices=SyncStatus.choices, default=SyncStatus.RUNNING)
    # db_default: rows written without it (bulk COPY, a process still running the old code during a
    # deploy) get "" from the database rather than failing NOT NULL.
    skip_reason = models.CharField(
        max_length=24, choices=SkipReason.choices, blank=True, default=SkipReason.NONE, db_default=SkipReason.NONE
    )
    fail_reason = models.CharField(
        max_length=16, choices=FailReason.choices, blank=True, default=FailReason.NONE, db_default=FailReason.NONE
    )
    # host:pid:token of the process carrying the run out (core.holders); "" while it is queued.
    holder = models.CharField(max_length=200, blank=True, default="", db_default="")
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
        db_table = "trading_syncrun"  # created by trading before core existed; no row moved
        verbose_name = "sync run"
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


# --- historical-data pacing ----------------------------------------------------------------------
class HistoricalRequest(models.Model):
    """One historical-data request sent to IBKR, so every process counts against one pacing budget.

    IBKR allows at most 60 historical requests in 10 minutes, no identical request within 15 s and
    at most 6 for one contract within 2 s (error 162 beyond). Web, workers and commands may run on
    several machines: the count lives in the database they share (``core.brokers.pacing``). Rows
    older than ten minutes no longer count and are deleted as new ones arrive.
    """

    contract = models.CharField(max_length=120)
    request = models.CharField(max_length=300)
    sent_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "historical-data request"

    def __str__(self) -> str:
        return f"{self.request} @ {self.sent_at:%H:%M:%S}"
