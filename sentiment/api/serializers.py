from datetime import UTC, datetime, time

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import decimal_kwargs
from core.inputs import EARLIEST_DATE, LATEST_DATE
from sentiment.models import AggregatedSentiment, ConfluenceScore, Label, OptionsFlow, OptionsPattern, Platform, Window

SYMBOL = r"^[A-Za-z]{1,6}(\.[A-Za-z]{1,2})?$"


@extend_schema_field(OpenApiTypes.DATETIME)
class SinceField(serializers.Field):
    """An ISO 8601 date (its start in UTC) or time with a zone, within the dates a client may send."""

    default_error_messages = {"invalid": "Enter an ISO 8601 date or a time with a zone, e.g. 2026-11-20T14:00:00Z."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            value = datetime.fromisoformat(data)
        except ValueError:
            self.fail("invalid")
        if len(data) <= 10:
            value = datetime.combine(value.date(), time(), tzinfo=UTC)
        elif value.tzinfo is None:
            self.fail("invalid")
        if not EARLIEST_DATE <= value.date() <= LATEST_DATE:
            raise serializers.ValidationError(f"Enter a date from {EARLIEST_DATE} to {LATEST_DATE}.")
        return value.astimezone(UTC)

    def to_representation(self, value):
        return value.isoformat()


class SymbolField(serializers.RegexField):
    def __init__(self, **kwargs):
        super().__init__(SYMBOL, max_length=9, **kwargs)
        self.error_messages["invalid"] = "Enter a symbol such as AAPL or BRK.B."

    def to_internal_value(self, data):
        return super().to_internal_value(data).upper()


class PostQuerySerializer(serializers.Serializer):
    symbol = SymbolField(required=False)
    source = serializers.ChoiceField(choices=Platform.choices, required=False, help_text="x or reddit")
    since = SinceField(required=False)
    label = serializers.ChoiceField(choices=Label.choices, required=False)


class WindowQuerySerializer(serializers.Serializer):
    window = serializers.ChoiceField(choices=Window.choices, required=False, default=Window.DAY)


class SinceQuerySerializer(serializers.Serializer):
    since = SinceField(required=False)


class FlowQuerySerializer(serializers.Serializer):
    symbol = SymbolField(required=False)
    since = SinceField(required=False)
    unusual = serializers.BooleanField(required=False, allow_null=True, default=None)


class PatternQuerySerializer(serializers.Serializer):
    symbol = SymbolField(required=False)
    since = SinceField(required=False)


class PostSerializer(serializers.Serializer):
    platform = serializers.CharField()
    source = serializers.CharField()
    post_id = serializers.CharField()
    author = serializers.CharField()
    title = serializers.CharField()
    text = serializers.CharField()
    created_at = serializers.DateTimeField()
    symbols = serializers.ListField(child=serializers.CharField())
    engagement = serializers.IntegerField()
    compound = serializers.DecimalField(**decimal_kwargs("ratio"), allow_null=True)
    label = serializers.CharField(allow_null=True)
    weight = serializers.DecimalField(**decimal_kwargs("ratio"), allow_null=True)
    lexicon_version = serializers.CharField(allow_null=True)


class AggregatedSentimentSerializer(serializers.ModelSerializer):
    class Meta:
        model = AggregatedSentiment
        fields = [
            "symbol", "window", "as_of", "mentions", "bullish", "neutral", "bearish", "mean_compound",
            "weighted_compound", "change", "spike", "per_source", "computed_at",
        ]  # fmt: skip


class ConfluenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConfluenceScore
        fields = [
            "symbol",
            "hour",
            "score",
            "sentiment",
            "options_flow",
            "momentum",
            "missing",
            "weights",
            "computed_at",
        ]


class OptionsFlowSerializer(serializers.ModelSerializer):
    class Meta:
        model = OptionsFlow
        fields = [
            "source", "print_id", "time", "session", "underlying", "expiry", "strike", "right", "size", "price",
            "bid", "ask", "underlying_price", "open_interest", "volume", "exchanges", "kind", "multiplier",
            "premium", "side", "direction", "unusual", "delayed",
        ]  # fmt: skip


class OptionsPatternSerializer(serializers.ModelSerializer):
    prints = serializers.SlugRelatedField(many=True, read_only=True, slug_field="print_id")

    class Meta:
        model = OptionsPattern
        fields = [
            "kind", "underlying", "session", "key", "direction", "started_at", "ended_at", "value", "premium",
            "detail", "prints", "detected_at",
        ]  # fmt: skip
