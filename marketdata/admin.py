from django import forms
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from marketdata.models import Bar, BarSize, FxRate, Instrument, Quote, WatchedInstrument
from marketdata.services.fx import fx_rate_save


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


class WatchedInstrumentForm(forms.ModelForm):
    class Meta:
        model = WatchedInstrument
        fields = ["instrument", "bar_sizes", "enabled", "backfill_start"]

    def clean_bar_sizes(self):
        sizes = self.cleaned_data["bar_sizes"]
        if not isinstance(sizes, list) or not sizes:
            raise forms.ValidationError(f'a list of bar sizes, e.g. ["1d", "5m"]; any of {", ".join(BarSize.values)}')
        unknown = [s for s in sizes if s not in BarSize.values]
        if unknown:
            raise forms.ValidationError(
                f"unknown bar size(s) {', '.join(map(str, unknown))}: use {', '.join(BarSize.values)}"
            )
        return list(dict.fromkeys(sizes))


@admin.register(WatchedInstrument)
class WatchedInstrumentAdmin(admin.ModelAdmin):
    form = WatchedInstrumentForm
    list_display = ["instrument", "bar_sizes", "enabled", "backfill_start", "updated_at"]
    list_filter = ["enabled"]
    list_select_related = ["instrument"]
    search_fields = ["instrument__symbol"]
    autocomplete_fields = ["instrument"]
    list_editable = ["enabled"]


@admin.register(Quote)
class QuoteAdmin(admin.ModelAdmin):
    """Quotes come from the broker: read-only here."""

    list_display = ["instrument", "bid", "ask", "last", "at", "delayed", "source", "fetched_at"]
    list_select_related = ["instrument"]
    search_fields = ["instrument__symbol"]
    list_filter = ["delayed", "source"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Bar)
class BarAdmin(admin.ModelAdmin):
    """Bars come from the broker: read-only here (a big table: no counts, raw ids)."""

    list_display = ["instrument", "bar_size", "start", "open", "high", "low", "close", "volume", "source", "fetched_at"]
    list_select_related = ["instrument"]
    list_filter = ["bar_size"]
    search_fields = ["=instrument__symbol"]
    raw_id_fields = ["instrument"]
    show_full_result_count = False
    ordering = ["-start"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class FxRateForm(forms.ModelForm):
    reason = forms.CharField(
        max_length=100, help_text="Why this change? Kept in the history with your name and the time."
    )

    class Meta:
        model = FxRate
        fields = ["currency", "base", "day", "rate"]

    def clean_currency(self):
        return (self.cleaned_data.get("currency") or "").strip().upper()

    def clean_base(self):
        return (self.cleaned_data.get("base") or "").strip().upper()

    def clean(self):
        cleaned = super().clean()
        currency, base = cleaned.get("currency") or "", cleaned.get("base") or ""
        for name, code in (("currency", currency), ("base", base)):
            if code and not (len(code) == 3 and code.isalpha()):
                self.add_error(name, f"{code!r} is not a 3-letter currency code")
        if currency and currency == base:
            self.add_error("currency", "a rate of a currency to itself is 1: nothing to store")
        rate = cleaned.get("rate")
        if rate is not None and rate <= 0:
            self.add_error("rate", "must be positive")
        return cleaned


@admin.register(FxRate)
class FxRateAdmin(SimpleHistoryAdmin):
    """Daily exchange rates (one unit of currency in base). Staff may correct one: it is then marked
    ``admin`` and kept with who, when and why; the broker's rate and the backfill leave it alone."""

    form = FxRateForm
    list_display = ["day", "currency", "base", "rate", "source", "fetched_at"]
    list_filter = ["base", "currency", "source"]
    search_fields = ["=currency", "=base"]
    date_hierarchy = "day"
    ordering = ["-day", "base", "currency"]
    readonly_fields = ["source", "fetched_at"]
    show_full_result_count = False

    def save_model(self, request, obj, form, change):
        fx_rate_save(rate=obj, reason=form.cleaned_data["reason"])
