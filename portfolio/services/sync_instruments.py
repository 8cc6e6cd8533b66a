"""The instruments one sync call meets, read or created once and shared by its accounts."""

from collections.abc import Iterable

from core.brokers.base import BrokerPosition
from marketdata.models import Instrument
from marketdata.services import instruments_resolve
from portfolio.models import Position


class SyncInstruments:
    """The instruments a sync call has met, shared by its accounts (they mostly hold the same ones):
    each is read, or created, once per call instead of once per account."""

    def __init__(self) -> None:
        self.by_id: dict[int, Instrument] = {}
        self.by_key: dict[str, Instrument] = {}
        self.by_con_id: dict[int, Instrument] = {}

    def forget(self) -> None:
        """After a rolled-back account: instruments it created are gone, so meet everything afresh."""
        self.by_id.clear()
        self.by_key.clear()
        self.by_con_id.clear()

    def _add(self, instrument: Instrument) -> None:
        self.by_id[instrument.pk] = instrument
        self.by_key[instrument.key] = instrument
        if instrument.con_id is not None:
            self.by_con_id[instrument.con_id] = instrument

    def attach(self, positions: Iterable[Position]) -> None:
        """Give loaded positions their instrument (one query for the ones not met yet)."""
        positions = list(positions)
        missing = {p.instrument_id for p in positions} - self.by_id.keys()
        if missing:
            for instrument in Instrument.objects.filter(pk__in=missing):
                self._add(instrument)
        cache = Position.instrument.field
        for position in positions:
            cache.set_cached_value(position, self.by_id[position.instrument_id])

    def for_rows(self, rows: list[BrokerPosition]) -> list[Instrument]:
        """The instrument of each row, in order: met ones at hand (IBKR's con_id first), new ones resolved."""
        found: list[Instrument | str] = []  # an instrument, or the key of a spec still to resolve
        unknown = {}
        for row in rows:
            spec = row.instrument
            known = self.by_con_id.get(spec.con_id) if spec.con_id is not None else None
            if known is None:
                key = spec.key
                known = self.by_key.get(key) if spec.con_id is None else None
                if known is None:
                    unknown[key] = spec
                    known = key
            found.append(known)
        if unknown:
            resolved = instruments_resolve(specs=unknown.values())
            for instrument in resolved.values():
                self._add(instrument)
            found = [resolved[item] if isinstance(item, str) else item for item in found]
        return found
