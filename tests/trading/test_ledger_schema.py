"""Which references of the derived ledger rows the database checks, and that integrity still holds."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from core.brokers.simulated import SimulatedBroker
from tests.factories import AccountFactory, ExecutionRowFactory
from trading.models import DayTrade, Execution, Lot, LotMatch, RoundTrip, SettlementTracking
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db

DERIVED = {
    Lot: {"opening_execution_id", "position_opening_execution_id"},
    LotMatch: {"opening_execution_id", "closing_execution_id"},
    RoundTrip: {"opening_execution_id", "closing_execution_id"},
    DayTrade: {"opening_execution_id", "closing_execution_id"},
    SettlementTracking: {"execution_id"},
}


def _constrained_columns(model) -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {column for c in constraints.values() if c["foreign_key"] for column in c["columns"]}


@pytest.mark.parametrize("model", list(DERIVED), ids=lambda m: m.__name__)
def test_derived_rows_are_checked_through_their_fills(model):
    """The fill references are constrained; account and instrument (copies of the fill's) are not."""
    assert _constrained_columns(model) == DERIVED[model]
    for name in ("account", "instrument"):
        if any(f.name == name for f in model._meta.fields):
            assert model._meta.get_field(name).db_index  # still indexed for the ORM's CASCADE / PROTECT


@pytest.fixture
def ledger(settings, broker_state):
    account = AccountFactory(account_id="DU1234567")
    with broker_state.edit() as state:
        broker_state.account(state, "DU1234567")["executions"] = [
            ExecutionRowFactory(exec_id="o", side="BUY", quantity="10", price="10", time="2026-11-16T15:00:00Z"),
            ExecutionRowFactory(exec_id="c", side="SELL", quantity="10", price="11", time="2026-11-16T16:00:00Z"),
        ]
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    assert LotMatch.objects.count() == RoundTrip.objects.count() == DayTrade.objects.count() == 1
    return account


def test_a_derived_row_cannot_refer_to_a_missing_fill(ledger):
    match = LotMatch.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        LotMatch.objects.filter(pk=match.pk).update(closing_execution_id=Execution.objects.latest("id").pk + 1000)
        connection.check_constraints()


def test_the_orm_still_protects_and_cascades(ledger):
    match = LotMatch.objects.get()
    with pytest.raises(ProtectedError):
        match.instrument.delete()
    with pytest.raises(ProtectedError):
        ledger.delete()  # its fills are protected
    Execution.objects.get(exec_id="c").delete()
    assert not LotMatch.objects.exists() and not RoundTrip.objects.exists() and not DayTrade.objects.exists()
