"""Schemathesis fuzzes every operation of the OpenAPI schema, in-process, as a logged-in trader.

The schema is the one the app serves at /api/schema/ (drf-spectacular). For each operation Schemathesis
sends the schema's examples, its coverage cases (each parameter missing, empty, at and beyond its
bounds, of the wrong type, with NUL characters...) and ``FUZZ_EXAMPLES`` generated requests, valid and
invalid ones. It is seeded and derandomized: every run sends the same requests. Every answer must
be no server error (5xx) and, where the schema describes the status, match the schema.

The trader has one account (the broker state file's example) with positions, fills, round trips,
a day trade, settlements, a cash state, snapshots and metrics, so that answers carry real rows.
``make test`` runs it (on PostgreSQL in CI); ``-m fuzz`` selects it; ``-m "not fuzz"`` leaves it out.
"""

import time
import uuid
from datetime import UTC, date, datetime

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance

from core.brokers.simulated import SimulatedBroker
from portfolio.services.metrics import metrics_compute
from portfolio.services.snapshots import snapshot_take
from portfolio.services.sync import positions_sync
from tests.factories import EXAMPLE_ACCOUNT_ID, AccountFactory, ExecutionRowFactory, UserFactory
from trading.models import AccountType
from trading.services.executions import executions_ingest
from trading.services.ledger import cash_state_recompute

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

SEED = 16
FUZZ_EXAMPLES = 25  # generated requests per operation, on top of its examples and coverage cases
BUDGET_SECONDS = 240  # all operations together; a run over it fails rather than slowing CI down unnoticed
# Values that broke this API before (issue #16), mixed into what is generated: any string parameter
# or field is one of HOSTILE_STRINGS this often, and ``account`` is the trader's real account (so
# that the other parameters reach the code behind it) or one holding a NUL character.
HOSTILE_STRINGS = [
    "\x00",
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
]
ACCOUNTS = [EXAMPLE_ACCOUNT_ID, EXAMPLE_ACCOUNT_ID, EXAMPLE_ACCOUNT_ID, "DU\x00", "\x00"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "dictionaries": {"hostile": {"values": HOSTILE_STRINGS}, "accounts": {"values": ACCOUNTS}},
        "parameters": {
            "query.account": {"dictionary": "accounts", "probability": 0.6},
            "body.account": {"dictionary": "accounts", "probability": 0.6},
        },
        "generation": {
            "mode": "all",
            "max-examples": FUZZ_EXAMPLES,
            "deterministic": True,
            "database": "none",
            "dictionaries": {"string": {"dictionary": "hostile", "probability": 0.2}},
        },
        "phases": {"stateful": {"enabled": False}},
    }
)
CHECKS = [not_a_server_error, response_schema_conformance]


def fill(exec_id: str, side: str, quantity: str, price: str, time_: str, **extra) -> dict:
    return ExecutionRowFactory(
        exec_id=exec_id, side=side, quantity=quantity, price=price, time=time_, commission="1.00", **extra
    )


SENT: dict[str, int] = {}  # requests per operation, for the summary printed at the end (-s shows it)


@pytest.fixture(scope="module")
def started():
    start = time.monotonic()
    yield start
    print(  # the run's size, for whoever tunes FUZZ_EXAMPLES
        f"\nAPI fuzzing: {len(SENT)} operations, {sum(SENT.values())} requests "
        f"({min(SENT.values(), default=0)}..{max(SENT.values(), default=0)} per operation) "
        f"in {time.monotonic() - start:.1f} s"
    )


@pytest.fixture(autouse=True)
def _one_connection_per_test():
    # As Django's test client does: a request must not close the connection holding the test's
    # transaction (PostgreSQL; an in-memory SQLite connection is never closed).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def trader(settings, broker_state):
    # The sync throttle counts in the cache: one of this test's own.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }
    trader = UserFactory()
    account = AccountFactory(account_id=EXAMPLE_ACCOUNT_ID, account_type=AccountType.CASH, users=[trader])
    with broker_state.edit() as state:
        broker_state.account(state, EXAMPLE_ACCOUNT_ID)["executions"] = [
            fill("f1", "BUY", "100", "10.00", "2026-11-16T15:00:00Z", perm_id=1),
            fill("f2", "SELL", "100", "11.00", "2026-11-16T16:00:00Z", perm_id=2),
            fill("f3", "BUY", "10", "50.00", "2026-11-17T15:00:00Z", perm_id=3, symbol="MSFT", con_id=272093),
        ]
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    positions_sync(account=account, broker=broker)
    executions_ingest(account=account, broker=broker)
    cash_state_recompute(account=account, today=date(2026, 11, 20))
    snapshot_take(account=account, broker=broker, at=datetime(2026, 11, 20, 15, tzinfo=UTC))
    metrics_compute(account=account, as_of=date(2026, 11, 20))
    return trader


@pytest.fixture
def token(trader) -> str:
    return Token.objects.create(user=trader).key


# Loaded when the module is imported (a lazy schema from a fixture needs pytest internals that pytest
# 9.2 dropped). Reading the schema touches no database: anonymous, with the docs opened for it.
with override_settings(API_DOCS_PUBLIC=True):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)


@schema.parametrize()
# The trader and their data are made once per operation and shared by its requests, on purpose.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_answer_is_no_server_error_and_as_the_schema_says(case, token, started):
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_SECONDS, f"API fuzzing took over {BUDGET_SECONDS} s: lower FUZZ_EXAMPLES"
    response = case.call(headers={"Authorization": f"Token {token}"})
    SENT[case.operation.label] = SENT.get(case.operation.label, 0) + 1
    case.validate_response(response, checks=CHECKS)
