"""The broker's account values as the portfolio stores them (latest in AccountStatus, over time in
AccountSnapshot), with the cash per currency and its base-currency total."""

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from core.brokers.base import AccountValues
from core.fields import quantize_money
from marketdata.fx import FxTable, Total, fx_rates_store
from marketdata.models import FxRate
from marketdata.services.fx import FX_SOURCE_ADMIN
from portfolio.models import ACCOUNT_VALUE_FIELDS


def account_value_fields(values: AccountValues) -> dict:
    """The broker's account values as AccountStatus and AccountSnapshot store them (money rounded)."""
    return {
        name: values.currency if name == "currency" else quantize_money(getattr(values, name))
        for name in ACCOUNT_VALUE_FIELDS
    }


def cash_fields(
    *,
    balances: Mapping[str, Decimal] | None,
    base: str,
    rates: Mapping[str, Decimal] | None = None,
) -> dict:
    """``cash_balances`` ({currency: "amount"}, each in its own currency), ``cash_total_base`` and
    ``cash_fx_missing`` as AccountStatus and AccountSnapshot store them.

    A balance converts at the broker's rate when it gave one (``rates``, its current rate), else at the
    latest stored daily rate (one query, only then); with neither the total is empty (None) and the
    currency is listed as missing, never counted at 1. No balances at all: all three are None (unknown,
    as on rows written before cash was kept per currency).
    """
    if not balances:
        return {"cash_balances": None, "cash_total_base": None, "cash_fx_missing": None}
    base = base.upper()
    amounts = {currency.upper(): quantize_money(amount) for currency, amount in balances.items()}
    broker_rates = {currency.upper(): rate for currency, rate in (rates or {}).items()}
    today = timezone.localdate()
    unrated = {c for c, a in amounts.items() if a and c != base and c not in broker_rates}
    stored = FxTable.load(base=base, currencies=unrated) if unrated else FxTable(base, {})
    given = FxTable(base, {c: [(today, r, "broker")] for c, r in broker_rates.items()}, max_age_days=0)
    total = Total(base)
    for currency, amount in sorted(amounts.items()):
        if not amount:
            continue  # zero in any currency is zero in base: no rate needed (IBKR lists 0.00 rows)
        table = given if currency in broker_rates else stored
        total.add(table.convert(amount, currency))
    return {
        "cash_balances": {currency: f"{amount:f}" for currency, amount in sorted(amounts.items())},
        "cash_total_base": quantize_money(total.amount),
        "cash_fx_missing": total.fx_missing,
    }


def account_cash_fields(values: AccountValues) -> dict:
    """:func:`cash_fields` of the broker's account values."""
    return cash_fields(balances=values.cash_balances, base=values.currency, rates=values.fx_rates)


def broker_rates_store(*, values: AccountValues, source: str, now: datetime) -> int:
    """The broker's current rates to the account's base, kept as today's daily rates (``FxRate``)."""
    if not values.fx_rates:
        return 0
    day = timezone.localdate(now)
    # A staff correction of today's rate stands (domain rule: a sync does not silently undo it).
    corrected = set(
        FxRate.objects.filter(base=values.currency, day=day, source=FX_SOURCE_ADMIN).values_list("currency", flat=True)
    )
    rates = {currency: rate for currency, rate in values.fx_rates.items() if currency.upper() not in corrected}
    return fx_rates_store(base=values.currency, rates=rates, day=day, source=source, now=now)
