from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from core.fields import MoneyField, PriceField, QuantityField, RatioField
from core.models import SyncRun
from marketdata.models import Instrument
from trading.models import Account, Execution

# The broker's account values, as both AccountStatus (the latest) and AccountSnapshot (over time) keep them.
ACCOUNT_VALUE_FIELDS = (
    "currency",
    "net_liquidation",
    "total_cash",
    "settled_cash",
    "buying_power",
    "excess_liquidity",
    "maint_margin_req",
    "unrealized_pnl",
    "realized_pnl",
)
# Cash per currency and its base-currency total, kept by both as well (portfolio.services.account_values).
CASH_FIELDS = ("cash_balances", "cash_total_base", "cash_fx_missing")


class PositionStatus(models.TextChoices):
    OPEN = "OPEN", "Open"
    CLOSED = "CLOSED", "Closed"


class PositionQuerySet(models.QuerySet):
    def visible_to(self, user) -> "PositionQuerySet":
        return self.filter(account__in=Account.objects.visible_to(user))

    def open(self) -> "PositionQuerySet":
        return self.filter(status=PositionStatus.OPEN)


class Position(models.Model):
    """A holding from open to close. At most one OPEN row per account and instrument.

    Closing keeps the row (status CLOSED, closed_at, realized P&L); a later re-open is a new row.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="positions")
    status = models.CharField(max_length=6, choices=PositionStatus.choices, default=PositionStatus.OPEN)
    quantity = QuantityField(help_text="Signed: negative is short.")
    average_price = PriceField(help_text="Per unit (per share, or per contract unit before the multiplier).")
    current_price = PriceField(null=True, blank=True)
    market_value = MoneyField(null=True, blank=True)
    unrealized_pnl = MoneyField(null=True, blank=True)
    unrealized_pnl_pct = RatioField(null=True, blank=True, help_text="Unrealized P&L / cost basis, as a fraction.")
    realized_pnl = MoneyField(default=0)
    realized_pnl_estimated = models.BooleanField(
        default=False, help_text="Estimated from the last market price because the closing fills are not known."
    )
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    missing_since = models.DateTimeField(
        null=True, blank=True, help_text="Open here but absent at the broker since this time."
    )
    opening_execution = models.ForeignKey(
        Execution,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The fill that opened this position, once the fills are known.",
    )
    closing_execution = models.ForeignKey(
        Execution,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The fill that closed it.",
    )
    average_cost = PriceField(
        null=True,
        blank=True,
        help_text="Built from the fills: the average cost per unit, commissions in (what the broker shows as its "
        "average price, whatever LOT_MATCHING says). The figure the sync compares the broker's with.",
    )
    broker_quantity = QuantityField(
        null=True,
        blank=True,
        help_text="What the broker reports while it differs from the fills (a RECONCILE event is open); empty when "
        "they agree.",
    )
    broker_average_price = PriceField(null=True, blank=True)

    history = HistoricalRecords(
        excluded_fields=["current_price", "market_value", "unrealized_pnl", "unrealized_pnl_pct", "last_synced_at"]
    )
    objects = PositionQuerySet.as_manager()

    class Meta:
        ordering = ["account", "instrument__symbol", "-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "instrument"],
                condition=Q(status="OPEN"),
                name="position_one_open_per_account_instrument",
            ),
            models.CheckConstraint(
                condition=Q(status="OPEN", closed_at__isnull=True) | Q(status="CLOSED", closed_at__isnull=False),
                name="position_closed_at_matches_status",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "status"], name="position_account_status"),
            models.Index(fields=["status", "-closed_at"], name="position_status_closed"),
        ]

    def __str__(self) -> str:
        return f"{self.account.account_id} {self.instrument} {self.quantity.normalize():f} ({self.status})"

    @property
    def is_long(self) -> bool:
        return self.quantity > 0

    @property
    def cost_basis(self):
        return self.quantity * self.average_price * self.instrument.multiplier

    @property
    def from_fills(self) -> bool:
        """Built from the account's fills (one flat-to-flat holding: its round trip has the same opening
        fill). Otherwise the broker sync opened it: an account without fills, or a holding the fills do
        not explain (a transfer in)."""
        return self.opening_execution_id is not None


class PositionEventKind(models.TextChoices):
    OPENED = "OPENED", "Opened"
    INCREASED = "INCREASED", "Increased"
    DECREASED = "DECREASED", "Decreased"
    CLOSED = "CLOSED", "Closed"
    SPLIT = "SPLIT", "Split"
    MISSING = "MISSING", "Missing at broker"
    REOPENED = "REOPENED", "Reappeared at broker"
    RECONCILE = "RECONCILE", "Differs from the broker"
    EXPIRED = "EXPIRED", "Expired worthless"
    EXERCISED = "EXERCISED", "Exercised"
    ASSIGNED = "ASSIGNED", "Assigned"


class ReconcileCause(models.TextChoices):
    """Why the broker and the fills likely disagree: a guess from the figures, for a person to confirm."""

    FILL_PENDING = "FILL_PENDING", "a fill not yet ingested"
    TRANSFER_IN = "TRANSFER_IN", "a transfer in (or fills from before the ledger's history)"
    TRANSFER_OUT = "TRANSFER_OUT", "a transfer out (or a fill not yet ingested)"
    CORPORATE_ACTION = "CORPORATE_ACTION", "a corporate action"
    EXPIRY = "EXPIRY", "an option expiry, exercise or assignment"
    COST = "COST", "a commission not yet reported, or a cost adjusted at the broker"


class PositionEvent(models.Model):
    """Every change of a position's quantity (and its disappearance at the broker).

    For a position built from the fills, each fill's change is an event at the fill's time that
    names the fill (``execution``); events without one were seen by a broker sync. A RECONCILE event
    records a difference between the broker and the fills: the fills' figures before, the broker's
    after, the likely ``cause``; ``resolved_at`` is set once they agree again.
    """

    position = models.ForeignKey(Position, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=PositionEventKind.choices)
    execution = models.ForeignKey(
        Execution,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # the constraint's index serves it
        help_text="The fill that made this change (positions built from the fills).",
    )
    quantity_before = QuantityField()
    quantity_after = QuantityField()
    average_price_before = PriceField(null=True, blank=True)
    average_price_after = PriceField(null=True, blank=True)
    price = PriceField(null=True, blank=True, help_text="Market price at the time.")
    realized_pnl = MoneyField(null=True, blank=True)
    realized_pnl_estimated = models.BooleanField(default=False)
    split_ratio = RatioField(null=True, blank=True)
    at = models.DateTimeField()
    sync_run = models.ForeignKey(
        SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="position_events"
    )
    note = models.CharField(max_length=255, blank=True)
    cause = models.CharField(max_length=16, choices=ReconcileCause.choices, blank=True, default="", db_default="")
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="RECONCILE: when the two sides agreed again.")

    class Meta:
        ordering = ["position", "at", "id"]
        indexes = [
            models.Index(fields=["position", "at"], name="posevent_position_at"),
            models.Index(
                fields=["kind"],
                condition=Q(kind="RECONCILE", resolved_at__isnull=True),
                name="posevent_unresolved",
            ),
        ]
        constraints = [
            # A fill changes a position once in each way (a flip: CLOSED on one, OPENED on the next).
            models.UniqueConstraint(
                fields=["execution", "kind"], condition=Q(execution__isnull=False), name="posevent_one_per_fill_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.quantity_before.normalize():f} -> {self.quantity_after.normalize():f}"


class AccountStatus(models.Model):
    """The latest account values the broker reported, one row per account."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="status", primary_key=True)
    currency = models.CharField(max_length=3, default="USD")
    net_liquidation = MoneyField(null=True, blank=True)
    total_cash = MoneyField(null=True, blank=True)
    settled_cash = MoneyField(null=True, blank=True)
    buying_power = MoneyField(null=True, blank=True)
    excess_liquidity = MoneyField(null=True, blank=True)
    maint_margin_req = MoneyField(null=True, blank=True)
    unrealized_pnl = MoneyField(null=True, blank=True)
    realized_pnl = MoneyField(null=True, blank=True)
    day_trades_remaining = models.IntegerField(null=True, blank=True, help_text="-1 means unlimited.")
    cash_balances = models.JSONField(
        null=True, blank=True, help_text='Cash per currency, each in its own currency: {"EUR": "4310.34"}.'
    )
    cash_total_base = MoneyField(
        null=True, blank=True, help_text="The cash balances in the base currency; empty when a rate is missing."
    )
    cash_fx_missing = models.JSONField(
        null=True, blank=True, help_text="The currencies of cash_balances without a rate to the base currency."
    )
    read_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "account statuses"

    def __str__(self) -> str:
        return f"{self.account_id} @ {self.read_at:%Y-%m-%d %H:%M}"


class SnapshotSource(models.TextChoices):
    BROKER = "BROKER", "Broker"
    COMPUTED = "COMPUTED", "Computed from last known positions (broker unreachable)"
    PAPER = "PAPER", "Paper account: from its own fills and stored quotes"


class SnapshotKind(models.TextChoices):
    HOURLY = "HOURLY", "Hourly"
    CLOSE = "CLOSE", "Daily close"
    MANUAL = "MANUAL", "Manual / backfill"


class AccountSnapshot(models.Model):
    """The account's value at a moment: hourly, at every NYSE close, or on demand."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField()
    kind = models.CharField(max_length=6, choices=SnapshotKind.choices, default=SnapshotKind.HOURLY)
    trade_date = models.DateField(help_text="The exchange date of taken_at.")
    source = models.CharField(max_length=8, choices=SnapshotSource.choices, default=SnapshotSource.BROKER)
    currency = models.CharField(max_length=3, default="USD")
    net_liquidation = MoneyField(null=True, blank=True)
    total_cash = MoneyField(null=True, blank=True)
    settled_cash = MoneyField(null=True, blank=True)
    buying_power = MoneyField(null=True, blank=True)
    excess_liquidity = MoneyField(null=True, blank=True)
    maint_margin_req = MoneyField(null=True, blank=True)
    unrealized_pnl = MoneyField(null=True, blank=True)
    realized_pnl = MoneyField(null=True, blank=True)
    positions_value = MoneyField(
        null=True,
        blank=True,
        default=0,
        help_text="The positions' market values in the account's currency at the current rates; empty when a "
        "position's currency has no known rate.",
    )
    positions_count = models.PositiveIntegerField(default=0)
    # As AccountStatus keeps them (empty on snapshots taken before cash per currency was recorded).
    cash_balances = models.JSONField(null=True, blank=True)
    cash_total_base = MoneyField(null=True, blank=True)
    cash_fx_missing = models.JSONField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-taken_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "taken_at"], name="snapshot_unique_account_time"),
        ]
        indexes = [
            models.Index(fields=["account", "kind", "trade_date"], name="snapshot_account_kind_date"),
            models.Index(fields=["account", "-taken_at"], name="snapshot_account_time"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} @ {self.taken_at:%Y-%m-%d %H:%M} {self.net_liquidation}"


class PositionSnapshot(models.Model):
    """An open position at the moment of an account snapshot: the position history."""

    snapshot = models.ForeignKey(AccountSnapshot, on_delete=models.CASCADE, related_name="positions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    quantity = QuantityField()
    average_price = PriceField()
    price = PriceField(null=True, blank=True)
    market_value = MoneyField(null=True, blank=True)
    unrealized_pnl = MoneyField(null=True, blank=True)
    # Options: the position's Greeks at the snapshot (per share, as PositionGreeks keeps them), the history.
    delta = RatioField(null=True, blank=True)
    gamma = RatioField(null=True, blank=True)
    theta = RatioField(null=True, blank=True)
    vega = RatioField(null=True, blank=True)
    iv = RatioField(null=True, blank=True)
    underlying_price = PriceField(null=True, blank=True)
    greeks_source = models.CharField(max_length=8, blank=True, default="", db_default="")

    class Meta:
        ordering = ["snapshot", "instrument"]
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "instrument"], name="possnap_unique_instrument"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.quantity} @ {self.price}"


class MetricsWindow(models.TextChoices):
    ALL = "all", "All time"
    LAST_20 = "20", "Last 20 round trips"


class PerformanceMetrics(models.Model):
    """Per account per day: returns on the account value and statistics of closed round trips.

    Return figures (TWR, drawdown, MWR, Sharpe, Sortino) are over all time to ``as_of`` in both
    windows; the round-trip figures are over all of them, or over the last 20.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="metrics")
    as_of = models.DateField()
    window = models.CharField(max_length=3, choices=MetricsWindow.choices, default=MetricsWindow.ALL)
    daily_return = RatioField(null=True, blank=True, help_text="TWR of the day (flows removed).")
    twr = RatioField(null=True, blank=True, help_text="Cumulative time-weighted return.")
    twr_index = RatioField(null=True, blank=True, help_text="1 x product(1 + daily TWR).")
    drawdown = RatioField(null=True, blank=True, help_text="Index / running peak - 1, today.")
    max_drawdown = RatioField(null=True, blank=True)
    mwr = RatioField(null=True, blank=True, help_text="Money-weighted return (XIRR, annualised).")
    sharpe = RatioField(null=True, blank=True)
    sortino = RatioField(null=True, blank=True)
    daily_pnl = MoneyField(null=True, blank=True, help_text="Change in value less the day's flows.")
    round_trips = models.PositiveIntegerField(default=0)
    win_rate = RatioField(null=True, blank=True)
    profit_factor = RatioField(null=True, blank=True, help_text="Empty when there are no losses.")
    expectancy = MoneyField(null=True, blank=True)
    gross_profit = MoneyField(default=0)
    gross_loss = MoneyField(default=0)
    current_consecutive_losses = models.PositiveIntegerField(default=0)
    max_consecutive_losses = models.PositiveIntegerField(default=0)
    round_trips_fx_missing = models.PositiveIntegerField(
        default=0,
        db_default=0,
        help_text="Round trips left out of the figures above: in a currency without a rate to the account's base "
        "currency on their closing day.",
    )
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "performance metrics"
        ordering = ["-as_of"]
        constraints = [
            models.UniqueConstraint(fields=["account", "as_of", "window"], name="metrics_unique_account_day_window"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.as_of} ({self.window})"


class GreeksSource(models.TextChoices):
    NONE = "", "-"
    BROKER = "BROKER", "Broker (model Greeks)"
    COMPUTED = "COMPUTED", "Computed (Black-Scholes-Merton)"


class PositionGreeks(models.Model):
    """An option position's Greeks: the current set (refreshed by the "Option Greeks" task) and the set at
    entry (the first one recorded for the position, never overwritten).

    Per share of one contract, as the broker gives them: delta, gamma, theta per calendar day, vega per
    volatility point, implied volatility annualised. ``source`` says whether the broker gave them or they
    were computed, ``inputs`` with what; empty values come with the ``reason``. The position's own
    figures are per share x multiplier x signed quantity (``portfolio.rules.greeks``).
    """

    position = models.OneToOneField(Position, on_delete=models.CASCADE, related_name="greeks", primary_key=True)
    delta = RatioField(null=True, blank=True)
    gamma = RatioField(null=True, blank=True)
    theta = RatioField(null=True, blank=True, help_text="Per calendar day, per share.")
    vega = RatioField(null=True, blank=True, help_text="Per volatility point, per share.")
    iv = RatioField(null=True, blank=True, help_text="Implied volatility, annualised.")
    underlying_price = PriceField(null=True, blank=True)
    days_to_expiry = RatioField(null=True, blank=True, help_text="Calendar days to the expiry session's close.")
    source = models.CharField(max_length=8, choices=GreeksSource.choices, blank=True, default=GreeksSource.NONE)
    reason = models.CharField(max_length=255, blank=True, default="", help_text="Why the Greeks are empty.")
    inputs = models.JSONField(default=dict, blank=True, help_text="What a computed set was computed from.")
    as_of = models.DateTimeField()
    entry_delta = RatioField(null=True, blank=True)
    entry_gamma = RatioField(null=True, blank=True)
    entry_theta = RatioField(null=True, blank=True)
    entry_vega = RatioField(null=True, blank=True)
    entry_iv = RatioField(null=True, blank=True)
    entry_underlying_price = PriceField(null=True, blank=True)
    entry_days_to_expiry = RatioField(null=True, blank=True)
    entry_source = models.CharField(max_length=8, choices=GreeksSource.choices, blank=True, default=GreeksSource.NONE)
    entry_at = models.DateTimeField(help_text="When the entry Greeks were recorded.")

    class Meta:
        verbose_name_plural = "position Greeks"

    def __str__(self) -> str:
        return f"Greeks of position {self.position_id} ({self.source or 'empty'})"
