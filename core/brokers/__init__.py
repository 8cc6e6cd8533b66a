"""The only package that talks to a broker. ``get_broker()`` picks the adapter from settings."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings

from core.brokers.base import Broker, BrokerError, BrokerUnavailable

__all__ = ["Broker", "BrokerError", "BrokerUnavailable", "client_id_lease", "get_broker"]


@contextmanager
def client_id_lease(pool: list[int], exclude: Iterable[int] = ()) -> Iterator[int]:
    """Borrow a client id no other process is using right now (a database lock per id, so it holds
    across web, workers and machines); BrokerUnavailable when all are taken. ``exclude``: ids not to
    borrow (the gateway refused them with error 326)."""
    from core.locks import lock_acquire, lock_release

    skipped = set(exclude)
    for client_id in pool:
        if client_id in skipped:
            continue
        name = f"ibkr.client_id.{client_id}"
        token = lock_acquire(name=name)
        if token is None:
            continue
        try:
            yield client_id
        finally:
            lock_release(name=name, token=token)
        return
    raise BrokerUnavailable(
        f"every IBKR client id in IBKR_CLIENT_IDS ({', '.join(map(str, pool))}) is in use by another process; "
        "allow more ids than there are worker processes"
    )


def get_broker(name: str | None = None) -> Broker:
    name = (name or settings.BROKER).lower()
    if name == "simulated":
        from core.brokers.simulated import SimulatedBroker

        return SimulatedBroker(settings.BROKER_STATE_FILE)
    if name == "ibkr":
        from core.brokers.ibkr import IBKRBroker, OptionsFlowLimits
        from core.brokers.pacing import pacing_acquire

        return IBKRBroker(
            host=settings.IBKR_HOST,
            port=settings.IBKR_PORT,
            client_id=settings.IBKR_CLIENT_ID,
            account=settings.IBKR_ACCOUNT or None,
            timeout=settings.IBKR_TIMEOUT,
            readonly=settings.IBKR_READONLY,
            client_id_lease=lambda exclude=(): client_id_lease(settings.IBKR_CLIENT_IDS, exclude),
            options_flow=OptionsFlowLimits(
                expiries=settings.IBKR_OPTIONS_EXPIRIES,
                strikes=settings.IBKR_OPTIONS_STRIKES,
                max_contracts=settings.IBKR_OPTIONS_MAX_CONTRACTS,
                market_data_lines=settings.IBKR_MARKET_DATA_LINES,
                market_data_type=settings.IBKR_OPTIONS_MARKET_DATA_TYPE,
                tick_wait=settings.IBKR_OPTIONS_TICK_WAIT,
                time_zone=settings.EXCHANGE_TIME_ZONE,
            ),
            pacer=pacing_acquire,
        )
    raise ValueError(f"BROKER={name!r} is not one of: simulated, ibkr")
