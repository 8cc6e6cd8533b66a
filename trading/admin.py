from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from trading.models import (
    Account,
    CashAccountState,
    CashFlow,
    CashViolation,
    DayTrade,
    Execution,
    Lot,
    LotMatch,
    Order,
    OrderEvent,
    OrderEventSource,
    PaperTrade,
    RiskEvent,
    RiskEventKind,
    RoundTrip,
    SettlementTracking,
    Signal,
    TradeFrequencyTracking,
    TradingSession,
)
from trading.services.corrections import cash_flow_save, execution_correct, execution_delete, execution_enter
from trading.services.orders import OrderNotCancellable, order_cancel
from trading.services.risk import breaker_resume


@admin.register(Account)
class AccountAdmin(SimpleHistoryAdmin):
    """Accounts. Apps above trading add their account actions with ``account_action_register``
    (the "Sync now" of positions lives in portfolio), rather than replacing this admin."""

    actions: list = []
    list_display = [
        "account_id",
        "name",
        "account_type",
        "base_currency",
        "mode",
        "day_trade_rule",
        "is_active",
        "seen_at_broker_at",
    ]
    list_filter = ["mode", "account_type", "day_trade_rule", "is_active", "base_currency"]
    search_fields = ["account_id", "name", "users__username", "users__email"]
    filter_horizontal = ["users"]
    readonly_fields = ["seen_at_broker_at", "created_at", "updated_at"]


def account_action_register(action) -> None:
    """Offer an admin action on accounts from an app above trading (called from its admin module)."""
    if action not in AccountAdmin.actions:
        AccountAdmin.actions = [*AccountAdmin.actions, action]


class ExecutionForm(forms.ModelForm):
    reason = forms.CharField(
        max_length=100, help_text="Why this change? Kept in the history with your name and the time."
    )

    class Meta:
        model = Execution
        fields = [
            "broker",
            "exec_id",
            "account",
            "instrument",
            "side",
            "quantity",
            "price",
            "commission",
            "commission_currency",
            "executed_at",
            "settlement_date",
            "broker_settlement_date",
            "order_id",
            "perm_id",
            "exchange",
        ]


@admin.register(Execution)
class ExecutionAdmin(SimpleHistoryAdmin):
    form = ExecutionForm
    list_display = [
        "executed_at",
        "account",
        "instrument",
        "side",
        "quantity",
        "price",
        "commission",
        "realized_pnl",
        "trade_date",
        "settlement_date",
        "source",
        "corrected",
    ]
    list_filter = ["side", "source", "instrument__sec_type", "account", "trade_date"]
    search_fields = ["exec_id", "instrument__symbol", "account__account_id", "=perm_id", "=order_id"]
    list_select_related = ["account", "instrument"]
    autocomplete_fields = ["account", "instrument"]
    date_hierarchy = "executed_at"
    readonly_fields = [
        "trade_date",
        "realized_pnl",
        "basis_transfer",
        "source",
        "staff_fields",
        "broker_disagreement",
        "raw",
        "created_at",
        "updated_at",
    ]
    show_full_result_count = False

    @admin.display(boolean=True, description="corrected")
    def corrected(self, obj: Execution) -> bool:
        return bool(obj.staff_fields)

    def save_model(self, request, obj, form, change):
        reason = form.cleaned_data["reason"]
        if not change:
            execution_enter(execution=obj, reason=reason)
            return
        previous = Execution.objects.filter(pk=obj.pk).values("executed_at", "instrument_id").first() or {}
        execution_correct(
            execution=obj,
            changed=list(form.changed_data),
            reason=reason,
            previous_executed_at=previous.get("executed_at"),
            previous_instrument_id=previous.get("instrument_id"),
        )

    def delete_model(self, request, obj):
        execution_delete(execution=obj, reason=f"deleted in the admin by {request.user}")

    def delete_queryset(self, request, queryset):
        for execution in queryset.select_related("account"):
            execution_delete(execution=execution, reason=f"deleted in the admin by {request.user}")


@admin.register(CashFlow)
class CashFlowAdmin(SimpleHistoryAdmin):
    list_display = ["at", "account", "kind", "amount", "currency", "source", "flow_id"]
    list_filter = ["kind", "source", "account"]
    search_fields = ["flow_id", "account__account_id", "note"]
    list_select_related = ["account"]
    autocomplete_fields = ["account"]
    date_hierarchy = "at"

    def save_model(self, request, obj, form, change):
        cash_flow_save(cash_flow=obj)


class DerivedAdmin(admin.ModelAdmin):
    """Derived rows are recomputed from the fills: browse them, never edit them."""

    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Lot)
class LotAdmin(DerivedAdmin):
    list_display = ["account", "instrument", "opened_at", "original_quantity", "quantity", "cost_price"]
    list_filter = ["account"]
    search_fields = ["instrument__symbol", "account__account_id"]
    list_select_related = ["account", "instrument"]


@admin.register(LotMatch)
class LotMatchAdmin(DerivedAdmin):
    list_display = ["account", "instrument", "quantity", "entry_price", "exit_price", "realized_pnl", "method"]
    list_filter = ["method", "account"]
    search_fields = ["instrument__symbol", "account__account_id", "closing_execution__exec_id"]
    list_select_related = ["account", "instrument"]


@admin.register(RoundTrip)
class RoundTripAdmin(DerivedAdmin):
    list_display = [
        "closed_at",
        "account",
        "instrument",
        "direction",
        "quantity",
        "average_entry",
        "average_exit",
        "realized_pnl",
        "outcome",
        "holding_seconds",
    ]
    list_filter = ["direction", "outcome", "account"]
    search_fields = ["instrument__symbol", "account__account_id"]
    list_select_related = ["account", "instrument"]
    date_hierarchy = "closed_at"


@admin.register(SettlementTracking)
class SettlementAdmin(DerivedAdmin):
    list_display = ["settlement_date", "account", "execution", "trade_date", "amount", "status", "from_broker"]
    list_filter = ["status", "from_broker", "account"]
    search_fields = ["execution__exec_id", "account__account_id"]
    list_select_related = ["account", "execution__instrument"]
    date_hierarchy = "settlement_date"


@admin.register(DayTrade)
class DayTradeAdmin(DerivedAdmin):
    list_display = ["trade_date", "account", "instrument", "quantity", "counting"]
    list_filter = ["counting", "account"]
    search_fields = ["instrument__symbol", "account__account_id"]
    list_select_related = ["account", "instrument"]
    date_hierarchy = "trade_date"


@admin.register(TradeFrequencyTracking)
class TradeFrequencyAdmin(DerivedAdmin):
    list_display = ["period_start", "period", "account", "trades", "day_trades"]
    list_filter = ["period", "account"]
    list_select_related = ["account"]


@admin.register(CashAccountState)
class CashAccountStateAdmin(DerivedAdmin):
    list_display = ["date", "account", "settled_cash", "unsettled_cash", "violations_12m"]
    list_filter = ["account"]
    list_select_related = ["account"]
    date_hierarchy = "date"


@admin.register(CashViolation)
class CashViolationAdmin(DerivedAdmin):
    list_display = ["trade_date", "account", "kind", "amount", "detail"]
    list_filter = ["kind", "account"]
    list_select_related = ["account"]


class ResumeForm(ActionForm):
    reason = forms.CharField(required=False, max_length=255, help_text="Why trading may resume (required, kept).")


@admin.register(RiskEvent)
class RiskEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "account",
        "kind",
        "severity",
        "action",
        "value",
        "threshold",
        "as_of",
        "resolved_at",
        "resolved_by",
        "message",
    ]
    list_filter = ["kind", "severity", "action", "account"]
    search_fields = ["account__account_id", "message"]
    list_select_related = ["account", "resolved_by"]
    raw_id_fields = ["order"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "account",
        "kind",
        "severity",
        "action",
        "value",
        "threshold",
        "as_of",
        "message",
        "settings_snapshot",
        "order",
        "created_at",
        "resolved_at",
        "resolved_by",
        "resolution_note",
    ]
    action_form = ResumeForm
    actions = ["resume_trading"]

    @admin.action(description="Resume opening orders (circuit breaker; give a reason)")
    def resume_trading(self, request, queryset) -> None:
        reason = (request.POST.get("reason") or "").strip()
        if not reason:
            self.message_user(request, "A reason is required to resume trading: nothing resumed.", messages.ERROR)
            return
        resumed = 0
        for event in queryset.filter(kind=RiskEventKind.CIRCUIT_BREAKER_TRIP, resolved_at__isnull=True):
            resumed += breaker_resume(event=event, user=request.user, reason=reason, now=timezone.now())
        self.message_user(request, f"Opening orders resumed for {resumed} breaker(s).", messages.SUCCESS)


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = ["at", "from_status", "to_status", "source", "message"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class RecordAdmin(admin.ModelAdmin):
    """A record the product writes (through its services): every field read-only, none added by hand."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(RecordAdmin):
    """Orders are records: read-only; the one write is a cancel, through the service."""

    list_display = [
        "created_at",
        "account",
        "client_order_id",
        "mode",
        "side",
        "quantity",
        "instrument",
        "order_type",
        "limit_price",
        "status",
        "filled_quantity",
        "average_fill_price",
    ]
    list_filter = ["status", "mode", "order_type", "side", "account"]
    search_fields = ["client_order_id", "account__account_id", "instrument__symbol", "=perm_id"]
    list_select_related = ["account", "instrument"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [OrderEventInline]
    actions = ["cancel_orders"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Cancel the selected working orders")
    def cancel_orders(self, request, queryset) -> None:
        done, refused = 0, []
        for order in queryset.select_related("account", "instrument"):
            try:
                order_cancel(order=order, source=OrderEventSource.STAFF)
                done += 1
            except OrderNotCancellable as exc:
                refused.append(str(exc))
        if done:
            self.message_user(request, f"{done} order(s) cancelled.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.WARNING)


@admin.register(Signal)
class SignalAdmin(RecordAdmin):
    """Signals are records: read-only here; they are created and executed through the API."""

    list_display = ["created_at", "account", "signal_id", "instrument", "action", "entry_price", "status"]
    list_filter = ["status", "timeframe", "action", "account"]
    search_fields = ["signal_id", "account__account_id", "instrument__symbol", "strategy"]
    list_select_related = ["account", "instrument"]
    raw_id_fields = ["order"]
    date_hierarchy = "created_at"


@admin.register(PaperTrade)
class PaperTradeAdmin(RecordAdmin):
    """Paper trades are records: read-only; the monitor opens and closes them through orders."""

    list_display = ["opened_at", "account", "instrument", "side", "quantity", "entry_price", "status", "realized_pnl"]
    list_filter = ["status", "timeframe", "account"]
    search_fields = ["signal__signal_id", "account__account_id", "instrument__symbol"]
    list_select_related = ["account", "instrument"]
    raw_id_fields = ["signal", "entry_order", "exit_order"]
    date_hierarchy = "opened_at"


@admin.register(TradingSession)
class TradingSessionAdmin(RecordAdmin):
    """Trading sessions are records: read-only; started by a worker's start or the day's first order."""

    list_display = ["started_at", "day", "bot_version", "config_hash", "started_by"]
    list_filter = ["bot_version", "started_by"]
    search_fields = ["config_hash", "bot_version"]
    date_hierarchy = "started_at"
