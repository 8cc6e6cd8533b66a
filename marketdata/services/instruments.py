"""Instruments: found by IBKR con_id or natural key, created when unknown."""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q

from core.brokers.contracts import InstrumentSpec
from core.fields import quantize_price, quantize_quantity
from marketdata.models import Instrument


def _new_instrument(spec: InstrumentSpec) -> Instrument:
    return Instrument(
        key=spec.key,
        symbol=spec.symbol.upper(),
        sec_type=str(spec.sec_type).upper(),
        currency=spec.currency.upper(),
        con_id=spec.con_id,
        exchange=spec.exchange or "SMART",
        multiplier=quantize_quantity(spec.multiplier),
        expiry=spec.expiry,
        strike=quantize_price(spec.strike),
        right=spec.right.upper(),
    )


def instrument_get_or_create(*, spec: InstrumentSpec) -> Instrument:
    """Find an instrument by IBKR con_id, else by natural key; create it when unknown."""
    return instruments_resolve(specs=[spec])[spec.key]


def instruments_resolve(*, specs: Iterable[InstrumentSpec]) -> dict[str, Instrument]:
    """Map each spec's key to its Instrument, creating the unknown ones, in a fixed few queries.

    A con_id match wins over a key match (IBKR's id is the stronger identity); a concurrent
    creator that wins the race is absorbed by ``ignore_conflicts`` and the re-read.
    """
    wanted = {spec.key: spec for spec in specs}
    if not wanted:
        return {}
    con_ids = {s.con_id for s in wanted.values() if s.con_id is not None}
    found = list(Instrument.objects.filter(Q(key__in=list(wanted)) | Q(con_id__in=con_ids)))
    by_con_id = {i.con_id: i for i in found if i.con_id is not None}
    by_key = {i.key: i for i in found}

    result: dict[str, Instrument] = {}
    missing: list[InstrumentSpec] = []
    for key, spec in wanted.items():
        instrument = by_con_id.get(spec.con_id) if spec.con_id is not None else None
        instrument = instrument or by_key.get(key)
        if instrument is None:
            missing.append(spec)
        else:
            result[key] = instrument
    if missing:
        with transaction.atomic():
            Instrument.objects.bulk_create([_new_instrument(s) for s in missing], ignore_conflicts=True)
        created = Instrument.objects.filter(key__in=[s.key for s in missing])
        created_by_key = {i.key: i for i in created}
        for spec in missing:
            instrument = created_by_key.get(spec.key)
            if instrument is None:  # its con_id belonged to a row with another key
                instrument = Instrument.objects.get(con_id=spec.con_id)
            result[spec.key] = instrument
    return result
