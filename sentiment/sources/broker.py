"""Options flow from the broker (``OPTIONS_FLOW_SOURCE=broker``): the option prints of the tracked
underlyings through the broker boundary, passed on as they are (this boundary's ``OptionsPrint`` is the
broker's ``OptionPrint``).

Only a broker adapter that offers ``option_prints`` gives flow (the simulated broker, reading
``option_flow`` from its state file, and the IBKR adapter, deriving prints from the option contracts'
day volume); with another the run is SKIPPED saying so. Broker errors propagate as BrokerUnavailable /
BrokerError: the run is SKIPPED as for any broker outage.

``known_volumes`` is what this source's stored prints already cover (``options_known_volumes``): an
adapter that derives prints from day volume reports only the volume beyond it, so a print is never
counted twice and volume a failed run did not store is reported by the next one.
"""

from collections.abc import Mapping

from core.brokers import get_broker
from sentiment.sources.base import SourceBatch, SourceUnavailable


class BrokerOptionsSource:
    name = "broker"

    def __init__(self, broker=None) -> None:
        self.broker = broker or get_broker()

    def options_flow(self, *, underlyings: list[str], known_volumes: Mapping | None = None) -> SourceBatch:
        fetch = getattr(self.broker, "option_prints", None)
        if fetch is None:
            raise SourceUnavailable(
                f"broker {getattr(self.broker, 'name', type(self.broker).__name__)!r} gives no options flow"
            )
        fetched = fetch(underlyings, known_volumes=known_volumes or {})
        return SourceBatch(prints=tuple(fetched.items), warnings=tuple(fetched.warnings))
