import django_filters as filters

from core.inputs import DateFilter, IsoDateTimeFilter
from trading.models import (
    Account,
    DayTrade,
    Execution,
    Order,
    OrderStatus,
    RoundTrip,
    SettlementStatus,
    SettlementTracking,
)


def _visible_accounts(request):
    return Account.objects.visible_to(getattr(request, "user", None))


def _account_filter() -> filters.ModelChoiceFilter:
    return filters.ModelChoiceFilter(
        field_name="account", to_field_name="account_id", queryset=_visible_accounts, label="Broker account id"
    )


class ExecutionFilter(filters.FilterSet):
    account = _account_filter()
    symbol = filters.CharFilter(field_name="instrument__symbol", lookup_expr="iexact")
    since = DateFilter(field_name="trade_date", lookup_expr="gte", label="Trade date from (inclusive)")
    until = DateFilter(field_name="trade_date", lookup_expr="lte", label="Trade date to (inclusive)")

    class Meta:
        model = Execution
        fields = ["account", "symbol", "since", "until"]


class RoundTripFilter(filters.FilterSet):
    account = _account_filter()
    symbol = filters.CharFilter(field_name="instrument__symbol", lookup_expr="iexact")

    class Meta:
        model = RoundTrip
        fields = ["account", "symbol"]


class DayTradeFilter(filters.FilterSet):
    account = _account_filter()
    since = DateFilter(field_name="trade_date", lookup_expr="gte")
    until = DateFilter(field_name="trade_date", lookup_expr="lte")

    class Meta:
        model = DayTrade
        fields = ["account", "since", "until"]


class SettlementFilter(filters.FilterSet):
    account = _account_filter()
    status = filters.ChoiceFilter(
        choices=[("pending", "pending"), ("settled", "settled")], method="filter_status", label="pending or settled"
    )

    class Meta:
        model = SettlementTracking
        fields = ["account", "status"]

    def filter_status(self, queryset, name, value):
        return queryset.filter(status=SettlementStatus.PENDING if value == "pending" else SettlementStatus.SETTLED)


class OrderFilter(filters.FilterSet):
    account = _account_filter()
    status = filters.ChoiceFilter(choices=OrderStatus.choices)
    since = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", label="Created at or after (ISO time)")

    class Meta:
        model = Order
        fields = ["account", "status", "since"]
