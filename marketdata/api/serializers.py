from datetime import UTC, date, datetime, time

from rest_framework import serializers

from core.fields import decimal_kwargs
from marketdata.models import Bar, BarSize, FxRate


class QuoteSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    bid = serializers.DecimalField(**decimal_kwargs("price"), allow_null=True)
    ask = serializers.DecimalField(**decimal_kwargs("price"), allow_null=True)
    last = serializers.DecimalField(**decimal_kwargs("price"), allow_null=True)
    time = serializers.DateTimeField(allow_null=True, help_text="The broker's quote time, else when it was fetched")
    age_seconds = serializers.FloatField(allow_null=True)
    source = serializers.ChoiceField(choices=["cache", "database"], help_text="Where this answer came from")
    stale = serializers.BooleanField(help_text="Older than QUOTE_STALE_AFTER while the market is open")
    delayed = serializers.BooleanField(help_text="The broker gave delayed data (no live subscription)")


class BarSerializer(serializers.ModelSerializer):
    class Meta:
        model = Bar
        fields = ["start", "open", "high", "low", "close", "volume", "wap", "trade_count"]


class BarsQuerySerializer(serializers.Serializer):
    bar_size = serializers.ChoiceField(choices=BarSize.values, default=BarSize.ONE_DAY)
    since = serializers.CharField(required=False, help_text="YYYY-MM-DD or an ISO 8601 time (inclusive)")
    until = serializers.CharField(required=False, help_text="YYYY-MM-DD or an ISO 8601 time (exclusive)")

    @staticmethod
    def _moment(value: str, name: str) -> datetime:
        try:
            if len(value) == 10:
                return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise serializers.ValidationError(f"{name}: not a date (YYYY-MM-DD) or ISO 8601 time: {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise serializers.ValidationError(f"{name}: {value!r} is out of range") from None

    def validate_since(self, value: str) -> datetime:
        return self._moment(value, "since")

    def validate_until(self, value: str) -> datetime:
        return self._moment(value, "until")


class FxRateSerializer(serializers.ModelSerializer):
    class Meta:
        model = FxRate
        fields = ["currency", "base", "day", "rate", "source", "fetched_at"]
        extra_kwargs = {"rate": {"help_text": "One unit of currency in base on that day (a decimal string)"}}


class FxRatesQuerySerializer(serializers.Serializer):
    base = serializers.RegexField(
        r"^[A-Za-z]{3}$", required=False, help_text="Only rates to this currency (3 letters)", max_length=3
    )
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$", required=False, help_text="Only rates of this currency (3 letters)", max_length=3
    )
    since = serializers.DateField(required=False, help_text="YYYY-MM-DD, inclusive")
    until = serializers.DateField(required=False, help_text="YYYY-MM-DD, inclusive")

    def validate_base(self, value: str) -> str:
        return value.upper()

    def validate_currency(self, value: str) -> str:
        return value.upper()
