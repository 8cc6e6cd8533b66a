"""Two syncs of one account at once: the database lets exactly one run, the other is SKIPPED."""

import threading

import pytest
from django.db import connection, connections

from core.brokers.simulated import SimulatedBroker
from core.models import SyncRun, SyncStatus
from portfolio.models import Position, PositionEvent
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory


class GatedBroker(SimulatedBroker):
    """Holds the first positions() call until released, so a second sync overlaps it."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()

    def positions(self, account_id):
        self.entered.set()
        assert self.release.wait(timeout=30), "test never released the first sync"
        return super().positions(account_id)


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_of_one_account_run_once(settings, broker_state):
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("needs a database that several connections share (PostgreSQL in CI)")
    account = AccountFactory(account_id="DU1234567")
    with broker_state.edit() as state:
        # No fills: the sync's own events only (with fills, the ingest a sync asks for after commit
        # would build positions from them and add theirs).
        broker_state.account(state, "DU1234567")["executions"] = []
    broker = GatedBroker(settings.BROKER_STATE_FILE)
    results: dict[str, SyncRun] = {}

    def first() -> None:
        try:
            results["first"] = positions_sync(account=account, broker=broker)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert broker.entered.wait(timeout=30)
        # The first sync holds its RUNNING run and sits inside the broker call.
        second = positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    finally:
        broker.release.set()
        thread.join(timeout=60)

    assert second.status == SyncStatus.SKIPPED
    assert second.message == "another sync is running"
    assert results["first"].status == SyncStatus.SUCCESS
    assert Position.objects.count() == 2
    assert PositionEvent.objects.count() == 2  # one OPENED each, not doubled
    assert SyncRun.objects.filter(status=SyncStatus.RUNNING).count() == 0
