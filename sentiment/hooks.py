"""Hooks sentiment offers to the apps above it.

Sentiment must not import trading or portfolio. Portfolio registers a callable here (from its
``AppConfig.ready()``) that names the symbols held: by a user (the Sentiment page lists them first),
or by anyone (``user=None``: the sources ask about them besides the watched instruments).
"""

from collections.abc import Callable

HeldSymbols = Callable[[object | None], list[str]]

_held_symbols: list[HeldSymbols] = []


def held_symbols_register(callback: HeldSymbols) -> None:
    if callback not in _held_symbols:
        _held_symbols.append(callback)


def held_symbols(user=None) -> list[str]:
    """Symbols held by ``user`` (None: by any account), per the registered callables, each once."""
    found: list[str] = []
    for callback in list(_held_symbols):
        for symbol in callback(user):
            if symbol not in found:
                found.append(symbol)
    return found
