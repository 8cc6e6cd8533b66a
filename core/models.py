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
    SENTIMENT = "SENTIMENT", "Sentiment ingest"
    OPTIONS_FLOW = "OPTIONS_FLOW", "Options flow ingest"
    SENTIMENT_AGG = "SENTIMENT_AGG", "Sentiment aggregation"
    CONFLUENCE = "CONFLUENCE", "Confluence"
    FX_RATES = "FX_RATES", "Exchange rates"


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
    SOURCE_UNAVAILABLE = "SOURCE_UNAVAILABLE", "Source unreachable or unreadable"

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


# --- the live broker connection ----------------------------------------------------------------
class ConnectionState(models.TextChoices):
    CONNECTED = "CONNECTED", "Connected"
    LOST = "LOST", "Gateway up, its link to the broker lost"
    DISCONNECTED = "DISCONNECTED", "Gateway unreachable"
    STOPPED = "STOPPED", "Listener stopped"


class BrokerConnection(models.Model):
    """What the event listener (``manage.py ibkr_listen``) last knew of its broker connection: one row
    per listened login, written on every change and refreshed by the listener's heartbeat
    (``checked_at``), so a row that stopped being refreshed means "nobody is listening"."""

    name = models.CharField(max_length=120, unique=True)  # "ibkr 127.0.0.1:4002" or "simulated"
    state = models.CharField(max_length=16, choices=ConnectionState.choices)
    since = models.DateTimeField(help_text="when the connection entered this state")
    checked_at = models.DateTimeField(help_text="the listener's last heartbeat")
    last_code = models.IntegerField(null=True, blank=True, help_text="the IBKR code that said so (1100, 1102, 2110...)")
    message = models.TextField(blank=True)
    holder = models.CharField(max_length=200, blank=True, default="")  # the listener process (core.holders)

    class Meta:
        verbose_name = "broker connection"

    def __str__(self) -> str:
        return f"{self.name}: {self.get_state_display()}"


# --- alerts ------------------------------------------------------------------------------------
class AlertKind(models.TextChoices):
    RISK_OPENED = "RISK_OPENED", "Risk event opened"
    RISK_RESOLVED = "RISK_RESOLVED", "Risk event resolved"
    CIRCUIT_BREAKER = "CIRCUIT_BREAKER", "Circuit breaker tripped"
    SYNC_FAILING = "SYNC_FAILING", "Sync failing repeatedly"
    SYNC_STALE = "SYNC_STALE", "Data stale"
    BROKER_LOST = "BROKER_LOST", "Broker connection lost"
    BROKER_RESTORED = "BROKER_RESTORED", "Broker connection restored"
    BROKER_DISAGREEMENT = "BROKER_DISAGREEMENT", "Broker disagrees with a staff correction"
    FILL = "FILL", "Every fill"
    TEST = "TEST", "Test alert"

    @classmethod
    def default_choice(cls) -> list[str]:
        """What a user gets before choosing: everything but every fill."""
        return [k for k in cls.values if k not in (cls.FILL, cls.TEST)]


class ChannelKind(models.TextChoices):
    EMAIL = "EMAIL", "Email"
    SLACK = "SLACK", "Slack (incoming webhook)"
    DISCORD = "DISCORD", "Discord (webhook)"
    TELEGRAM = "TELEGRAM", "Telegram (bot API)"
    WEBHOOK = "WEBHOOK", "Webhook (JSON)"


class AlertChannel(models.Model):
    """Where one user's alerts go. The URL and token are secrets: never logged, masked in the admin."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_channels")
    kind = models.CharField(max_length=8, choices=ChannelKind.choices)
    name = models.CharField(max_length=100, blank=True)
    address = models.CharField(
        max_length=254, blank=True, help_text="email: the address (empty: the user's); Telegram: the chat id"
    )
    url = models.URLField(max_length=500, blank=True, help_text="Slack, Discord or webhook URL (a secret)")
    token = models.CharField(max_length=200, blank=True, help_text="Telegram bot token; webhook bearer token")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "alert channel"
        ordering = ["user_id", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name or self.pk}"


class AlertPreference(models.Model):
    """Which alerts a user wants, about which accounts (only ever the accounts they may see)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_preference")
    kinds = models.JSONField(default=AlertKind.default_choice, blank=True)
    all_accounts = models.BooleanField(default=True, help_text="every account the user may see")
    accounts = models.ManyToManyField(settings.RUN_JOURNAL_ACCOUNT_MODEL, blank=True, related_name="+")

    class Meta:
        verbose_name = "alert preference"

    def __str__(self) -> str:
        return f"alerts of {self.user}"


class AlertStatus(models.TextChoices):
    SENT = "SENT", "Sent"
    HELD = "HELD", "Held back (rate limit)"


class Alert(models.Model):
    """One event told to one user: SENT (its deliveries carry it to the user's channels) or HELD back
    because one of its kind about its account went out less than ``ALERT_MIN_INTERVAL`` ago; the next
    SENT one says how many were held back."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=24, choices=AlertKind.choices)
    account = models.ForeignKey(
        settings.RUN_JOURNAL_ACCOUNT_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    key = models.CharField(max_length=200, blank=True, help_text="what it is about (a run, a risk event...)")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=AlertStatus.choices)
    held_back = models.PositiveIntegerField(default=0, help_text="alerts of this kind held back before this one")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "kind", "account", "-created_at"], name="alert_user_kind_account")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.user_id}: {self.title}"


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    SENT = "SENT", "Sent"
    FAILED = "FAILED", "Failed (retries exhausted)"


class AlertDelivery(models.Model):
    """One alert to one channel; every try is an ``AlertAttempt``."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "alert deliveries"
        constraints = [models.UniqueConstraint(fields=["alert", "channel"], name="alertdelivery_one_per_channel")]

    def __str__(self) -> str:
        return f"alert {self.alert_id} -> channel {self.channel_id}: {self.status}"


class AlertAttempt(models.Model):
    delivery = models.ForeignKey(AlertDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.TextField(blank=True, help_text="the answer or the error, secrets removed")

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"attempt {self.pk} of delivery {self.delivery_id}: {'ok' if self.ok else 'failed'}"
