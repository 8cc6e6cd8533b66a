from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from core.models import SyncReason, SyncRun, SyncStatus
from portfolio.models import (
    AccountSnapshot,
    AccountStatus,
    PerformanceMetrics,
    Position,
    PositionEvent,
    PositionGreeks,
    PositionSnapshot,
)
from portfolio.services.sync_requests import positions_sync_request
from trading.admin import account_action_register


class PositionEventInline(admin.TabularInline):
    model = PositionEvent
    extra = 0
    can_delete = False
    fields = [
        "at",
        "kind",
        "quantity_before",
        "quantity_after",
        "average_price_before",
        "average_price_after",
        "price",
        "realized_pnl",
        "realized_pnl_estimated",
        "note",
        "cause",
        "resolved_at",
        "sync_run",
    ]
    readonly_fields = fields
    ordering = ["at", "id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Position)
class PositionAdmin(SimpleHistoryAdmin):
    list_display = [
        "account",
        "instrument",
        "status",
        "quantity",
        "average_price",
        "current_price",
        "market_value",
        "unrealized_pnl",
        "realized_pnl",
        "realized_pnl_estimated",
        "opened_at",
        "closed_at",
        "last_synced_at",
    ]
    list_filter = ["status", "realized_pnl_estimated", "instrument__sec_type", "account"]
    search_fields = ["instrument__symbol", "account__account_id", "=instrument__con_id"]
    list_select_related = ["account", "instrument"]
    autocomplete_fields = ["account", "instrument"]
    date_hierarchy = "opened_at"
    readonly_fields = [
        "current_price",
        "market_value",
        "unrealized_pnl",
        "unrealized_pnl_pct",
        "last_synced_at",
        "missing_since",
        "average_cost",
        "broker_quantity",
        "broker_average_price",
    ]
    raw_id_fields = ["opening_execution", "closing_execution"]
    inlines = [PositionEventInline]


@admin.register(PositionEvent)
class PositionEventAdmin(admin.ModelAdmin):
    list_display = [
        "at",
        "position",
        "kind",
        "quantity_before",
        "quantity_after",
        "price",
        "realized_pnl",
        "realized_pnl_estimated",
    ]
    list_filter = ["kind", "cause", "realized_pnl_estimated"]
    search_fields = ["position__instrument__symbol", "position__account__account_id"]
    list_select_related = ["position__account", "position__instrument"]
    raw_id_fields = ["position", "sync_run", "execution"]
    date_hierarchy = "at"

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the lifecycle is a record: corrections go to the position, with history


@admin.register(AccountStatus)
class AccountStatusAdmin(admin.ModelAdmin):
    list_display = [
        "account",
        "net_liquidation",
        "total_cash",
        "settled_cash",
        "buying_power",
        "excess_liquidity",
        "maint_margin_req",
        "day_trades_remaining",
        "read_at",
    ]
    list_select_related = ["account"]
    search_fields = ["account__account_id"]
    readonly_fields = [f.name for f in AccountStatus._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.action(description="Sync now (positions)")
def sync_now(modeladmin, request, queryset) -> None:
    runs: list[SyncRun] = positions_sync_request(accounts=list(queryset), reason=SyncReason.MANUAL)
    started = [r for r in runs if r.status == SyncStatus.RUNNING]
    not_started = [r for r in runs if r.status != SyncStatus.RUNNING]  # SKIPPED, or FAILED to queue
    if started:
        modeladmin.message_user(
            request,
            f"Position sync enqueued for {len(started)} account(s): "
            + ", ".join(r.account.account_id for r in started),
            messages.SUCCESS,
        )
    for run in not_started:
        modeladmin.message_user(request, f"{run.account.account_id}: not started ({run.message})", messages.WARNING)


account_action_register(sync_now)


class PositionSnapshotInline(admin.TabularInline):
    model = PositionSnapshot
    extra = 0
    can_delete = False
    fields = ["instrument", "quantity", "average_price", "price", "market_value", "unrealized_pnl"]
    readonly_fields = fields
    raw_id_fields = ["instrument"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AccountSnapshot)
class AccountSnapshotAdmin(admin.ModelAdmin):
    list_display = [
        "taken_at",
        "account",
        "kind",
        "source",
        "net_liquidation",
        "total_cash",
        "positions_value",
        "positions_count",
    ]
    list_filter = ["kind", "source", "account"]
    search_fields = ["account__account_id", "note"]
    list_select_related = ["account"]
    date_hierarchy = "taken_at"
    readonly_fields = [f.name for f in AccountSnapshot._meta.fields]
    inlines = [PositionSnapshotInline]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False  # snapshots come from the broker or `manage.py snapshot_portfolio --at`


@admin.register(PerformanceMetrics)
class PerformanceMetricsAdmin(admin.ModelAdmin):
    list_display = [
        "as_of",
        "account",
        "window",
        "twr",
        "max_drawdown",
        "sharpe",
        "round_trips",
        "win_rate",
        "profit_factor",
        "expectancy",
        "max_consecutive_losses",
    ]
    list_filter = ["window", "account"]
    list_select_related = ["account"]
    date_hierarchy = "as_of"
    readonly_fields = [f.name for f in PerformanceMetrics._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(PositionGreeks)
class PositionGreeksAdmin(admin.ModelAdmin):
    """Read-only: the "Option Greeks" task writes these (manage.py refresh_greeks runs it once)."""

    list_display = ["position", "source", "delta", "gamma", "theta", "vega", "iv", "days_to_expiry", "as_of"]
    list_select_related = ["position__account", "position__instrument"]
    list_filter = ["source", "entry_source"]
    search_fields = ["position__account__account_id", "position__instrument__symbol"]
    raw_id_fields = ["position"]
    readonly_fields = [f.name for f in PositionGreeks._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
