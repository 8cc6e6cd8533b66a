from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from trading.models import Account


@admin.register(Account)
class AccountAdmin(SimpleHistoryAdmin):
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
