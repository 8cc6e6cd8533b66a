"""The cache entry of a stock's latest quote: its key and what it holds (read by the quote API, written
by ``quotes_store``), in one place so the writer and the reader agree."""

from marketdata.models import Quote

# A day: the database is the fallback once an entry is gone; the entry is rewritten at every store.
QUOTE_CACHE_SECONDS = 86_400


def quote_cache_key(symbol: str) -> str:
    return f"marketdata:quote:{symbol.upper()}"


def quote_cache_entry(*, symbol: str, quote: Quote) -> dict:
    """What the cache holds for a stock's quote: text decimals, ISO times (no pickled model)."""

    def text(value):
        return None if value is None else str(value)

    return {
        "symbol": symbol.upper(),
        "bid": text(quote.bid),
        "ask": text(quote.ask),
        "last": text(quote.last),
        "at": quote.at.isoformat() if quote.at else None,
        "fetched_at": quote.fetched_at.isoformat(),
        "delayed": quote.delayed,
        "source": quote.source,
    }
