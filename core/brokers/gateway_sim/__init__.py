"""An IB Gateway simulator: the broker state file served over the TWS API socket protocol.

``protocol`` (framing, message ids), ``messages`` (the gateway's messages as ib_async 2.1.0 reads
them), ``state`` (state file -> what IBKR would send), ``server`` (the asyncio server, faults,
orders). Run it with ``python manage.py ibgateway_sim``; tests use ``SimulatorThread``.
"""

from core.brokers.gateway_sim.server import GatewaySimulator, SimulatorThread

__all__ = ["GatewaySimulator", "SimulatorThread"]
