from axes import admin as axes_admin
from axes.conf import settings as axes_settings
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.models import (
    Alert,
    AlertAttempt,
    AlertChannel,
    AlertDelivery,
    AlertPreference,
    BrokerConnection,
    SyncRun,
    TaskLock,
)


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


# --- Failed logins (django-axes; settings.AXES_ENABLE_ADMIN is off so that these replace axes' own) ---


@admin.register(AccessAttempt)
class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    """Failed logins still counting towards a lockout, one row per username, address and browser.

    A username is locked when its rows add up to the limit within the cool-off, and so is an address
    (settings.AXES_LOCKOUT_PARAMETERS): one row rarely tells, so the list shows both sums. To unlock a
    username, search for it, select all its rows and run "Unlock"; the same for an address.
    """

    list_display = [
        "attempt_time",
        "username",
        "ip_address",
        "user_agent",
        "path_info",
        "failures_since_start",
        "username_failures",
        "address_failures",
        "locked_out",
    ]
    list_filter = ["attempt_time", "path_info"]
    actions = ["unlock", *axes_admin.AccessAttemptAdmin.actions]

    def get_queryset(self, request):
        recent = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - axes_settings.AXES_COOLOFF_TIME)

        def failures_by(field: str) -> Coalesce:
            same = recent.filter(**{field: OuterRef(field)}).values(field).annotate(total=Sum("failures_since_start"))
            return Coalesce(Subquery(same.values("total")), 0)

        return (
            super()
            .get_queryset(request)
            .annotate(
                username_total=failures_by("username"),
                address_total=failures_by("ip_address"),
            )
        )

    @admin.display(description="failures of the username", ordering="username_total")
    def username_failures(self, obj: AccessAttempt) -> int:
        return obj.username_total

    @admin.display(description="failures from the address", ordering="address_total")
    def address_failures(self, obj: AccessAttempt) -> int:
        return obj.address_total

    @admin.display(description="locked out", boolean=True)
    def locked_out(self, obj: AccessAttempt) -> bool:
        return max(obj.username_total, obj.address_total) >= axes_settings.AXES_FAILURE_LIMIT

    @admin.action(description="Unlock: delete the selected failed logins", permissions=["delete"])
    def unlock(self, request, queryset) -> None:
        rows = list(queryset.values_list("username", "ip_address"))
        deleted, _ = AccessAttempt.objects.filter(pk__in=queryset.values("pk")).delete()
        usernames = sorted({username for username, _ in rows if username})
        addresses = sorted({address for _, address in rows if address})
        self.message_user(
            request,
            f"Deleted {deleted} failed login record(s) (usernames: {', '.join(usernames) or '-'}; "
            f"addresses: {', '.join(addresses) or '-'}). A username or address stays locked while its "
            "other rows still reach the limit.",
            messages.SUCCESS,
        )


admin.site.register(AccessLog, axes_admin.AccessLogAdmin)
admin.site.register(AccessFailureLog, axes_admin.AccessFailureLogAdmin)


# --- live connection and alerts ------------------------------------------------------------------
@admin.register(BrokerConnection)
class BrokerConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "since", "checked_at", "last_code", "message"]
    readonly_fields = ["name", "state", "since", "checked_at", "last_code", "message", "holder"]

    def has_add_permission(self, request) -> bool:
        return False  # written by the listener only


class AlertChannelForm(forms.ModelForm):
    url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", widget=forms.PasswordInput(render_value=False)
    )

    class Meta:
        model = AlertChannel
        fields = ["user", "kind", "name", "address", "url", "token", "is_active"]
        # Secrets are typed in, never shown again (left empty: kept as they are).
        widgets = {"token": forms.PasswordInput(render_value=False)}

    def clean(self):
        data = super().clean()
        for name in ("url", "token"):
            if not data.get(name) and self.instance.pk:
                data[name] = getattr(self.instance, name)
        return data


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm
    list_display = ["user", "kind", "name", "address", "has_url", "has_token", "is_active"]
    list_filter = ["kind", "is_active"]
    list_select_related = ["user"]
    search_fields = ["user__username", "name", "address"]
    raw_id_fields = ["user"]

    @admin.display(boolean=True, description="URL")
    def has_url(self, obj: AlertChannel) -> bool:
        return bool(obj.url)

    @admin.display(boolean=True, description="token")
    def has_token(self, obj: AlertChannel) -> bool:
        return bool(obj.token)


@admin.register(AlertPreference)
class AlertPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "all_accounts", "kinds"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    filter_horizontal = ["accounts"]


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    can_delete = False
    readonly_fields = ["channel", "status", "attempts", "sent_at"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "account", "status", "held_back", "title"]
    list_filter = ["kind", "status"]
    list_select_related = ["user", "account"]
    search_fields = ["title", "user__username", "account__account_id"]
    readonly_fields = ["user", "kind", "account", "key", "title", "body", "status", "held_back", "created_at"]
    inlines = [AlertDeliveryInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AlertAttempt)
class AlertAttemptAdmin(admin.ModelAdmin):
    list_display = ["at", "delivery", "ok", "status_code", "detail"]
    list_filter = ["ok"]
    list_select_related = ["delivery"]
    raw_id_fields = ["delivery"]
    readonly_fields = ["delivery", "at", "ok", "status_code", "detail"]

    def has_add_permission(self, request) -> bool:
        return False
