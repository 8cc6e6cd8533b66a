from django import forms
from django.contrib import admin
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
    RiskEvent,
    RoundTrip,
    SettlementTracking,
    TradeFrequencyTracking,
)
from trading.services.corrections import cash_flow_save, execution_correct, execution_delete, execution_enter


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
        "day_trade_rule",
        "is_active",
        "seen_at_broker_at",
    ]
    list_filter = ["account_type", "day_trade_rule", "is_active", "base_currency"]
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


@admin.register(RiskEvent)
class RiskEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "account",
        "kind",
        "severity",
        "value",
        "threshold",
        "as_of",
        "resolved_at",
        "message",
    ]
    list_filter = ["kind", "severity", "account"]
    search_fields = ["account__account_id", "message"]
    list_select_related = ["account"]
    date_hierarchy = "created_at"
    readonly_fields = ["account", "kind", "severity", "value", "threshold", "as_of", "message", "created_at"]
