from rest_framework import serializers

from portfolio.models import Position, PositionEvent
from trading.models import Account, SyncRun


class PositionSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id", read_only=True)
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    sec_type = serializers.CharField(source="instrument.sec_type", read_only=True)
    description = serializers.CharField(source="instrument.display_name", read_only=True)
    multiplier = serializers.DecimalField(
        source="instrument.multiplier", max_digits=24, decimal_places=8, read_only=True
    )

    class Meta:
        model = Position
        fields = [
            "id",
            "account",
            "symbol",
            "sec_type",
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
        ]
        read_only_fields = fields


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


class AccountSyncStatusSerializer(serializers.Serializer):
    account = serializers.CharField(source="account.account_id")
    latest_run = SyncRunSerializer(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    in_progress = serializers.BooleanField()
    stale = serializers.BooleanField()
