"""The IB Gateway simulator for tests: started on a free loopback port (port 0), serving the test's
broker state file, so parallel runs never clash.

``gateway`` (a fixture in tests/conftest.py) yields a ``Gateway``: ``.port``, ``.broker(...)`` for an
``IBKRBroker`` pointed at it, ``.faults(...)`` to script a failing gateway, ``.restart()``.
"""

from typing import Any

from core.brokers.gateway_sim import SimulatorThread
from core.brokers.ibkr import IBKRBroker

HOST = "127.0.0.1"


class Gateway:
    def __init__(self, thread: SimulatorThread, state: Any) -> None:
        self.thread = thread
        self.state = state  # tests.conftest.BrokerStateFile

    @property
    def port(self) -> int:
        return self.thread.port

    @property
    def sim(self):
        return self.thread.sim

    def broker(self, **options: Any) -> IBKRBroker:
        """An IBKRBroker on the simulator (no client-id pool unless ``client_id_lease`` is given)."""
        grace = options.pop("commission_grace_seconds", None)
        settings = {"host": HOST, "port": self.port, "client_id": 17, "timeout": 3.0, **options}
        broker = IBKRBroker(**settings)
        if grace is not None:
            broker.commission_grace_seconds = grace
        return broker

    def faults(self, **faults: Any) -> None:
        """Replace the state file's ``faults`` (``faults()`` clears them)."""
        with self.state.edit() as state:
            state["faults"] = dict(faults)

    def stop(self) -> None:
        self.thread.stop()

    def restart(self) -> None:
        self.thread.restart()
