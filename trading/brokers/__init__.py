"""The only package that talks to a broker. ``get_broker()`` picks the adapter from settings."""

from django.conf import settings

from trading.brokers.base import Broker, BrokerError, BrokerUnavailable

__all__ = ["Broker", "BrokerError", "BrokerUnavailable", "get_broker"]


def get_broker(name: str | None = None) -> Broker:
    name = (name or settings.BROKER).lower()
    if name == "simulated":
        from trading.brokers.simulated import SimulatedBroker

        return SimulatedBroker(settings.BROKER_STATE_FILE)
    if name == "ibkr":
        from trading.brokers.ibkr import IBKRBroker

        return IBKRBroker(
            host=settings.IBKR_HOST,
            port=settings.IBKR_PORT,
            client_id=settings.IBKR_CLIENT_ID,
            account=settings.IBKR_ACCOUNT or None,
            timeout=settings.IBKR_TIMEOUT,
            readonly=settings.IBKR_READONLY,
        )
    raise ValueError(f"BROKER={name!r} is not one of: simulated, ibkr")
