"""Hooks that trading offers to the apps above it.

Trading must not import those apps, nor reach them by a task name. An app above registers a
callable here from its ``AppConfig.ready()``; trading calls every registered callable, after the
transaction that wrote the fills has committed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

AfterFills = Callable[[list[str]], None]

_after_fills: list[AfterFills] = []


def after_fills_register(callback: AfterFills) -> None:
    """Call ``callback(account_ids)`` whenever an ingest stored new or changed fills of those accounts."""
    if callback not in _after_fills:
        _after_fills.append(callback)


def after_fills_notify(*, account_ids: list[str]) -> None:
    for callback in list(_after_fills):
        callback(account_ids)


# --- what the trades API shows of a round trip that an app above keeps ---------------------------
RoundTripEntryGreeks = Callable[[list], dict[int, dict]]

_round_trip_entry_greeks: list[RoundTripEntryGreeks] = []


def round_trip_entry_greeks_register(callback: RoundTripEntryGreeks) -> None:
    """``callback(round_trips)`` returns ``{round_trip_id: entry Greeks}`` for the option round trips it
    knows (one query for a page of them); the trades API shows them."""
    if callback not in _round_trip_entry_greeks:
        _round_trip_entry_greeks.append(callback)


def round_trip_entry_greeks(round_trips: list) -> dict[int, dict]:
    found: dict[int, dict] = {}
    for callback in list(_round_trip_entry_greeks):
        found.update(callback(round_trips))
    return found


# --- account figures for the order risk checks -------------------------------------------------
@dataclass(frozen=True, slots=True)
class AccountFigures:
    """What the layers above know of an account's value (portfolio: the broker's values, snapshots)."""

    net_liquidation: Decimal | None = None
    previous_close: Decimal | None = None  # account value at the previous session's close
    flows_since_close: Decimal = Decimal(0)  # deposits less withdrawals since then: not a gain or a loss
    day_trades_remaining: int | None = None  # the broker's count; -1 unlimited


AccountFiguresProvider = Callable[[object], AccountFigures]

_figures_providers: list[AccountFiguresProvider] = []


def account_figures_register(provider: AccountFiguresProvider) -> None:
    """``provider(account) -> AccountFigures``: the order checks ask it for what trading cannot know."""
    if provider not in _figures_providers:
        _figures_providers.append(provider)


def account_figures_get(account) -> AccountFigures:
    """The first registered provider's answer; empty figures when none is registered."""
    for provider in _figures_providers:
        return provider(account)
    return AccountFigures()
