"""The latest quote per instrument: stored in the database and in the cache.

The database row is what survives the broker and the cache; the cache entry (Redis, or the file
cache every process shares) lets the quote API answer without a query. After the transaction that
changed quotes commits, the callables registered in ``marketdata.hooks`` (the paper order engine)
hear which instruments changed.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.brokers.base import Quote as BrokerQuote
from core.brokers.contracts import SecType
from core.fields import quantize_price, quantize_quantity
from marketdata.hooks import after_quotes_notify
from marketdata.models import Instrument, Quote
from marketdata.quote_cache import QUOTE_CACHE_SECONDS, quote_cache_entry, quote_cache_key

QUOTE_FIELDS = ("bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume", "at", "delayed")


@dataclass
class QuotesStoreResult:
    created: list[int] = field(default_factory=list)  # instrument ids
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)

    @property
    def changed(self) -> list[int]:
        return self.created + self.updated


def _values(quote: BrokerQuote) -> dict:
    return {
        "bid": quantize_price(quote.bid),
        "ask": quantize_price(quote.ask),
        "last": quantize_price(quote.last),
        "bid_size": quantize_quantity(quote.bid_size),
        "ask_size": quantize_quantity(quote.ask_size),
        "last_size": quantize_quantity(quote.last_size),
        "volume": quantize_quantity(quote.volume),
        "at": quote.at,
        "delayed": quote.delayed,
    }


def quotes_store(
    *, quotes: Iterable[tuple[int, BrokerQuote]], source: str, now: datetime | None = None
) -> QuotesStoreResult:
    """Store ``(instrument_id, quote)`` pairs: one row per instrument, upserted; returns the ids by outcome.

    An unchanged quote only gets its ``fetched_at`` moved (the broker confirmed it now). The cache
    entries are written and ``after_quotes_notify`` is called after the commit, for the changed ones.
    """
    now = now or timezone.now()
    wanted = {instrument_id: quote for instrument_id, quote in quotes}
    result = QuotesStoreResult()
    if not wanted:
        return result
    with transaction.atomic():
        stored = {q.instrument_id: q for q in Quote.objects.select_for_update().filter(instrument_id__in=list(wanted))}
        new: list[Quote] = []
        touched: list[Quote] = []
        for instrument_id, incoming in wanted.items():
            values = _values(incoming)
            row = stored.get(instrument_id)
            if row is None:
                new.append(Quote(instrument_id=instrument_id, source=source, fetched_at=now, **values))
                result.created.append(instrument_id)
                continue
            if any(getattr(row, name) != value for name, value in values.items()):
                result.updated.append(instrument_id)
            else:
                result.unchanged.append(instrument_id)
            for name, value in values.items():
                setattr(row, name, value)
            row.source, row.fetched_at = source, now
            touched.append(row)
        Quote.objects.bulk_create(new)
        Quote.objects.bulk_update(touched, [*QUOTE_FIELDS, "source", "fetched_at"])
        # The cache answers the quote API, which names a stock by its symbol: only stocks go there.
        stocks = dict(
            Instrument.objects.filter(pk__in=list(wanted), sec_type=SecType.STOCK).values_list("pk", "symbol")
        )
        entries = {
            quote_cache_key(stocks[q.instrument_id]): quote_cache_entry(symbol=stocks[q.instrument_id], quote=q)
            for q in [*new, *touched]
            if q.instrument_id in stocks
        }
        transaction.on_commit(lambda: cache.set_many(entries, QUOTE_CACHE_SECONDS))
        if result.changed:
            changed = list(result.changed)
            transaction.on_commit(lambda: after_quotes_notify(instrument_ids=changed))
    return result
