"""Exchange rates: stored daily per currency pair, and amounts converted to an account's base currency.

Rules (domain-rules.md "Currencies"): an amount is never added to an amount in another currency as a
number. Unrealized P&L and market value convert at the current rate; realized P&L, commissions and cash
flows at the rate of their own date. A missing rate makes the converted figure unknown (``None``) and
says which currency lacked one; it is never 1. The base currency itself converts at exactly 1.

The convention every API, page and export keeps: an amount stays in its own currency beside the
``currency`` it is in; its base-currency value has the same name with ``_base`` (``unrealized_pnl_base``)
and is null when no rate is known; a total is in the account's ``base_currency`` and lists the
currencies it could not convert in ``fx_missing`` (a total with a missing part is null, never a partial
sum presented as whole).

Reads go through :class:`FxTable`: one query loads the rates an aggregate needs, every lookup after
that is in memory, so converting a thousand fills costs one query.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from core.calendars import trade_date_of
from marketdata.models import FxRate

logger = logging.getLogger(__name__)

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Rate:
    rate: Decimal
    day: date | None  # the day the rate is of; None for the base currency itself
    source: str


@dataclass(frozen=True, slots=True)
class Converted:
    """One amount and its value in base; ``amount_base`` is None when no rate was known (``missing``)."""

    amount: Decimal | None
    currency: str
    base: str
    amount_base: Decimal | None
    rate: Rate | None

    @property
    def missing(self) -> bool:
        return self.amount is not None and self.amount_base is None


@dataclass(slots=True)
class Total:
    """A sum in base currency. ``amount`` is None when any part lacked a rate (listed in ``missing``);
    ``known`` is the sum of the parts that converted, for a page that says "at least"."""

    base: str
    known: Decimal = Decimal(0)
    missing: set[str] = field(default_factory=set)

    def add(self, converted: Converted) -> None:
        if converted.amount is None:
            return
        if converted.amount_base is None:
            self.missing.add(converted.currency)
        else:
            self.known += converted.amount_base

    @property
    def amount(self) -> Decimal | None:
        return None if self.missing else self.known

    @property
    def fx_missing(self) -> list[str]:
        return sorted(self.missing)


class FxTable:
    """The stored rates of some currencies to one base currency, with lookups in memory."""

    def __init__(self, base: str, rates: Mapping[str, Iterable[tuple[date, Decimal, str]]], *, max_age_days=None):
        self.base = base.upper()
        self.max_age = timedelta(days=settings.FX_RATE_MAX_AGE_DAYS if max_age_days is None else max_age_days)
        self._days: dict[str, list[date]] = {}
        self._rates: dict[str, list[tuple[Decimal, str]]] = {}
        for currency, rows in rates.items():
            ordered = sorted(rows)
            self._days[currency.upper()] = [day for day, _, _ in ordered]
            self._rates[currency.upper()] = [(rate, source) for _, rate, source in ordered]

    @classmethod
    def load(
        cls, *, base: str, currencies: Iterable[str], since: date | None = None, until: date | None = None
    ) -> FxTable:
        """Rates of ``currencies`` to ``base`` (one query; none when every currency is the base).

        ``since``/``until`` bound the days an aggregate will ask about; ``since`` reaches back by
        ``FX_RATE_MAX_AGE_DAYS`` so the first day still finds the rate before it. ``until`` None keeps
        the latest rate (the current one).
        """
        base = base.upper()
        wanted = sorted({c.upper() for c in currencies if c} - {base})
        table = cls(base, {})
        if not wanted:
            return table
        rows = FxRate.objects.filter(base=base, currency__in=wanted)
        if since is not None:
            rows = rows.filter(day__gte=since - table.max_age)
        if until is not None:
            rows = rows.filter(day__lte=until)
        grouped: dict[str, list[tuple[date, Decimal, str]]] = defaultdict(list)
        for currency, day, rate, source in rows.values_list("currency", "day", "rate", "source"):
            grouped[currency].append((day, rate, source))
        return cls(base, grouped, max_age_days=table.max_age.days)

    def rate(self, currency: str, on: date | datetime | None = None) -> Rate | None:
        """The rate of ``currency`` on ``on`` (a date, or an aware moment taken at its exchange trade date: the
        latest stored day not after it, at most ``FX_RATE_MAX_AGE_DAYS`` before it), or the latest stored rate
        when ``on`` is None."""
        currency = (currency or "").upper()
        if currency == self.base:
            return Rate(ONE, None, "identity")
        days = self._days.get(currency)
        if not days:
            return None
        if on is None:
            rate, source = self._rates[currency][-1]
            return Rate(rate, days[-1], source)
        if isinstance(on, datetime):
            on = trade_date_of(on)  # a moment's rate is its exchange trade date's, as the ledger dates fills
        index = bisect_right(days, on) - 1
        if index < 0 or on - days[index] > self.max_age:
            return None
        rate, source = self._rates[currency][index]
        return Rate(rate, days[index], source)

    def convert(self, amount: Decimal | None, currency: str, on: date | datetime | None = None) -> Converted:
        """``amount`` of ``currency`` in base at the rate of ``on`` (None: the current rate)."""
        currency = (currency or "").upper()
        if amount is None:
            return Converted(None, currency, self.base, None, None)
        rate = self.rate(currency, on)
        value = None if rate is None else Decimal(amount) * rate.rate
        return Converted(Decimal(amount), currency, self.base, value, rate)

    def total(self, parts: Iterable[tuple[Decimal | None, str, date | datetime | None]]) -> Total:
        """The base-currency sum of ``(amount, currency, day)`` parts (``day`` None: current rate)."""
        total = Total(self.base)
        for amount, currency, on in parts:
            total.add(self.convert(amount, currency, on))
        return total


def fx_rates_store(
    *, base: str, rates: Mapping[str, Decimal], day: date, source: str, now: datetime | None = None
) -> int:
    """Upsert one day's rates to ``base``; a rate that is not positive, or of the base itself, is skipped
    with a warning naming it. Returns how many rates were written."""
    base = base.upper()
    now = now or timezone.now()
    rows = []
    for currency, rate in rates.items():
        currency = (currency or "").upper()
        if len(currency) != 3 or currency == base:
            if currency != base:
                logger.warning("Skipped exchange rate %r to %s: not a currency code", currency, base)
            continue
        try:
            value = Decimal(rate)
        except (ArithmeticError, TypeError, ValueError):
            value = None
        if value is None or not value.is_finite() or value <= 0:
            logger.warning("Skipped exchange rate %s/%s on %s: %r is not a positive number", currency, base, day, rate)
            continue
        rows.append(FxRate(currency=currency, base=base, day=day, rate=value, source=source, fetched_at=now))
    if rows:
        FxRate.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["currency", "base", "day"],
            update_fields=["rate", "source", "fetched_at"],
        )
    return len(rows)
