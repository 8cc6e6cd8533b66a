from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import decimal_kwargs
from core.inputs import DateField
from trading.models import Account, CashViolation, DayTrade, Execution, RoundTrip, SettlementTracking

# A JSON object of decimals as strings, or null (a SerializerMethodField's schema says so explicitly).
NULLABLE_OBJECT = {"type": "object", "nullable": True, "additionalProperties": True}


class LivePositionSerializer(serializers.Serializer):
    account = serializers.CharField(source="account_id")
    symbol = serializers.CharField(source="instrument.symbol")
    sec_type = serializers.CharField(source="instrument.sec_type")
    con_id = serializers.IntegerField(source="instrument.con_id", allow_null=True)
    currency = serializers.CharField(source="instrument.currency")
    multiplier = serializers.DecimalField(source="instrument.multiplier", **decimal_kwargs("quantity"))
    expiry = serializers.DateField(source="instrument.expiry", allow_null=True)
    strike = serializers.DecimalField(source="instrument.strike", allow_null=True, **decimal_kwargs("price"))
    right = serializers.CharField(source="instrument.right", allow_blank=True)
    quantity = serializers.DecimalField(**decimal_kwargs("quantity"))
    average_price = serializers.DecimalField(**decimal_kwargs("price"))
    market_price = serializers.DecimalField(allow_null=True, **decimal_kwargs("price"))


class LivePositionsSerializer(serializers.Serializer):
    results = LivePositionSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class AccountQuerySerializer(serializers.Serializer):
    """``?account=`` limited to the accounts the user may see; ``required`` per endpoint."""

    account = serializers.SlugRelatedField(
        slug_field="account_id",
        queryset=Account.objects.none(),
        required=False,
        error_messages={"does_not_exist": "Unknown account {value!r}, or not one of yours."},
    )

    def __init__(self, *args, user=None, account_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = Account.objects.visible_to(user)
        self.fields["account"].required = account_required


class AccountDateQuerySerializer(AccountQuerySerializer):
    date = DateField(required=False, help_text="ISO date; default today (exchange time)")


class ExecutionSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id")
    symbol = serializers.CharField(source="instrument.symbol")
    sec_type = serializers.CharField(source="instrument.sec_type")
    currency = serializers.CharField(source="instrument.currency")
    description = serializers.CharField(source="instrument.display_name")

    class Meta:
        model = Execution
        fields = [
            "id",
            "exec_id",
            "account",
            "symbol",
            "sec_type",
            "currency",
            "description",
            "side",
            "quantity",
            "price",
            "commission",
            "commission_currency",
            "executed_at",
            "trade_date",
            "settlement_date",
            "realized_pnl",
            "source",
            "order_id",
            "perm_id",
            "staff_fields",
            "broker_disagreement",
        ]
        read_only_fields = fields


class RoundTripSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id")
    symbol = serializers.CharField(source="instrument.symbol")
    description = serializers.CharField(source="instrument.display_name")
    entry_greeks = serializers.SerializerMethodField(
        help_text="Options: the Greeks at entry (per share of one contract, decimals as strings) with their "
        "source; null when none were recorded."
    )

    @extend_schema_field(NULLABLE_OBJECT)
    def get_entry_greeks(self, round_trip) -> dict | None:
        return self.context.get("entry_greeks", {}).get(round_trip.pk)

    class Meta:
        model = RoundTrip
        fields = [
            "id",
            "account",
            "symbol",
            "description",
            "direction",
            "opened_at",
            "closed_at",
            "quantity",
            "average_entry",
            "average_exit",
            "realized_pnl",
            "commissions",
            "outcome",
            "holding_seconds",
            "opening_execution",
            "closing_execution",
            "entry_greeks",
        ]
        read_only_fields = fields


class DayTradeSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id")
    symbol = serializers.CharField(source="instrument.symbol")
    opening_exec_id = serializers.CharField(source="opening_execution.exec_id")
    closing_exec_id = serializers.CharField(source="closing_execution.exec_id")

    class Meta:
        model = DayTrade
        fields = ["id", "account", "symbol", "trade_date", "quantity", "opening_exec_id", "closing_exec_id", "counting"]
        read_only_fields = fields


class SettlementSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id")
    exec_id = serializers.CharField(source="execution.exec_id")
    symbol = serializers.CharField(source="execution.instrument.symbol")

    class Meta:
        model = SettlementTracking
        fields = [
            "id",
            "account",
            "exec_id",
            "symbol",
            "trade_date",
            "settlement_date",
            "amount",
            "status",
            "from_broker",
        ]
        read_only_fields = fields


class PdtStatusSerializer(serializers.Serializer):
    account = serializers.CharField()
    date = serializers.DateField()
    rule = serializers.CharField()
    window_start = serializers.DateField()
    window_end = serializers.DateField()
    day_trades = serializers.IntegerField()
    trades = serializers.IntegerField()
    is_pattern_day_trader = serializers.BooleanField(allow_null=True)
    day_trades_remaining = serializers.IntegerField(allow_null=True)


class CashViolationSerializer(serializers.ModelSerializer):
    buy_exec_id = serializers.CharField(source="buy_execution.exec_id")
    sell_exec_id = serializers.CharField(source="sell_execution.exec_id")
    symbol = serializers.CharField(source="sell_execution.instrument.symbol")

    class Meta:
        model = CashViolation
        fields = ["kind", "trade_date", "symbol", "buy_exec_id", "sell_exec_id", "amount", "detail"]
        read_only_fields = fields


class CashStateSerializer(serializers.Serializer):
    account = serializers.CharField()
    date = serializers.DateField()
    state_date = serializers.DateField(allow_null=True, help_text="The day the figures are for (last known).")
    settled_cash = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    unsettled_cash = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    violations_12m = serializers.IntegerField()
    violations = CashViolationSerializer(many=True)
