"""Confluence per symbol and hour: sentiment, options flow and price momentum, each in [-1, 1], as a
weighted mean of the ones that have data, stored x100 with its components and the missing ones.

The hour scored is ``hour`` (a start of hour); what it reads is what was known at its end:
- sentiment: the 24 h engagement-weighted compound of the window ending at ``hour + 1h``;
- options flow: net bullish premium (bullish minus bearish) over the total premium of the session's
  prints up to then (the exchange date of the hour, or the latest session with prints in the 4 days
  before it, so a weekend hour reads Friday's);
- momentum: tanh of the last close's distance from its 20-day mean in 14-day ATR units, from the
  stored daily bars of the symbol's stock instrument that start before the hour (rules.momentum).
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from core.brokers.contracts import SecType
from marketdata.models import BarSize, Instrument
from marketdata.selectors import bars_between
from sentiment import rules
from sentiment.models import AggregatedSentiment, ConfluenceScore, OptionsFlow, Window
from sentiment.services.aggregation import HOUR, hour_floor
from sentiment.services.options import session_of

COMPONENTS = ("sentiment", "options_flow", "momentum")
SESSION_LOOKBACK_DAYS = 4
_R = Decimal(1).scaleb(-10)


def confluence_weights() -> dict[str, Decimal]:
    return {
        "sentiment": settings.CONFLUENCE_WEIGHT_SENTIMENT,
        "options_flow": settings.CONFLUENCE_WEIGHT_OPTIONS_FLOW,
        "momentum": settings.CONFLUENCE_WEIGHT_MOMENTUM,
    }


def sentiment_component(*, symbol: str, hour: datetime) -> Decimal | None:
    row = (
        AggregatedSentiment.objects.filter(symbol=symbol, window=Window.DAY, as_of=hour + HOUR)
        .values_list("weighted_compound", flat=True)
        .first()
    )
    return row


def options_component(*, symbol: str, hour: datetime) -> Decimal | None:
    end = hour + HOUR
    day = session_of(end - timedelta(microseconds=1))
    prints = OptionsFlow.objects.filter(
        underlying=symbol, time__lt=end, session__lte=day, session__gte=day - timedelta(days=SESSION_LOOKBACK_DAYS)
    )
    session = prints.order_by("-session").values_list("session", flat=True).first()
    if session is None:
        return None
    totals = prints.filter(session=session).values("direction").annotate(premium=Sum("premium"))
    by_direction = {row["direction"]: row["premium"] or Decimal(0) for row in totals}
    total = sum(by_direction.values(), Decimal(0))
    if total <= 0:
        return None
    net = by_direction.get("BULLISH", Decimal(0)) - by_direction.get("BEARISH", Decimal(0))
    return (net / total).quantize(_R)


def momentum_component(*, symbol: str, hour: datetime) -> Decimal | None:
    instrument = Instrument.objects.filter(symbol=symbol, sec_type=SecType.STOCK).order_by("pk").first()
    if instrument is None:
        return None
    bars = list(
        bars_between(instrument_id=instrument.pk, bar_size=BarSize.ONE_DAY, since=hour - timedelta(days=60), until=hour)
    )[-21:]
    return rules.momentum([b.close for b in bars], [b.high for b in bars], [b.low for b in bars])


def confluence_compute(*, symbols: list[str] | None = None, hour: datetime | None = None) -> list[ConfluenceScore]:
    """Score ``symbols`` (default: every symbol with sentiment or options flow in the last day) for
    ``hour`` (default: the current one); upserted by (symbol, hour). A symbol with no component at
    all gets no row."""
    hour = hour_floor(hour or timezone.now())
    if symbols is None:
        recent = set(
            AggregatedSentiment.objects.filter(window=Window.DAY, as_of=hour + HOUR, mentions__gt=0).values_list(
                "symbol", flat=True
            )
        )
        recent |= set(
            OptionsFlow.objects.filter(time__gte=hour - timedelta(days=SESSION_LOOKBACK_DAYS), time__lt=hour + HOUR)
            .values_list("underlying", flat=True)
            .distinct()
        )
        symbols = sorted(recent)
    weights = confluence_weights()
    now = timezone.now()
    rows = []
    for symbol in symbols:
        components = {
            "sentiment": sentiment_component(symbol=symbol, hour=hour),
            "options_flow": options_component(symbol=symbol, hour=hour),
            "momentum": momentum_component(symbol=symbol, hour=hour),
        }
        score, missing = rules.confluence(components, weights)
        if score is None:
            continue
        rows.append(
            ConfluenceScore(
                symbol=symbol,
                hour=hour,
                score=score,
                missing=missing,
                weights={name: str(value) for name, value in weights.items()},
                computed_at=now,
                **components,
            )
        )
    with transaction.atomic():
        ConfluenceScore.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["symbol", "hour"],
            update_fields=["score", "missing", "weights", "computed_at", *COMPONENTS],
        )
    return rows
