"""Position sync and snapshots with BROKER=ibkr over the socket against the IB Gateway simulator.

Issue #11 through the services: a failed or doubtful read never changes stored state (case 1), an
executions error does not block the position sync (2), a silent gateway costs one timeout (3), a
client id in use moves on to the next id of the pool (4), a snapshot computed while the broker is
down counts a future at its P&L, not its notional (6); and a scripted outage (connection dropped
mid-sync, gateway stopped and restarted) leaves stored state unchanged, the next sync succeeding.
"""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from core.brokers import get_broker
from core.models import SkipReason, SyncStatus
from portfolio.models import (
    AccountStatus,
    Position,
    PositionEvent,
    PositionEventKind,
    PositionSnapshot,
    PositionStatus,
    SnapshotKind,
    SnapshotSource,
)
from portfolio.services.snapshots import snapshot_take
from portfolio.services.sync import positions_sync, positions_sync_accounts
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db
LOST = "Connectivity between IB and Trader Workstation has been lost."


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def synced(gateway, account, settings):
    """The example account synced once over the socket; missing positions would be closed."""
    settings.POSITION_SYNC_MARK_MISSING_AS_CLOSED = True
    run = positions_sync(account=account, broker=get_broker())
    assert run.status == SyncStatus.SUCCESS, run.message
    assert Position.objects.filter(status=PositionStatus.OPEN).count() == 2
    return account


def stored() -> dict:
    """Everything a sync may write, to compare before and after."""
    return {
        "positions": sorted(
            Position.objects.values_list("id", "status", "quantity", "average_price", "missing_since", "closed_at")
        ),
        "events": PositionEvent.objects.count(),
        "status": list(AccountStatus.objects.values_list("net_liquidation", "total_cash", "read_at")),
    }


def add_future(gateway, *, market_price: str) -> None:
    with gateway.state.edit() as state:
        positions = gateway.state.account(state, ACCOUNT)["positions"]
        row = next((p for p in positions if p["symbol"] == "ES"), None)
        if row is None:
            row = {
                "symbol": "ES",
                "sec_type": "FUT",
                "con_id": 495512563,
                "currency": "USD",
                "exchange": "CME",
                "multiplier": "50",
                "expiry": "2026-12-18",
                "quantity": "1",
                "avg_cost": "300000",  # 6000 x 50, as IBKR reports a future's average cost
            }
            positions.append(row)
        row["market_price"] = market_price


# --- every call the services make, over the socket --------------------------------------------------
def test_sync_and_snapshot_over_the_socket(gateway, account):
    (run,) = positions_sync_accounts(broker=get_broker())
    assert run.status == SyncStatus.SUCCESS, run.message
    option = Position.objects.get(instrument__symbol="SPY")
    assert (option.quantity, option.average_price, option.current_price) == (
        Decimal("-2"),
        Decimal("5.124"),
        Decimal("4.8"),
    )
    assert AccountStatus.objects.get(account=account).net_liquidation == Decimal("100000.00")

    snapshot = snapshot_take(account=account, broker=get_broker())
    assert (snapshot.source, snapshot.net_liquidation, snapshot.positions_count) == (
        SnapshotSource.BROKER,
        Decimal("100000.00"),
        2,
    )


# --- case 1: a connectivity error followed by an empty positions answer -----------------------------
@pytest.mark.parametrize("code", [1100, 10276])
def test_connectivity_lost_then_empty_positions_changes_nothing(gateway, synced, code):
    before = stored()
    gateway.faults(positions={"errors": [{"code": code, "message": LOST}], "answer": "empty"})

    run = positions_sync(account=synced, broker=get_broker())

    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.BROKER_UNREACHABLE), run.message
    assert f"error {code}" in run.message
    assert stored() == before
    assert not PositionEvent.objects.filter(kind__in=[PositionEventKind.MISSING, PositionEventKind.CLOSED]).exists()
    snapshot = snapshot_take(account=synced, broker=get_broker())
    assert snapshot.source == SnapshotSource.COMPUTED  # never a BROKER snapshot of 0 positions
    assert snapshot.positions_count == 2


def test_another_error_during_the_positions_request_is_a_failed_request(gateway, synced):
    before = stored()
    gateway.faults(positions={"errors": [{"code": 322, "message": "Error processing request"}], "answer": "empty"})

    run = positions_sync(account=synced, broker=get_broker())

    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.REQUEST_FAILED), run.message
    assert stored() == before


# --- case 2: an error on the executions request ------------------------------------------------------
def test_an_executions_error_does_not_block_the_position_sync(gateway, synced):
    gateway.faults(executions={"error": {"code": 10187, "message": "Failed to request executions"}})
    run = positions_sync(account=synced, broker=get_broker())
    assert run.status == SyncStatus.SUCCESS, run.message


# --- case 3: a silent gateway --------------------------------------------------------------------------
def test_a_silent_gateway_skips_the_sync_after_one_timeout(gateway, synced, settings):
    settings.IBKR_TIMEOUT = 1.0
    before = stored()
    gateway.faults(**{"*": {"answer": "none"}})
    started = time.monotonic()

    run = positions_sync(account=synced, broker=get_broker())

    assert time.monotonic() - started < 2.2  # it took 3s and more
    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.BROKER_UNREACHABLE)
    assert "gave up after 1." in run.message
    assert stored() == before


# --- case 4: client id in use --------------------------------------------------------------------------
def test_a_client_id_in_use_moves_on_to_the_next_id_of_the_pool(gateway, synced, settings):
    settings.IBKR_CLIENT_IDS = [17, 18]
    gateway.faults(client_ids_in_use=[17])
    started = time.monotonic()
    run = positions_sync(account=synced, broker=get_broker())
    assert run.status == SyncStatus.SUCCESS, run.message
    assert time.monotonic() - started < 2.5  # not a 3s timeout first


# --- case 6: a future in a snapshot computed while the broker is down ---------------------------------
def test_a_computed_snapshot_counts_a_future_at_its_pnl_since_entry(gateway, account):
    add_future(gateway, market_price="6010")
    assert positions_sync(account=account, broker=get_broker()).status == SyncStatus.SUCCESS
    future = Position.objects.get(instrument__symbol="ES")
    assert (future.average_price, future.current_price) == (Decimal("6000"), Decimal("6010"))
    gateway.stop()

    snapshot = snapshot_take(account=account, broker=get_broker())

    assert snapshot.source == SnapshotSource.COMPUTED
    # cash 25000 + AAPL 15510 + SPY -960 + ES (6010 - 6000) x 1 x 50; its notional (300500) is not equity
    assert snapshot.net_liquidation == Decimal("40050.00")
    es = PositionSnapshot.objects.get(snapshot=snapshot, instrument__symbol="ES")
    assert es.unrealized_pnl == Decimal("500.00")


def test_a_computed_snapshot_counts_a_future_from_its_last_settlement(gateway, account):
    add_future(gateway, market_price="6004")
    assert positions_sync(account=account, broker=get_broker()).status == SyncStatus.SUCCESS
    Position.objects.update(opened_at=timezone.now() - timedelta(hours=6))  # opened during the session
    # The close: the broker's own snapshot at the settlement price. Cash read after it includes the
    # variation margin settled so far, (6004 - 6000) x 50.
    close = snapshot_take(account=account, broker=get_broker(), kind=SnapshotKind.CLOSE)
    assert close.source == SnapshotSource.BROKER
    add_future(gateway, market_price="6010")
    assert positions_sync(account=account, broker=get_broker()).status == SyncStatus.SUCCESS
    assert AccountStatus.objects.get(account=account).read_at >= close.taken_at
    gateway.stop()

    snapshot = snapshot_take(account=account, broker=get_broker(), at=timezone.now() + timedelta(seconds=5))

    assert snapshot.source == SnapshotSource.COMPUTED
    assert snapshot.net_liquidation == Decimal("39850.00")  # 25000 + 15510 - 960 + (6010 - 6004) x 50


# --- a scripted outage -----------------------------------------------------------------------------------
def test_a_connection_dropped_mid_sync_changes_nothing_and_the_next_sync_succeeds(gateway, synced):
    before = stored()
    gateway.faults(positions={"answer": "partial", "drop": True})

    run = positions_sync(account=synced, broker=get_broker())

    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.BROKER_UNREACHABLE), run.message
    assert stored() == before

    gateway.faults()
    after = positions_sync(account=synced, broker=get_broker())
    assert after.status == SyncStatus.SUCCESS, after.message
    assert Position.objects.filter(status=PositionStatus.OPEN).count() == 2


def test_a_gateway_restart_changes_nothing_and_the_next_sync_succeeds(gateway, synced):
    before = stored()
    gateway.stop()

    down = positions_sync(account=synced, broker=get_broker())
    assert (down.status, down.skip_reason) == (SyncStatus.SKIPPED, SkipReason.BROKER_UNREACHABLE)
    assert stored() == before

    gateway.restart()
    with gateway.state.edit() as state:  # the account moved meanwhile
        gateway.state.account(state, ACCOUNT)["positions"][0]["quantity"] = "150"
    up = positions_sync(account=synced, broker=get_broker())
    assert up.status == SyncStatus.SUCCESS, up.message
    assert Position.objects.get(instrument__symbol="AAPL", status=PositionStatus.OPEN).quantity == Decimal("150")
    assert not PositionEvent.objects.filter(kind=PositionEventKind.MISSING).exists()
