"""The ledger's amounts in their account's base currency: the rate tables a list, a page or an export needs.

``marketdata.fx`` holds the rules (a missing rate is unknown, never 1) and one account's table; what is
here loads the rates of several base currencies at once (an API page can list accounts of different
bases) in one query, and converts the amounts of a fill, a round trip or a position by the day that
decides their rate: a fill and its commission at its trade date, a round trip's P&L at its closing
fill's date, market value and unrealized P&L at the current rate (``on=None``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Q

from core.fields import quantize_money
from marketdata.fx import Converted, FxTable, Rate
from marketdata.models import FxRate
from trading.calendars import trade_date_of


class FxTables:
    """Rate tables by base currency, loaded together; lookups in memory."""

    def __init__(self, tables: dict[str, FxTable]):
        self._tables = tables

    @classmethod
    def load(cls, pairs: Iterable[tuple[str, str]]) -> FxTables:
        """The stored rates of every ``(base, currency)`` pair: one query, none when each currency is its
        base. Every day is loaded (a few thousand rows for years of a handful of currencies), so the
        number of queries never depends on which days the amounts are of."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for base, currency in pairs:
            base, currency = (base or "").upper(), (currency or "").upper()
            if base and currency and currency != base:
                wanted[base].add(currency)
        tables = {base: FxTable(base, {}) for base in wanted}
        if not wanted:
            return cls(tables)
        condition = Q()
        for base, currencies in wanted.items():
            condition |= Q(base=base, currency__in=sorted(currencies))
        grouped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for base, currency, day, rate, source in FxRate.objects.filter(condition).values_list(
            "base", "currency", "day", "rate", "source"
        ):
            grouped[base][currency].append((day, rate, source))
        return cls({base: FxTable(base, grouped.get(base, {})) for base in wanted})

    def table(self, base: str) -> FxTable:
        base = (base or "").upper()
        return self._tables.get(base) or FxTable(base, {})

    def convert(
        self, amount: Decimal | None, currency: str, *, base: str, on: date | datetime | None = None
    ) -> Converted:
        return self.table(base).convert(amount, currency, on)

    def rate(self, currency: str, *, base: str, on: date | datetime | None = None) -> Rate | None:
        return self.table(base).rate(currency, on)


def fx_tables_for_accounts(accounts_currencies: Iterable[tuple[object, str]]) -> FxTables:
    """The tables for ``(account, currency)`` pairs (an account carries its ``base_currency``)."""
    return FxTables.load((account.base_currency, currency) for account, currency in accounts_currencies)


def amount_base(converted: Converted) -> Decimal | None:
    """The base value of a converted amount at money precision; None when no rate is known."""
    return quantize_money(converted.amount_base)


def executions_in_base(executions: list) -> list:
    """Set ``base_currency``, ``fx_rate``, ``price_base``, ``commission_base`` and ``realized_pnl_base`` on
    each fill (account and instrument joined), at the rate of its trade date; the commission in its own
    currency. One query, none when every fill is in its account's base currency."""
    tables = fx_tables_for_accounts(
        pair for e in executions for pair in ((e.account, e.instrument.currency), (e.account, e.commission_currency))
    )
    for e in executions:
        base, currency, day = e.account.base_currency, e.instrument.currency, e.trade_date
        rate = tables.rate(currency, base=base, on=day)
        e.base_currency = base
        e.fx_rate = rate.rate if rate else None
        e.price_base = None if rate is None else e.price * rate.rate
        e.commission_base = amount_base(tables.convert(e.commission, e.commission_currency, base=base, on=day))
        e.realized_pnl_base = amount_base(tables.convert(e.realized_pnl, currency, base=base, on=day))
    return executions


def round_trips_in_base(round_trips: list) -> list:
    """Set ``currency``, ``base_currency``, ``fx_rate``, ``realized_pnl_base`` and ``commissions_base`` on
    each round trip (account and instrument joined), at the rate of its closing fill's trade date (read
    time: a rate backfilled later counts). One query, none when all are in their base currency."""
    tables = fx_tables_for_accounts((t.account, t.instrument.currency) for t in round_trips)
    for t in round_trips:
        base, currency, day = t.account.base_currency, t.instrument.currency, trade_date_of(t.closed_at)
        rate = tables.rate(currency, base=base, on=day)
        t.currency, t.base_currency = currency, base
        t.fx_rate = rate.rate if rate else None
        t.realized_pnl_base = amount_base(tables.convert(t.realized_pnl, currency, base=base, on=day))
        t.commissions_base = amount_base(tables.convert(t.commissions, currency, base=base, on=day))
    return round_trips


# --- the trade record and the tax lots: figures in base at each transaction's date -------------------
# Appended after the record's own fields: the round trip's currency, its account's base currency and
# the money fields in base (entry value at the opening day's rate, P&L and commissions at the closing
# day's), empty without a rate.
TRADE_RECORD_BASE_FIELDS = (
    "currency",
    "base_currency",
    "total_value_base",
    "profit_loss_base",
    "commission_base",
    "net_profit_loss_base",
)


def trade_record_in_base(record: dict, *, trip, tables: FxTables) -> dict:
    """``record`` (of round trip ``trip``, account and instrument joined) with ``TRADE_RECORD_BASE_FIELDS``."""
    base, currency = trip.account.base_currency, trip.instrument.currency
    opened_on = trade_date_of(trip.opened_at)
    # An open trade (no close yet): its only commissions are the entry's, of the opening day.
    closed_on = trade_date_of(trip.closed_at) if trip.closed_at is not None else opened_on

    def at(field: str, on) -> str | None:
        text = record.get(field)
        if text is None:
            return None
        value = tables.convert(Decimal(text), currency, base=base, on=on).amount_base
        return None if value is None else f"{value.quantize(CENT).normalize():f}"  # as the record writes decimals

    return {
        **record,
        "currency": currency,
        "base_currency": base,
        "total_value_base": at("total_value", opened_on),
        "profit_loss_base": at("profit_loss", closed_on),
        "commission_base": at("commission", closed_on),
        "net_profit_loss_base": at("net_profit_loss", closed_on),
    }


CENT = Decimal("0.01")
