"""Reads of posts, aggregates, options flow and confluence, for the API, the pages and the apps above."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Exists, F, Max, OuterRef, QuerySet, Value
from django.utils import timezone

from core.brokers.base import OptionVolumeKey
from core.brokers.contracts import SecType
from marketdata.models import Bar, BarSize, Instrument, WatchedInstrument
from sentiment.hooks import held_symbols
from sentiment.models import (
    AggregatedSentiment,
    ConfluenceScore,
    Mention,
    OptionsFlow,
    OptionsPattern,
    RedditPost,
    SymbolSentiment,
    Tweet,
)

POST_FIELDS = (
    "platform", "id", "source", "post_id", "author", "title", "text", "created_at", "symbols",
    "compound", "label", "weight", "lexicon_version", "engagement",
)  # fmt: skip


def tracked_symbols() -> list[str]:
    """What the sources ask about: the watched stocks and every held symbol, each once, sorted."""
    watched = WatchedInstrument.objects.filter(enabled=True, instrument__sec_type=SecType.STOCK).values_list(
        "instrument__symbol", flat=True
    )
    return sorted(set(watched) | set(held_symbols(None)))


def options_known_volumes(*, source: str, underlyings: list[str], since: date) -> dict[OptionVolumeKey, Decimal]:
    """The day volume each option contract had reached in each session from ``since`` on, as far as
    ``source``'s stored prints say (the largest a print reports): what a broker that derives prints
    from day volume (IBKR) has already reported. One query."""
    rows = (
        OptionsFlow.objects.filter(source=source, underlying__in=underlyings, session__gte=since, volume__isnull=False)
        .values_list("underlying", "expiry", "strike", "right", "session")
        .annotate(reached=Max("volume"))
        .order_by()
    )
    return {(u, e, k, r, s): reached for u, e, k, r, s, reached in rows}


def _post_values(model, *, symbol: str | None, label: str | None, since: datetime | None) -> QuerySet:
    posts = model.objects.all()
    if symbol:
        link = "tweet" if model is Tweet else "reddit_post"
        posts = posts.filter(Exists(Mention.objects.filter(**{link: OuterRef("pk")}, symbol=symbol)))
    if since:
        posts = posts.filter(created_at__gte=since)
    if label:
        posts = posts.filter(sentiment__label=label)
    if model is Tweet:
        shaped = posts.annotate(
            platform=Value("x"), title=Value(""), engagement=F("likes") + F("retweets") + F("replies")
        )
    else:
        shaped = posts.annotate(platform=Value("reddit"), text=F("body"), engagement=F("score") + F("num_comments"))
    return (
        shaped.annotate(
            compound=F("sentiment__compound"),
            label=F("sentiment__label"),
            weight=F("sentiment__weight"),
            lexicon_version=F("sentiment__lexicon_version"),
        )
        .values(*POST_FIELDS)
        .order_by()
    )


def post_list(
    *, symbol: str | None = None, platform: str | None = None, since: datetime | None = None, label: str | None = None
) -> QuerySet:
    """Tweets and Reddit posts with their scores, newest first, as one queryset of dicts."""
    parts = []
    if platform in (None, "", "x"):
        parts.append(_post_values(Tweet, symbol=symbol, label=label, since=since))
    if platform in (None, "", "reddit"):
        parts.append(_post_values(RedditPost, symbol=symbol, label=label, since=since))
    posts = parts[0] if len(parts) == 1 else parts[0].union(parts[1], all=True)
    return posts.order_by("-created_at", "-id")


def symbol_sentiment_get(*, symbol: str, window: str, at: datetime | None = None) -> AggregatedSentiment | None:
    """The latest window row of ``symbol`` at or before the end of the current hour."""
    end = (at or timezone.now()).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return AggregatedSentiment.objects.filter(symbol=symbol, window=window, as_of__lte=end).order_by("-as_of").first()


def confluence_list(*, symbol: str, since: datetime | None = None) -> QuerySet:
    scores = ConfluenceScore.objects.filter(symbol=symbol)
    if since:
        scores = scores.filter(hour__gte=since)
    return scores.order_by("-hour")


def confluence_latest_by_symbol(
    *, symbols: list[str], within: timedelta = timedelta(days=2)
) -> dict[str, ConfluenceScore]:
    """The latest score of each symbol from the last ``within``, in one query (for the overview)."""
    latest: dict[str, ConfluenceScore] = {}
    if not symbols:
        return latest
    since = timezone.now() - within
    for score in ConfluenceScore.objects.filter(symbol__in=set(symbols), hour__gte=since).order_by("symbol", "-hour"):
        latest.setdefault(score.symbol, score)
    return latest


def options_flow_list(
    *, symbol: str | None = None, since: datetime | None = None, unusual: bool | None = None
) -> QuerySet:
    prints = OptionsFlow.objects.all()
    if symbol:
        prints = prints.filter(underlying=symbol)
    if since:
        prints = prints.filter(time__gte=since)
    if unusual is not None:
        prints = prints.filter(unusual=unusual)
    return prints.order_by("-time", "-id")


def options_pattern_list(*, symbol: str | None = None, since: datetime | None = None) -> QuerySet:
    patterns = OptionsPattern.objects.all()
    if symbol:
        patterns = patterns.filter(underlying=symbol)
    if since:
        patterns = patterns.filter(started_at__gte=since)
    return patterns.prefetch_related("prints").order_by("-started_at", "-id")


# --- the Sentiment page -------------------------------------------------------------------------
@dataclass
class SentimentPage:
    symbols: list[str]  # held first, then the others with data, each once
    held: list[str]
    symbol: str | None
    hourly: list[dict]  # per hour: mentions and weighted compound across platforms
    prices: list[tuple[datetime, object]]  # stored daily closes
    windows: dict[str, AggregatedSentiment | None]
    movers: list[dict]  # the posts that moved it: the heaviest scored posts of the last 7 days
    flow: list[OptionsFlow]
    patterns: list[OptionsPattern]
    confluence: ConfluenceScore | None
    confluence_history: list[ConfluenceScore]


def sentiment_page_get(*, held: list[str], symbol: str | None, days: int = 7, shown: int = 20) -> SentimentPage:
    """Everything the Sentiment page shows for one symbol, in a number of queries that does not grow
    with posts, prints or hours."""
    now = timezone.now()
    since = now - timedelta(days=days)
    with_data = list(
        AggregatedSentiment.objects.filter(as_of__gte=since)
        .values_list("symbol", flat=True)
        .distinct()
        .order_by("symbol")[:200]
    )
    symbols = list(dict.fromkeys([*held, *with_data]))
    symbol = symbol if symbol else (symbols[0] if symbols else None)
    page = SentimentPage(symbols, held, symbol, [], [], {}, [], [], [], None, [])
    if symbol is None:
        return page
    hours: dict[datetime, dict] = {}
    for row in SymbolSentiment.objects.filter(symbol=symbol, hour__gte=since).order_by("hour"):
        cell = hours.setdefault(row.hour, {"hour": row.hour, "mentions": 0, "weighted_sum": 0, "weight_sum": 0})
        cell["mentions"] += row.mentions
        cell["weighted_sum"] += row.weighted_sum
        cell["weight_sum"] += row.weight_sum
    for cell in hours.values():
        cell["weighted_compound"] = cell["weighted_sum"] / cell["weight_sum"] if cell["weight_sum"] else None
    page.hourly = list(hours.values())
    stock = Instrument.objects.filter(symbol=symbol, sec_type=SecType.STOCK).order_by("pk")[:1]
    page.prices = list(
        Bar.objects.filter(instrument__in=stock, bar_size=BarSize.ONE_DAY, start__gte=since - timedelta(days=days))
        .order_by("start")
        .values_list("start", "close")
    )
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    latest = {}
    for row in AggregatedSentiment.objects.filter(
        symbol=symbol, as_of__lte=end, as_of__gte=end - timedelta(days=2)
    ).order_by("-as_of"):
        latest.setdefault(row.window, row)
    page.windows = {w: latest.get(w) for w in ("1h", "24h", "7d")}
    page.movers = sorted(
        post_list(symbol=symbol, since=since)[:200], key=lambda p: -abs((p["compound"] or 0) * (p["weight"] or 0))
    )[:shown]
    page.flow = list(options_flow_list(symbol=symbol, since=since)[:shown])
    page.patterns = list(options_pattern_list(symbol=symbol, since=since)[:shown])
    page.confluence_history = list(confluence_list(symbol=symbol, since=since)[: shown * 10])
    page.confluence = page.confluence_history[0] if page.confluence_history else None
    return page
