"""Hooks that marketdata offers to the apps above it.

Marketdata must not import those apps, nor reach them by a task name. An app above (the paper order
engine, Greeks) registers a callable here from its ``AppConfig.ready()``; marketdata calls every
registered callable after the transaction that stored the quotes has committed.
"""

from collections.abc import Callable

AfterQuotes = Callable[[list[int]], None]

_after_quotes: list[AfterQuotes] = []


def after_quotes_register(callback: AfterQuotes) -> None:
    """Call ``callback(instrument_ids)`` whenever new or changed quotes of those instruments were stored."""
    if callback not in _after_quotes:
        _after_quotes.append(callback)


def after_quotes_notify(*, instrument_ids: list[int]) -> None:
    for callback in list(_after_quotes):
        callback(instrument_ids)


# --- instruments watched implicitly -------------------------------------------------------------
WatchedIds = Callable[[], list[int]]

_implicitly_watched: list[WatchedIds] = []


def implicitly_watched_register(provider: WatchedIds) -> None:
    """``provider()`` returns instrument ids whose daily bars and quote are kept without a
    WatchedInstrument row (portfolio registers every instrument with an open position)."""
    if provider not in _implicitly_watched:
        _implicitly_watched.append(provider)


def implicitly_watched_ids() -> set[int]:
    ids: set[int] = set()
    for provider in list(_implicitly_watched):
        ids.update(provider())
    return ids
