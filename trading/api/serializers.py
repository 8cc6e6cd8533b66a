from rest_framework import serializers

from trading.models import Account


class LivePositionSerializer(serializers.Serializer):
    account = serializers.CharField(source="account_id")
    symbol = serializers.CharField(source="instrument.symbol")
    sec_type = serializers.CharField(source="instrument.sec_type")
    con_id = serializers.IntegerField(source="instrument.con_id", allow_null=True)
    currency = serializers.CharField(source="instrument.currency")
    multiplier = serializers.DecimalField(source="instrument.multiplier", max_digits=24, decimal_places=8)
    expiry = serializers.DateField(source="instrument.expiry", allow_null=True)
    strike = serializers.DecimalField(source="instrument.strike", max_digits=24, decimal_places=8, allow_null=True)
    right = serializers.CharField(source="instrument.right", allow_blank=True)
    quantity = serializers.DecimalField(max_digits=24, decimal_places=8)
    average_price = serializers.DecimalField(max_digits=24, decimal_places=8)
    market_price = serializers.DecimalField(max_digits=24, decimal_places=8, allow_null=True)


class LivePositionsSerializer(serializers.Serializer):
    results = LivePositionSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class LivePositionsQuerySerializer(serializers.Serializer):
    account = serializers.SlugRelatedField(
        slug_field="account_id",
        queryset=Account.objects.none(),
        required=False,
        error_messages={"does_not_exist": "Unknown account {value!r}, or not one of yours."},
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = Account.objects.visible_to(user)
