"""Fixtures shared by the whole suite (the root conftest.py points BROKER_STATE_FILE at a tmp file).

- ``broker_state``: writes the example state of broker-state.md to the state file and returns a
  ``BrokerStateFile`` to rewrite it (``.write(dict)``, ``.write_raw(text)``, ``with .edit() as s``).
- ``simulated_broker``: a ``SimulatedBroker`` reading that file. It does not write the file, so a
  test that wants "the file is missing" asks for ``simulated_broker`` alone.
- ``gateway``: the IB Gateway simulator serving that file on a free loopback port, with settings
  pointing ``BROKER=ibkr`` at it (tests/gateway.py).
- ``other_process``: holders of work in another process, alive or dead (``tests/holders.py``).
"""

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import DatabaseError, connection

from core import holders
from core.brokers.gateway_sim import SimulatorThread
from core.brokers.simulated import SimulatedBroker
from tests.factories import broker_state_example
from tests.gateway import Gateway
from tests.holders import OtherProcess


class BrokerStateFile:
    """The broker state file of one test. Every write replaces the whole file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, state: dict) -> dict:
        self.path.write_text(json.dumps(state, indent=2), encoding="utf-8")
        return state

    def write_raw(self, content: str | bytes) -> None:
        """Write bytes or text as they are, for files that are not valid JSON or not UTF-8."""
        if isinstance(content, bytes):
            self.path.write_bytes(content)
        else:
            self.path.write_text(content, encoding="utf-8")

    def read(self) -> dict:
        return json.loads(self.path.read_text(encoding="utf-8"))

    @contextmanager
    def edit(self) -> Iterator[dict]:
        """``with broker_state.edit() as state: state["connected"] = False`` rewrites the file."""
        state = self.read()
        yield state
        self.write(state)

    def account(self, state: dict, account_id: str) -> dict:
        """The row of ``account_id`` in ``state`` (a dict from ``read()`` or ``edit()``)."""
        return next(row for row in state["accounts"] if row.get("account_id") == account_id)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # Factories hash a password for every user; the default hasher is deliberately slow.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def broker_state(settings) -> BrokerStateFile:
    state_file = BrokerStateFile(Path(settings.BROKER_STATE_FILE))
    state_file.write(broker_state_example())
    return state_file


@pytest.fixture
def simulated_broker(settings) -> SimulatedBroker:
    return SimulatedBroker(settings.BROKER_STATE_FILE)


@pytest.fixture
def gateway(settings, broker_state) -> Iterator[Gateway]:
    with SimulatorThread(settings.BROKER_STATE_FILE, port=0) as thread:
        settings.BROKER = "ibkr"
        settings.IBKR_HOST = "127.0.0.1"
        settings.IBKR_PORT = thread.port
        settings.IBKR_CLIENT_ID = 17
        settings.IBKR_CLIENT_IDS = [17, 18, 19, 20]
        settings.IBKR_ACCOUNT = ""
        settings.IBKR_TIMEOUT = 3.0
        settings.IBKR_READONLY = True
        yield Gateway(thread, broker_state)


@pytest.fixture(autouse=True)
def _work_let_go(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test's rows are rolled back, but its PostgreSQL session keeps the advisory locks it took, and
    this process its list of work held (core.holders): let go of both, as the process's end would,
    so a lock name taken in one test does not look held in the next. A test without database access
    took no lock, and may not touch the connection an earlier test left open."""
    yield
    holders._held.clear()
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    if uses_db and connection.vendor == "postgresql" and connection.connection is not None:
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock_all()")


@pytest.fixture
def other_process() -> Iterator[OtherProcess]:
    helper = OtherProcess()
    yield helper
    helper.close()
