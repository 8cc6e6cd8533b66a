from django.contrib import admin

from marketdata.models import Instrument


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["symbol", "sec_type", "expiry", "strike", "right", "currency", "multiplier", "con_id", "exchange"]
    list_filter = ["sec_type", "currency", "right"]
    search_fields = ["symbol", "=con_id", "key"]
    readonly_fields = ["key", "created_at", "updated_at"]
    date_hierarchy = "expiry"

    def save_model(self, request, obj, form, change):
        # The natural key follows the fields staff edit, exactly as the services compute it.
        obj.key = obj.spec.key
        super().save_model(request, obj, form, change)
