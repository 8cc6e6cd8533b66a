from django.contrib import admin

from core.models import SyncRun, TaskLock


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "kind",
        "account",
        "reason",
        "status",
        "skip_reason",
        "fail_reason",
        "duration_ms",
        "created",
        "updated",
        "closed",
        "unchanged",
        "short_message",
    ]
    list_filter = ["kind", "status", "skip_reason", "fail_reason", "reason", "account"]
    search_fields = ["account__account_id", "message"]
    list_select_related = ["account"]
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in SyncRun._meta.fields]

    @admin.display(description="message")
    def short_message(self, obj: SyncRun) -> str:
        return obj.message[:80]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TaskLock)
class TaskLockAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "acquired_at", "expires_at"]
    search_fields = ["name"]
    readonly_fields = ["name", "owner", "acquired_at", "expires_at"]
