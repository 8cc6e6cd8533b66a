import django_filters as filters

from core.inputs import IsoDateTimeFilter
from portfolio.models import AccountSnapshot, Position, PositionStatus
from trading.models import Account


def _visible_accounts(request):
    return Account.objects.visible_to(getattr(request, "user", None))


class PositionFilter(filters.FilterSet):
    account = filters.ModelChoiceFilter(
        field_name="account",
        to_field_name="account_id",
        queryset=_visible_accounts,
        label="Broker account id",
    )
    status = filters.ChoiceFilter(
        choices=[("open", "open"), ("closed", "closed"), ("all", "all")],
        method="filter_status",
        empty_label=None,
        label="open (default), closed or all",
    )
    symbol = filters.CharFilter(field_name="instrument__symbol", lookup_expr="iexact")

    class Meta:
        model = Position
        fields = ["account", "status", "symbol"]

    def __init__(self, data=None, *args, **kwargs):
        if data is not None and not data.get("status"):
            data = data.copy()
            data["status"] = "open"
        super().__init__(data, *args, **kwargs)

    def filter_status(self, queryset, name, value):
        if value == "open":
            return queryset.filter(status=PositionStatus.OPEN)
        if value == "closed":
            return queryset.filter(status=PositionStatus.CLOSED)
        return queryset


class SnapshotFilter(filters.FilterSet):
    account = filters.ModelChoiceFilter(
        field_name="account", to_field_name="account_id", queryset=_visible_accounts, label="Broker account id"
    )
    since = IsoDateTimeFilter(field_name="taken_at", lookup_expr="gte", label="From (ISO 8601 time)")
    until = IsoDateTimeFilter(field_name="taken_at", lookup_expr="lte", label="To (ISO 8601 time)")
    interval = filters.ChoiceFilter(
        choices=[("hour", "hour"), ("day", "day")],
        method="filter_interval",
        empty_label=None,
        label="hour (every snapshot, default) or day (the last of each trade date)",
    )

    class Meta:
        model = AccountSnapshot
        fields = ["account", "since", "until", "interval"]

    def filter_interval(self, queryset, name, value):
        return queryset  # applied by the view through the selector, which needs it before filtering
