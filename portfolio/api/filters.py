import django_filters as filters

from portfolio.models import Position, PositionStatus
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
