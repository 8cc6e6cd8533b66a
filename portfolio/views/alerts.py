"""Alerts: which events a user is told about, for which of their accounts, where (their channels), and a
"send a test alert" button. Writes go through core.alerts' services."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.alerts import alert_preference_get, alert_preference_update, alert_test_send
from core.models import Alert, AlertChannel, AlertKind, ChannelKind
from trading.models import Account

RECENT_ALERTS = 20
CHOSEN_KINDS = [(k, label) for k, label in AlertKind.choices if k != AlertKind.TEST]


class PreferenceForm(forms.Form):
    kinds = forms.MultipleChoiceField(choices=CHOSEN_KINDS, widget=forms.CheckboxSelectMultiple, required=False)
    all_accounts = forms.BooleanField(required=False, label="Every account I can see")
    accounts = forms.ModelMultipleChoiceField(
        queryset=Account.objects.none(), widget=forms.CheckboxSelectMultiple, required=False
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only the accounts the user may see can be chosen: another id is refused as an invalid choice.
        self.fields["accounts"].queryset = Account.objects.visible_to(user).order_by("account_id")


class ChannelForm(forms.ModelForm):
    url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", widget=forms.PasswordInput(render_value=False)
    )

    class Meta:
        model = AlertChannel
        fields = ["kind", "name", "address", "url", "token"]
        widgets = {"token": forms.PasswordInput(render_value=False)}

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind in (ChannelKind.SLACK, ChannelKind.DISCORD, ChannelKind.WEBHOOK) and not data.get("url"):
            self.add_error("url", "This channel needs its webhook URL.")
        if kind == ChannelKind.TELEGRAM and not (data.get("token") and data.get("address")):
            self.add_error("token", "Telegram needs the bot token and the chat id (in address).")
        return data


@login_required
def alert_settings(request: HttpRequest) -> HttpResponse:
    preference = alert_preference_get(user=request.user)
    if request.method == "POST":
        form = PreferenceForm(request.POST, user=request.user)
        if form.is_valid():
            alert_preference_update(
                user=request.user,
                kinds=form.cleaned_data["kinds"],
                all_accounts=form.cleaned_data["all_accounts"],
                accounts=form.cleaned_data["accounts"],
            )
            messages.success(request, "Alert preferences saved.")
            return redirect("alerts")
    else:
        form = PreferenceForm(
            user=request.user,
            initial={
                "kinds": preference.kinds,
                "all_accounts": preference.all_accounts,
                "accounts": list(preference.accounts.all()) if preference.pk else [],
            },
        )
    context = {
        "form": form,
        "channel_form": ChannelForm(),
        "channels": AlertChannel.objects.filter(user=request.user).order_by("pk"),
        "recent": Alert.objects.filter(user=request.user).select_related("account")[:RECENT_ALERTS],
    }
    return render(request, "portfolio/alerts.html", context)


@login_required
@require_POST
def alert_channel_add(request: HttpRequest) -> HttpResponse:
    form = ChannelForm(request.POST)
    if form.is_valid():
        channel = form.save(commit=False)
        channel.user = request.user
        channel.save()
        messages.success(request, f"{channel.get_kind_display()} channel added.")
    else:
        errors = "; ".join(f"{field}: {' '.join(e)}" for field, e in form.errors.items())
        messages.error(request, f"Channel not added: {errors}")
    return redirect("alerts")


@login_required
@require_POST
def alert_channel_remove(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(AlertChannel, pk=pk, user=request.user)  # another user's: 404
    channel.delete()
    messages.success(request, "Channel removed.")
    return redirect("alerts")


@login_required
@require_POST
def alert_test(request: HttpRequest) -> HttpResponse:
    if not AlertChannel.objects.filter(user=request.user, is_active=True).exists():
        messages.warning(request, "Add a channel first: a test alert needs somewhere to go.")
    else:
        alert_test_send(user=request.user)
        messages.success(request, "Test alert sent to your channels (see the attempts below in a moment).")
    return redirect("alerts")
