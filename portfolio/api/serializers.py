from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import decimal_kwargs
from core.models import SyncRun
from portfolio.models import (
    ACCOUNT_VALUE_FIELDS,
    AccountSnapshot,
    AccountStatus,
    PerformanceMetrics,
    Position,
    PositionEvent,
    PositionGreeks,
)
from portfolio.selectors import entry_greeks_dict, position_greek_values_get
from trading.models import Account

# A JSON object of decimals as strings, or null (a SerializerMethodField's schema says so explicitly).
NULLABLE_OBJECT = {"type": "object", "nullable": True, "additionalProperties": True}


class PositionGreeksSerializer(serializers.ModelSerializer):
    """An option position's current Greeks (per share of one contract), the position's own figures
    (x multiplier x signed quantity) and the set at entry."""

    position = serializers.SerializerMethodField(
        help_text="delta_shares, dollar_delta, gamma, theta (money per day), vega (money per volatility point)"
    )
    entry = serializers.SerializerMethodField(help_text="The Greeks at entry; null when none were recorded.")

    class Meta:
        model = PositionGreeks
        fields = [
            "source",
            "delta",
            "gamma",
            "theta",
            "vega",
            "iv",
            "underlying_price",
            "days_to_expiry",
            "reason",
            "inputs",
            "as_of",
            "position",
            "entry",
        ]
        read_only_fields = fields

    @extend_schema_field(NULLABLE_OBJECT)
    def get_position(self, greeks: PositionGreeks) -> dict | None:
        values = position_greek_values_get(greeks=greeks, position=greeks.position)
        if values is None:
            return None
        return {
            "delta_shares": f"{values.delta_shares:f}",
            "dollar_delta": None if values.dollar_delta is None else f"{values.dollar_delta:f}",
            "gamma": f"{values.gamma:f}",
            "theta": f"{values.theta:f}",
            "vega": f"{values.vega:f}",
        }

    @extend_schema_field(NULLABLE_OBJECT)
    def get_entry(self, greeks: PositionGreeks) -> dict | None:
        return entry_greeks_dict(greeks)


class PositionSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id", read_only=True)
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    sec_type = serializers.CharField(source="instrument.sec_type", read_only=True)
    currency = serializers.CharField(source="instrument.currency", read_only=True)
    description = serializers.CharField(source="instrument.display_name", read_only=True)
    multiplier = serializers.DecimalField(source="instrument.multiplier", read_only=True, **decimal_kwargs("quantity"))
    greeks = serializers.SerializerMethodField(help_text="Options: their Greeks (null for other positions).")
    # Set by portfolio.selectors.positions_in_base (the view calls it on each page): null without a rate.
    base_currency = serializers.CharField(read_only=True, help_text="The account's base currency.")
    fx_rate = serializers.DecimalField(
        read_only=True, allow_null=True, help_text="1 currency = fx_rate base (current).", **decimal_kwargs("ratio")
    )
    market_value_base = serializers.DecimalField(read_only=True, allow_null=True, **decimal_kwargs("money"))
    unrealized_pnl_base = serializers.DecimalField(read_only=True, allow_null=True, **decimal_kwargs("money"))
    realized_pnl_base = serializers.DecimalField(
        read_only=True,
        allow_null=True,
        help_text="Closed: at the closing day's rate. Open with partial closes: only in the base currency.",
        **decimal_kwargs("money"),
    )

    class Meta:
        model = Position
        fields = [
            "id",
            "account",
            "symbol",
            "sec_type",
            "currency",
            "description",
            "multiplier",
            "quantity",
            "average_price",
            "current_price",
            "market_value",
            "unrealized_pnl",
            "unrealized_pnl_pct",
            "realized_pnl",
            "realized_pnl_estimated",
            "status",
            "opened_at",
            "closed_at",
            "last_synced_at",
            "missing_since",
            "base_currency",
            "fx_rate",
            "market_value_base",
            "unrealized_pnl_base",
            "realized_pnl_base",
            "greeks",
        ]
        read_only_fields = fields

    @extend_schema_field(PositionGreeksSerializer(allow_null=True))
    def get_greeks(self, position: Position) -> dict | None:
        greeks = getattr(position, "greeks", None)  # joined by the selector; absent for non-options
        return None if greeks is None else PositionGreeksSerializer(greeks).data


class PositionEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = PositionEvent
        fields = [
            "kind",
            "quantity_before",
            "quantity_after",
            "average_price_before",
            "average_price_after",
            "price",
            "realized_pnl",
            "realized_pnl_estimated",
            "split_ratio",
            "at",
            "note",
            "sync_run",
            "execution",
            "cause",
            "resolved_at",
        ]
        read_only_fields = fields


class SyncRunSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id", read_only=True, allow_null=True)

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "kind",
            "account",
            "reason",
            "status",
            "skip_reason",
            "fail_reason",
            "started_at",
            "finished_at",
            "duration_ms",
            "created",
            "updated",
            "closed",
            "unchanged",
            "warnings",
            "message",
        ]
        read_only_fields = fields


class SyncRequestSerializer(serializers.Serializer):
    account = serializers.SlugRelatedField(
        slug_field="account_id",
        queryset=Account.objects.none(),
        required=False,
        help_text="Broker account id; omit to sync every account you can see.",
        error_messages={"does_not_exist": "Unknown account {value!r}, or not one of yours."},
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = Account.objects.visible_to(user).filter(is_active=True)


class SyncRequestResultSerializer(serializers.Serializer):
    runs = SyncRunSerializer(many=True)
    detail = serializers.CharField(required=False, help_text="Why the sync could not be queued (503 only).")


class AccountSyncStatusSerializer(serializers.Serializer):
    account = serializers.CharField(source="account.account_id")
    latest_run = SyncRunSerializer(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    in_progress = serializers.BooleanField()
    stale = serializers.BooleanField()


class SyncStatusSerializer(serializers.Serializer):
    results = AccountSyncStatusSerializer(many=True)


class CashFieldsMixin(serializers.Serializer):
    """Cash per currency (each amount in its own currency, as a decimal string), the base-currency total
    (null when a currency has no rate) and the currencies without a rate (``fx_missing``); all three
    null on rows written before cash was kept per currency."""

    cash_balances = serializers.DictField(
        child=serializers.CharField(), allow_null=True, read_only=True, help_text='{"EUR": "4310.34"}'
    )
    cash_total_base = serializers.DecimalField(allow_null=True, read_only=True, **decimal_kwargs("money"))
    fx_missing = serializers.ListField(
        child=serializers.CharField(), source="cash_fx_missing", allow_null=True, read_only=True
    )


class AccountStatusSerializer(CashFieldsMixin, serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id", read_only=True)

    class Meta:
        model = AccountStatus
        fields = [
            "account",
            *ACCOUNT_VALUE_FIELDS,
            "day_trades_remaining",
            "cash_balances",
            "cash_total_base",
            "fx_missing",
            "read_at",
        ]
        read_only_fields = fields


class SnapshotSerializer(CashFieldsMixin, serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id", read_only=True)

    class Meta:
        model = AccountSnapshot
        fields = [
            "account",
            "taken_at",
            "trade_date",
            "kind",
            "source",
            *ACCOUNT_VALUE_FIELDS,
            "positions_value",
            "positions_count",
            "cash_balances",
            "cash_total_base",
            "fx_missing",
            "note",
        ]
        read_only_fields = fields


class MetricsSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id", read_only=True)
    profit_factor_note = serializers.SerializerMethodField()

    class Meta:
        model = PerformanceMetrics
        fields = [
            "account",
            "as_of",
            "window",
            "round_trips",
            "win_rate",
            "profit_factor",
            "profit_factor_note",
            "expectancy",
            "gross_profit",
            "gross_loss",
            "current_consecutive_losses",
            "max_consecutive_losses",
            "round_trips_fx_missing",
            "twr",
            "twr_index",
            "daily_return",
            "drawdown",
            "mwr",
            "max_drawdown",
            "sharpe",
            "sortino",
            "daily_pnl",
            "computed_at",
        ]
        read_only_fields = fields

    def get_profit_factor_note(self, obj: PerformanceMetrics) -> str | None:
        if obj.profit_factor is not None:
            return None
        if obj.round_trips == 0:
            return "undefined: no closed round trips"
        return "undefined: no losing round trips"


class PortfolioSummarySerializer(serializers.Serializer):
    """Every amount in the account's base currency (``currency``); see ``PortfolioSummary``."""

    account = serializers.CharField(source="account.account_id")
    currency = serializers.CharField(help_text="The account's base currency: every amount here is in it.")
    portfolio_value = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    cash_balance = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    positions_count = serializers.IntegerField()
    daily_pnl = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    market_value = serializers.DecimalField(
        allow_null=True,
        help_text="Open positions at the current rates; null when a rate is missing.",
        **decimal_kwargs("money"),
    )
    unrealized_pnl = serializers.DecimalField(
        allow_null=True,
        help_text="The broker's base figure when it gave one, else the database's.",
        **decimal_kwargs("money"),
    )
    unrealized_pnl_source = serializers.CharField(
        help_text="broker: the broker's base-currency figure; database: the positions' own total converted."
    )
    unrealized_pnl_database = serializers.DecimalField(
        allow_null=True, help_text="The positions' own P&L converted at the current rates.", **decimal_kwargs("money")
    )
    unrealized_pnl_differs = serializers.BooleanField(
        help_text="The broker's and the database's figures differ by more than a cent per position."
    )
    realized_pnl = serializers.DecimalField(
        allow_null=True, help_text="Every fill's realized P&L at the rate of its trade date.", **decimal_kwargs("money")
    )
    win_rate = serializers.DecimalField(allow_null=True, **decimal_kwargs("ratio"))
    total_trades = serializers.IntegerField()
    last_synced_at = serializers.DateTimeField(allow_null=True)
    stale = serializers.BooleanField()
    source = serializers.ChoiceField(choices=["broker", "database"])
    fx_missing = serializers.ListField(
        child=serializers.CharField(), help_text="Currencies without a known rate: the figures they are in are null."
    )


class MetricsPointSerializer(serializers.ModelSerializer):
    class Meta:
        model = PerformanceMetrics
        fields = ["as_of", "twr_index", "twr", "daily_return", "drawdown", "max_drawdown", "daily_pnl"]
        read_only_fields = fields


class MetricsHistorySerializer(serializers.Serializer):
    account = serializers.CharField()
    window = serializers.CharField()
    points = MetricsPointSerializer(many=True)
