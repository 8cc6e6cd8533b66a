"""Hooks that marketdata offers to the apps above it.

Marketdata must not import those apps, nor reach them by a task name. An app above (the paper order
engine, Greeks) registers a callable here from its ``AppConfig.ready()``; marketdata calls every
registered callable after the transaction that stored the quotes has committed.
"""

from collections.abc import Callable, Iterable
from datetime import date

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


# --- currencies the ledger holds ----------------------------------------------------------------
# (currency, base, first day): an amount in ``currency`` booked in an account whose base is ``base``,
# the earliest on ``first day`` (its first fill); the daily rates of the pair are kept from that day.
FxNeed = tuple[str, str, date]
FxNeeds = Callable[[], Iterable[FxNeed]]

_fx_needs: list[FxNeeds] = []


def fx_needs_register(provider: FxNeeds) -> None:
    """``provider()`` lists the currency pairs whose past daily rates the ledger needs (portfolio
    registers the currencies of every account's fills, positions and cash balances)."""
    if provider not in _fx_needs:
        _fx_needs.append(provider)


def fx_needs() -> dict[tuple[str, str], date]:
    """Every needed (currency, base) pair with the earliest day it is needed from (base pairs excluded)."""
    needs: dict[tuple[str, str], date] = {}
    for provider in list(_fx_needs):
        for currency, base, first in provider():
            pair = ((currency or "").upper(), (base or "").upper())
            if len(pair[0]) == 3 and len(pair[1]) == 3 and pair[0] != pair[1]:
                needs[pair] = min(first, needs.get(pair, first))
    return needs
