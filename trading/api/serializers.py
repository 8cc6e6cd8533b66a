from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import decimal_kwargs
from core.inputs import DateField
from trading.models import (
    Account,
    CashViolation,
    DayTrade,
    Execution,
    Order,
    OrderEvent,
    OrderType,
    PaperTrade,
    RoundTrip,
    SettlementTracking,
    Side,
    Signal,
    SignalStatus,
    Timeframe,
    TimeInForce,
)
from trading.rules.orders import STOCK_SYMBOL

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
    # Set by trading.fx (the view converts each page): null when no rate of that day is known.
    base_currency = serializers.CharField(read_only=True, help_text="The account's base currency.")
    fx_rate = serializers.DecimalField(
        read_only=True,
        allow_null=True,
        help_text="1 currency = fx_rate base, on the trade date.",
        **decimal_kwargs("ratio"),
    )
    price_base = serializers.DecimalField(read_only=True, allow_null=True, **decimal_kwargs("price"))
    commission_base = serializers.DecimalField(read_only=True, allow_null=True, **decimal_kwargs("money"))
    realized_pnl_base = serializers.DecimalField(read_only=True, allow_null=True, **decimal_kwargs("money"))

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
            "base_currency",
            "fx_rate",
            "price_base",
            "commission_base",
            "realized_pnl_base",
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
    currency = serializers.CharField(source="instrument.currency", help_text="Of prices, P&L and commissions.")
    # Set by trading.fx (the view converts each page): null when no rate of that day is known.
    base_currency = serializers.CharField(read_only=True, help_text="The account's base currency.")
    fx_rate = serializers.DecimalField(
        read_only=True,
        allow_null=True,
        help_text="1 currency = fx_rate base, on the closing fill's trade date.",
        **decimal_kwargs("ratio"),
    )
    realized_pnl_base = serializers.DecimalField(read_only=True, allow_null=True, **decimal_kwargs("money"))
    commissions_base = serializers.DecimalField(read_only=True, allow_null=True, **decimal_kwargs("money"))
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
            "currency",
            "realized_pnl",
            "commissions",
            "base_currency",
            "fx_rate",
            "realized_pnl_base",
            "commissions_base",
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


# --- orders ------------------------------------------------------------------------------------
class ExecuteOrderSerializer(serializers.Serializer):
    """The body of ``POST /api/trading/execute``: shape only. Risk is judged by the service (422)."""

    account = serializers.CharField(max_length=32, help_text="Broker (or paper) account id")
    client_order_id = serializers.CharField(
        max_length=64, help_text="Your id: sending it again returns the first order"
    )
    symbol = serializers.CharField(max_length=12)
    sec_type = serializers.ChoiceField(choices=[("STK", "Stock"), ("OPT", "Option")], default="STK")
    expiry = DateField(required=False, allow_null=True)
    strike = serializers.DecimalField(required=False, allow_null=True, **decimal_kwargs("price"))
    right = serializers.ChoiceField(choices=[("C", "Call"), ("P", "Put")], required=False, allow_blank=True)
    side = serializers.ChoiceField(choices=Side.choices)
    quantity = serializers.DecimalField(**decimal_kwargs("quantity"))
    order_type = serializers.ChoiceField(choices=OrderType.choices, default=OrderType.MARKET)
    limit_price = serializers.DecimalField(required=False, allow_null=True, **decimal_kwargs("price"))
    stop_price = serializers.DecimalField(required=False, allow_null=True, **decimal_kwargs("price"))
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices, default=TimeInForce.DAY)
    outside_rth = serializers.BooleanField(default=False)
    decision_price = serializers.DecimalField(required=False, allow_null=True, **decimal_kwargs("price"))
    strategy = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    entry_type = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    stop_loss = serializers.DecimalField(required=False, allow_null=True, **decimal_kwargs("price"))
    target = serializers.DecimalField(required=False, allow_null=True, **decimal_kwargs("price"))
    reasoning = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    indicators = serializers.DictField(required=False, default=dict)
    risk_reward = serializers.DecimalField(required=False, allow_null=True, **decimal_kwargs("ratio"))

    def validate_symbol(self, value: str) -> str:
        value = value.strip().upper()
        if not STOCK_SYMBOL.match(value):
            raise serializers.ValidationError("1-5 letters or digits with an optional class, e.g. AAPL or BRK.B")
        return value

    def validate_quantity(self, value):
        if value <= 0:
            raise serializers.ValidationError("must be more than 0")
        return value

    def validate(self, attrs: dict) -> dict:
        errors = {}
        for name in ("limit_price", "stop_price", "decision_price", "strike"):
            if attrs.get(name) is not None and attrs[name] <= 0:
                errors[name] = "must be more than 0"
        order_type = attrs.get("order_type", OrderType.MARKET)
        if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and attrs.get("limit_price") is None:
            errors["limit_price"] = f"required for a {order_type} order"
        if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and attrs.get("stop_price") is None:
            errors["stop_price"] = f"required for a {order_type} order"
        if order_type == OrderType.MARKET and attrs.get("limit_price") is not None:
            errors["limit_price"] = "a MKT order has no limit price"
        if attrs.get("sec_type") == "OPT":
            for name in ("expiry", "strike", "right"):
                if not attrs.get(name):
                    errors[name] = "required for an option"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class OrderCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    passed = serializers.BooleanField()
    message = serializers.CharField()


class OrderEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderEvent
        fields = ["at", "from_status", "to_status", "source", "message", "data"]
        read_only_fields = fields


class OrderFillSerializer(serializers.ModelSerializer):
    class Meta:
        model = Execution
        fields = [
            "id",
            "exec_id",
            "side",
            "quantity",
            "price",
            "commission",
            "executed_at",
            "trade_date",
            "realized_pnl",
        ]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id")
    symbol = serializers.CharField(source="instrument.symbol")
    sec_type = serializers.CharField(source="instrument.sec_type")
    description = serializers.CharField(source="instrument.display_name")
    checks = OrderCheckSerializer(many=True)
    reject_reasons = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Order
        fields = [
            "id",
            "client_order_id",
            "account",
            "mode",
            "symbol",
            "sec_type",
            "description",
            "side",
            "quantity",
            "order_type",
            "limit_price",
            "stop_price",
            "time_in_force",
            "outside_rth",
            "status",
            "session_date",
            "reference_price",
            "checks",
            "reject_reasons",
            "filled_quantity",
            "average_fill_price",
            "commission",
            "decision_price",
            "slippage",
            "broker_order_id",
            "perm_id",
            "broker_code",
            "broker_message",
            "strategy",
            "entry_type",
            "stop_loss",
            "target",
            "reasoning",
            "indicators",
            "risk_reward",
            "created_at",
            "sent_at",
            "done_at",
        ]
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    events = OrderEventSerializer(many=True)
    fills = OrderFillSerializer(many=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "events", "fills"]
        read_only_fields = fields


class RiskStateSerializer(serializers.Serializer):
    account = serializers.CharField()
    mode = serializers.CharField()
    net_liquidation = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    previous_close = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    daily_change = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    trading_paused = serializers.BooleanField()
    paused_since = serializers.DateTimeField(allow_null=True)
    paused_reason = serializers.CharField(allow_blank=True)
    banner = serializers.CharField(allow_blank=True, help_text='"Opening orders paused since ..., reason"')
    legacy_pdt = serializers.BooleanField()
    day_trades_remaining = serializers.IntegerField(allow_null=True, help_text="-1 means unlimited")
    cash_available = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    settled_cash = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    live_trading = serializers.CharField(help_text="Why live orders are refused; empty when they may be sent")


# --- signals and paper trades ------------------------------------------------------------------
class CreateSignalSerializer(serializers.Serializer):
    """The body of ``POST /api/trading/signals``: shape only; the stop and target sides are checked too."""

    account = serializers.CharField(max_length=32, help_text="Broker (or paper) account id")
    signal_id = serializers.CharField(max_length=64, help_text="Your id: sending it again returns the first signal")
    symbol = serializers.CharField(max_length=12)
    action = serializers.ChoiceField(choices=Side.choices)
    entry_price = serializers.DecimalField(**decimal_kwargs("price"))
    stop_loss = serializers.DecimalField(**decimal_kwargs("price"))
    take_profit = serializers.DecimalField(**decimal_kwargs("price"))
    risk_amount = serializers.DecimalField(**decimal_kwargs("money"))
    confidence = serializers.DecimalField(max_digits=5, decimal_places=4, min_value=0, max_value=1, default=0)
    timeframe = serializers.ChoiceField(choices=Timeframe.choices, default=Timeframe.INTRADAY)
    quantity = serializers.DecimalField(required=False, allow_null=True, **decimal_kwargs("quantity"))
    strategy = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    entry_type = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    reasoning = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    indicators = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    confluence_score = serializers.DecimalField(
        max_digits=7, decimal_places=2, min_value=-100, max_value=100, required=False, allow_null=True
    )
    confluence_components = serializers.DictField(required=False, default=dict)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_symbol(self, value: str) -> str:
        value = value.strip().upper()
        if not STOCK_SYMBOL.match(value):
            raise serializers.ValidationError("1-5 letters or digits with an optional class, e.g. AAPL or BRK.B")
        return value

    def validate(self, attrs: dict) -> dict:
        errors = {}
        for name in ("entry_price", "stop_loss", "take_profit", "risk_amount", "quantity"):
            if attrs.get(name) is not None and attrs[name] <= 0:
                errors[name] = "must be more than 0"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ExecuteSignalSerializer(serializers.Serializer):
    quantity = serializers.DecimalField(required=False, allow_null=True, **decimal_kwargs("quantity"))

    def validate_quantity(self, value):
        if value is not None and value <= 0:
            raise serializers.ValidationError("must be more than 0")
        return value


class SignalQuerySerializer(AccountDateQuerySerializer):
    status = serializers.ChoiceField(choices=SignalStatus.choices, required=False)


class PaperTradeQuerySerializer(AccountQuerySerializer):
    status = serializers.ChoiceField(choices=[("open", "Open"), ("closed", "Closed")], required=False)


class PaperTradeSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id")
    symbol = serializers.CharField(source="instrument.symbol")
    signal_id = serializers.CharField(source="signal.signal_id")
    reasoning = serializers.CharField(source="signal.reasoning")
    strategy = serializers.CharField(source="signal.strategy")
    # Plain text: the status's choices plus "" (not closing yet); one enum in the schema, not two.
    exit_reason = serializers.CharField(help_text="Why it closes or closed (a status), empty while not closing.")

    class Meta:
        model = PaperTrade
        fields = [
            "id",
            "signal_id",
            "account",
            "symbol",
            "side",
            "quantity",
            "entry_price",
            "stop_loss",
            "take_profit",
            "risk_amount",
            "timeframe",
            "status",
            "opened_at",
            "entry_order",
            "entry_commission",
            "current_price",
            "price_at",
            "unrealized_pnl",
            "exit_reason",
            "exit_order",
            "exit_price",
            "exited_at",
            "exit_note",
            "realized_pnl",
            "strategy",
            "reasoning",
        ]


class SignalSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id")
    symbol = serializers.CharField(source="instrument.symbol")
    paper_trade = serializers.SerializerMethodField()

    class Meta:
        model = Signal
        fields = [
            "id",
            "signal_id",
            "account",
            "symbol",
            "action",
            "entry_price",
            "stop_loss",
            "take_profit",
            "confidence",
            "timeframe",
            "risk_amount",
            "quantity",
            "strategy",
            "entry_type",
            "reasoning",
            "indicators",
            "confluence_score",
            "confluence_components",
            "status",
            "status_reasons",
            "order",
            "paper_trade",
            "created_at",
            "expires_at",
            "executed_at",
        ]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_paper_trade(self, signal) -> int | None:
        trade = getattr(signal, "paper_trade", None) if hasattr(signal, "paper_trade") else None
        return trade.pk if trade is not None else None


class DailyPnlSerializer(serializers.Serializer):
    date = serializers.DateField()
    account = serializers.CharField(allow_blank=True)
    currency = serializers.CharField(
        allow_blank=True, help_text="The accounts' base currency; empty when they differ (no totals then)."
    )
    realized_pnl = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    unrealized_pnl = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    total_pnl = serializers.DecimalField(allow_null=True, **decimal_kwargs("money"))
    closed_trades = serializers.IntegerField()
    open_trades = serializers.IntegerField()
    fx_missing = serializers.ListField(child=serializers.CharField(), help_text="Currencies without a known rate.")


class TradeRecordQuerySerializer(AccountQuerySerializer):
    since = serializers.DateTimeField(required=False, help_text="Closed at or after (ISO 8601)")
    until = serializers.DateTimeField(required=False, help_text="Closed before (ISO 8601)")
    outcome = serializers.ChoiceField(
        choices=[("win", "win"), ("loss", "loss"), ("breakeven", "breakeven"), ("open", "open")], required=False
    )
    limit = serializers.IntegerField(min_value=1, max_value=10000, default=1000)


class TradeRecordSerializer(serializers.Serializer):
    """The schema of one trade record (the record itself is built by ``trading.rules.trade_records``)."""

    timestamp = serializers.CharField()
    symbol = serializers.CharField()
    action = serializers.CharField()
    quantity = serializers.CharField()
    price = serializers.CharField()
    total_value = serializers.CharField()
    order_id = serializers.CharField(allow_null=True)
    execution_mode = serializers.CharField()
    account_id = serializers.CharField()
    strategy_name = serializers.CharField(allow_null=True)
    entry_type = serializers.CharField(allow_null=True)
    stop_loss = serializers.CharField(allow_null=True)
    target = serializers.CharField(allow_null=True)
    decision_reasoning = serializers.CharField(allow_null=True)
    indicators_used = serializers.ListField(child=serializers.CharField())
    risk_reward_ratio = serializers.CharField(allow_null=True)
    outcome = serializers.CharField()
    profit_loss = serializers.CharField(allow_null=True)
    hold_duration_seconds = serializers.IntegerField(allow_null=True)
    exit_timestamp = serializers.CharField(allow_null=True)
    exit_reasoning = serializers.CharField(allow_null=True)
    slippage = serializers.CharField(allow_null=True)
    commission = serializers.CharField()
    net_profit_loss = serializers.CharField(allow_null=True)
    session_id = serializers.CharField(allow_null=True)
    bot_version = serializers.CharField(allow_null=True)
    config_hash = serializers.CharField(allow_null=True)
    # trading.fx.trade_record_in_base: the account's base currency at each day's rate (null without one).
    currency = serializers.CharField(help_text="The instrument's currency: of price, values, P&L, commissions.")
    base_currency = serializers.CharField()
    total_value_base = serializers.CharField(allow_null=True, help_text="At the opening day's rate.")
    profit_loss_base = serializers.CharField(allow_null=True, help_text="At the closing day's rate.")
    commission_base = serializers.CharField(allow_null=True, help_text="At the closing day's rate.")
    net_profit_loss_base = serializers.CharField(allow_null=True, help_text="At the closing day's rate.")


# --- the order's answer, without building serializers per request ------------------------------
class _Compiled:
    """A serializer's fields, bound once, applied to an object or dict without DRF's per-request work.

    ``OrderDetailSerializer(order).data`` builds every field anew for each answer (a ModelSerializer
    maps its model's fields each time) and wraps each value in generic lookups; the order endpoints
    answer with that shape on every request. The field instances are kept, so each value is formatted
    by the very ``to_representation`` the serializer uses: the same JSON, and the schema still comes
    from the serializer.
    """

    def __init__(self, serializer: serializers.Serializer) -> None:
        self.fields = []
        for name, field in serializer.fields.items():
            nested = None
            if isinstance(field, serializers.ListSerializer) and isinstance(field.child, serializers.Serializer):
                nested = _Compiled(field.child)
            self.fields.append((name, tuple(field.source_attrs), field, nested))

    def __call__(self, obj, **given) -> dict:
        out = {}
        for name, source, field, nested in self.fields:
            value = given[name] if name in given else _attribute(obj, source)
            if nested is not None:
                out[name] = [nested(item) for item in value]
            else:
                out[name] = None if value is None else field.to_representation(value)
        return out


def _attribute(obj, source: tuple[str, ...]):
    for attr in source:
        if obj is None:
            return None
        obj = obj[attr] if isinstance(obj, dict) else getattr(obj, attr)
    return obj


_order_compiled: _Compiled | None = None


def order_body(order: Order, *, events: list[OrderEvent] | None = None, fills=None) -> dict:
    """What ``OrderDetailSerializer(order).data`` gives, built from the order and, when the caller has
    them, its events and fills (in their order: ``at``, id; ``executed_at``, id); else they are read."""
    global _order_compiled
    if _order_compiled is None:
        _order_compiled = _Compiled(OrderDetailSerializer())
    if events is None:
        events = list(order.events.all())
    if fills is None:
        from trading.selectors import order_fills

        fills = list(order_fills(order=order))
    return _order_compiled(order, events=events, fills=fills)
