"""Every write of marketdata: instruments, bars, quotes and the sync that fetches them.

Other apps call these by name (``from marketdata.services import quotes_store``).
"""

from marketdata.services.bars import BarsStoreResult, bars_store
from marketdata.services.instruments import instrument_get_or_create, instruments_resolve
from marketdata.services.quotes import QuotesStoreResult, quotes_store

__all__ = [
    "BarsStoreResult",
    "QuotesStoreResult",
    "bars_store",
    "instrument_get_or_create",
    "instruments_resolve",
    "quotes_store",
]
