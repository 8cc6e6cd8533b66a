"""Reads of instruments, bars and quotes for the apps above marketdata."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max, QuerySet
from django.utils import timezone

from core.brokers.contracts import SecType
from core.calendars import market_open_at
from core.models import SyncKind, SyncRun
from marketdata.hooks import implicitly_watched_ids
from marketdata.models import Bar, FxRate, Instrument, Quote, WatchedInstrument
from marketdata.quote_cache import quote_cache_key


def quotes_by_instrument(*, instrument_ids: Iterable[int]) -> dict[int, Quote]:
    """The stored latest quote of each instrument that has one, in one query."""
    return {q.instrument_id: q for q in Quote.objects.filter(instrument_id__in=list(instrument_ids))}


def bars_between(
    *, instrument_id: int, bar_size: str, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[Bar]:
    """Stored bars of one instrument and size in time order, ``since <= start < until``."""
    bars = Bar.objects.filter(instrument_id=instrument_id, bar_size=bar_size)
    if since is not None:
        bars = bars.filter(start__gte=since)
    if until is not None:
        bars = bars.filter(start__lt=until)
    return bars.order_by("start")


def fx_rate_list(
    *, base: str | None = None, currency: str | None = None, since: date | None = None, until: date | None = None
) -> QuerySet[FxRate]:
    """Stored daily exchange rates, newest day first, optionally of one pair and between two days."""
    rates = FxRate.objects.all()
    if base:
        rates = rates.filter(base=base.upper())
    if currency:
        rates = rates.filter(currency=currency.upper())
    if since is not None:
        rates = rates.filter(day__gte=since)
    if until is not None:
        rates = rates.filter(day__lte=until)
    return rates.order_by("-day", "base", "currency")


# --- the quote API --------------------------------------------------------------------------------
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9.\-/ ]{0,31}$")


@dataclass(frozen=True)
class QuoteAnswer:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    time: datetime | None
    age_seconds: float | None
    source: str  # "cache" or "database"
    stale: bool
    delayed: bool


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def quote_get(*, symbol: str, now: datetime | None = None) -> QuoteAnswer | None:
    """A stock's latest stored quote: from the cache (no query), else the database; None when unknown.

    Its time is the broker's quote time, else when it was fetched; it is stale when older than
    ``QUOTE_STALE_AFTER`` while the NYSE is in regular hours (a closed market's quote is the close).
    """
    symbol = symbol.strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        return None
    now = now or timezone.now()
    entry = cache.get(quote_cache_key(symbol))
    if entry is not None:
        at = datetime.fromisoformat(entry["at"] or entry["fetched_at"])
        bid, ask, last = (_decimal(entry[name]) for name in ("bid", "ask", "last"))
        source, delayed = "cache", bool(entry.get("delayed"))
    else:
        row = (
            Quote.objects.filter(instrument__symbol=symbol, instrument__sec_type=SecType.STOCK)
            .order_by("-fetched_at")
            .first()
        )
        if row is None:
            return None
        at, bid, ask, last = row.at or row.fetched_at, row.bid, row.ask, row.last
        source, delayed = "database", row.delayed
    age = max(0.0, (now - at).total_seconds())
    stale = age > settings.QUOTE_STALE_AFTER and market_open_at(now)
    return QuoteAnswer(symbol, bid, ask, last, at, round(age, 3), source, stale, delayed)


def instrument_by_symbol(*, symbol: str) -> Instrument | None:
    """The stock named ``symbol``, or None."""
    symbol = symbol.strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        return None
    return Instrument.objects.filter(symbol=symbol, sec_type=SecType.STOCK).order_by("pk").first()


# --- the Market data page -----------------------------------------------------------------------
@dataclass(frozen=True)
class WatchRow:
    instrument: Instrument
    bar_sizes: list[str]
    enabled: bool
    implicit: bool  # watched because of an open position, without a watch row
    latest_bars: dict[str, datetime]  # bar size -> start of the newest stored bar
    quote: Quote | None
    quote_age_seconds: float | None


@dataclass(frozen=True)
class MarketDataOverview:
    rows: list[WatchRow]
    last_run: SyncRun | None
    last_bars_run: SyncRun | None
    gaps: list[str]


def market_data_overview(*, now: datetime | None = None) -> MarketDataOverview:
    """Watched instruments (with the implicit ones), their newest bar per size, quote and its age, the
    last run and the gaps the last bars run left. A fixed number of queries, whatever the bars."""
    now = now or timezone.now()
    watches = list(WatchedInstrument.objects.select_related("instrument", "instrument__quote"))
    watched_ids = {w.instrument_id for w in watches}
    implicit = [
        i
        for i in Instrument.objects.filter(pk__in=implicitly_watched_ids() - watched_ids).select_related("quote")
        if i.pk not in watched_ids
    ]
    ids = [*watched_ids, *(i.pk for i in implicit)]
    latest: dict[int, dict[str, datetime]] = {}
    for instrument_id, bar_size, start in (
        Bar.objects.filter(instrument_id__in=ids)
        .values("instrument_id", "bar_size")
        .annotate(last=Max("start"))
        .values_list("instrument_id", "bar_size", "last")
    ):
        latest.setdefault(instrument_id, {})[bar_size] = start

    def quote_of(instrument: Instrument) -> Quote | None:
        try:
            return instrument.quote
        except Quote.DoesNotExist:
            return None

    def age(quote: Quote | None) -> float | None:
        return None if quote is None else max(0.0, (now - (quote.at or quote.fetched_at)).total_seconds())

    rows = [
        WatchRow(
            w.instrument,
            list(w.bar_sizes),
            w.enabled,
            False,
            latest.get(w.instrument_id, {}),
            quote_of(w.instrument),
            age(quote_of(w.instrument)),
        )
        for w in watches
    ] + [WatchRow(i, ["1d"], True, True, latest.get(i.pk, {}), quote_of(i), age(quote_of(i))) for i in implicit]
    rows.sort(key=lambda r: r.instrument.symbol)
    runs = SyncRun.objects.filter(kind=SyncKind.MARKET_DATA)
    last_run = runs.first()
    # A bars run's message starts with "bars" (marketdata.services.sync): the gaps it left are its warnings.
    last_bars_run = runs.filter(message__startswith="bars").first()
    gaps = [w for w in (last_bars_run.warnings if last_bars_run else []) if str(w).startswith("gap:")]
    return MarketDataOverview(rows=rows, last_run=last_run, last_bars_run=last_bars_run, gaps=gaps)
