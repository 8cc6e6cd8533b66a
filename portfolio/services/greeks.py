"""Option Greeks of the open option positions: refreshed from the broker's model values, or computed.

``greeks_refresh`` runs from the "Option Greeks" task (every 30 s while the NYSE is open) and from
``manage.py refresh_greeks`` (at any hour). Per open option position:

1. the broker's model Greeks (``BrokerPosition.greeks``) when it gives a complete set;
2. otherwise Black-Scholes-Merton (``portfolio.rules.greeks``) from the option's stored quote (mid, else
   last; else the broker's market price on the position), the underlying's stored quote (mid, else
   last; else the broker's underlying price), ``RISK_FREE_RATE`` and ``GREEKS_DIVIDEND_YIELDS``;
3. empty, with the reason, when neither can be had (no quote, a price outside the no-arbitrage bounds,
   expired).

An unreachable broker is not a reason to stop: the sets are computed and the result says so. The
current set is overwritten at every refresh; the entry set is the first known set of the position and
is never overwritten after. The number of queries does not depend on the number of positions.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.brokers import Broker, BrokerError, BrokerUnavailable
from core.brokers.base import OptionGreeks
from core.brokers.contracts import SecType
from core.fields import quantize_price
from marketdata.models import Instrument, Quote
from marketdata.selectors import quotes_by_instrument
from portfolio.models import Position, PositionGreeks, PositionStatus
from portfolio.rules.greeks import Greeks, broker_greeks, bsm_greeks, days_to_expiry

logger = logging.getLogger(__name__)

OPTION_SEC_TYPES = (SecType.OPTION, SecType.FUTURE_OPTION)
CURRENT_FIELDS = [
    "delta",
    "gamma",
    "theta",
    "vega",
    "iv",
    "underlying_price",
    "days_to_expiry",
    "source",
    "reason",
    "inputs",
    "as_of",
]
ENTRY_FIELDS = [
    "entry_delta",
    "entry_gamma",
    "entry_theta",
    "entry_vega",
    "entry_iv",
    "entry_underlying_price",
    "entry_days_to_expiry",
    "entry_source",
    "entry_at",
]
REASON_LENGTH = PositionGreeks._meta.get_field("reason").max_length


@dataclass
class GreeksRefreshResult:
    positions: int = 0
    from_broker: int = 0
    computed: int = 0
    empty: int = 0
    entries_recorded: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "positions": self.positions,
            "from_broker": self.from_broker,
            "computed": self.computed,
            "empty": self.empty,
            "entries_recorded": self.entries_recorded,
            "warnings": self.warnings,
        }


def _price(quote: Quote | None) -> tuple[Decimal | None, str]:
    """A quote's mid, else its last price, and which one it was."""
    if quote is None:
        return None, ""
    mid = quote.mid
    if mid is not None:
        return quantize_price(mid), "mid"
    if quote.last is not None and quote.last > 0:
        return Decimal(quote.last), "last"
    return None, ""


def _broker_sets(
    broker: Broker | None, account_ids: Iterable[str], result: GreeksRefreshResult
) -> dict[tuple[str, str], OptionGreeks]:
    """The broker's model Greeks per (account, instrument key). A broker that cannot answer leaves the
    sets to be computed, with a warning."""
    sets: dict[tuple[str, str], OptionGreeks] = {}
    if broker is None:
        return sets
    for account_id in sorted(set(account_ids)):
        try:
            fetched = broker.positions(account_id)
        except (BrokerUnavailable, BrokerError) as exc:
            result.warnings.append(f"{account_id}: the broker's Greeks could not be read ({exc}); computed instead")
            continue
        missing = []
        for row in fetched.items:
            if row.greeks is not None:  # an incomplete set still gives its underlying price
                sets[(account_id, row.instrument.key)] = row.greeks
            incomplete = row.greeks is None or not row.greeks.complete
            if incomplete and row.instrument.sec_type in OPTION_SEC_TYPES and row.quantity != 0:
                missing.append(row.instrument)
        # A broker whose positions carry no Greeks may compute them from option market data (IBKR's modelGreeks).
        option_greeks = getattr(broker, "option_greeks", None)
        if missing and option_greeks is not None:
            try:
                model = option_greeks(missing)
            except (BrokerUnavailable, BrokerError) as exc:
                result.warnings.append(f"{account_id}: the broker's model Greeks could not be read ({exc}); computed")
                continue
            result.warnings.extend(model.warnings)
            for row in model.items:
                sets[(account_id, row.instrument.key)] = row.greeks
    return sets


def _underlying_ids(positions: list[Position]) -> dict[tuple[str, str], int]:
    """The stock instrument of each option's underlying (same symbol and currency), in one query."""
    symbols = {p.instrument.symbol for p in positions}
    rows = Instrument.objects.filter(sec_type=SecType.STOCK, symbol__in=symbols).values_list("symbol", "currency", "pk")
    return {(symbol, currency): pk for symbol, currency, pk in rows}


def greeks_for(
    *,
    position: Position,
    now: datetime,
    broker_set: OptionGreeks | None,
    option_quote: Quote | None,
    underlying_quote: Quote | None,
) -> Greeks:
    """One option position's Greeks: the broker's complete set, else computed, else empty with why."""
    instrument = position.instrument
    if instrument.expiry is None or instrument.strike is None:
        return Greeks(reason="the contract has no expiry or strike")
    days = days_to_expiry(expiry=instrument.expiry, now=now)
    underlying, _ = _price(underlying_quote)
    if underlying is None and broker_set is not None:
        underlying = broker_set.underlying_price
    if broker_set is not None and broker_set.complete and days > 0:
        return broker_greeks(
            delta=broker_set.delta,
            gamma=broker_set.gamma,
            theta=broker_set.theta,
            vega=broker_set.vega,
            iv=broker_set.iv,
            underlying_price=broker_set.underlying_price,
            days=days,
            fallback_underlying=underlying,
        )
    option_price, kind = _price(option_quote)
    if option_price is None and position.current_price is not None and position.current_price > 0:
        option_price, kind = Decimal(position.current_price), "market price (broker)"
    return bsm_greeks(
        right=instrument.right,
        underlying_price=underlying,
        strike=Decimal(instrument.strike),
        days=days,
        option_price=option_price,
        price_kind=kind,
        rate=settings.RISK_FREE_RATE,
        dividend_yield=settings.GREEKS_DIVIDEND_YIELDS.get(instrument.symbol.upper(), Decimal(0)),
    )


def _row(position: Position, greeks: Greeks, now: datetime) -> PositionGreeks:
    row = PositionGreeks(
        position=position,
        delta=greeks.delta,
        gamma=greeks.gamma,
        theta=greeks.theta,
        vega=greeks.vega,
        iv=greeks.iv,
        underlying_price=greeks.underlying_price,
        days_to_expiry=greeks.days_to_expiry,
        source=greeks.source,
        reason=greeks.reason[:REASON_LENGTH],
        inputs=greeks.inputs,
        as_of=now,
        entry_at=now,
    )
    if greeks.known:
        _copy_to_entry(row)
    return row


def _copy_to_entry(row: PositionGreeks) -> None:
    row.entry_delta, row.entry_gamma, row.entry_theta = row.delta, row.gamma, row.theta
    row.entry_vega, row.entry_iv, row.entry_underlying_price = row.vega, row.iv, row.underlying_price
    row.entry_days_to_expiry, row.entry_source = row.days_to_expiry, row.source


def greeks_refresh(
    *, broker: Broker | None, account_ids: list[str] | None = None, now: datetime | None = None
) -> GreeksRefreshResult:
    """Refresh the Greeks of every open option position of the active accounts (or those named)."""
    now = now or timezone.now()
    result = GreeksRefreshResult()
    positions = Position.objects.filter(
        status=PositionStatus.OPEN, instrument__sec_type__in=OPTION_SEC_TYPES, account__is_active=True
    ).exclude(quantity=0)
    if account_ids:
        positions = positions.filter(account__account_id__in=account_ids)
    positions = list(positions.select_related("account", "instrument").order_by("pk"))
    if not positions:
        return result
    broker_sets = _broker_sets(broker, (p.account.account_id for p in positions), result)
    underlyings = _underlying_ids(positions)
    quotes = quotes_by_instrument(instrument_ids={p.instrument_id for p in positions} | set(underlyings.values()))
    # Which positions already have their entry set: those keep it.
    entered = set(
        PositionGreeks.objects.filter(position__in=positions)
        .exclude(entry_source="")
        .values_list("position_id", flat=True)
    )
    current_only, with_entry = [], []
    for position in positions:
        instrument = position.instrument
        underlying_id = underlyings.get((instrument.symbol, instrument.currency))
        greeks = greeks_for(
            position=position,
            now=now,
            broker_set=broker_sets.get((position.account.account_id, instrument.key)),
            option_quote=quotes.get(instrument.pk),
            underlying_quote=quotes.get(underlying_id) if underlying_id else None,
        )
        result.positions += 1
        if greeks.source == "BROKER":
            result.from_broker += 1
        elif greeks.source == "COMPUTED":
            result.computed += 1
        else:
            result.empty += 1
        row = _row(position, greeks, now)
        if greeks.known and position.pk not in entered:
            with_entry.append(row)
            result.entries_recorded += 1
        else:
            current_only.append(row)
    with transaction.atomic():
        for rows, fields in ((current_only, CURRENT_FIELDS), (with_entry, CURRENT_FIELDS + ENTRY_FIELDS)):
            if rows:
                PositionGreeks.objects.bulk_create(
                    rows, update_conflicts=True, unique_fields=["position"], update_fields=fields
                )
    for warning in result.warnings:
        logger.warning("option Greeks: %s", warning)
    return result
