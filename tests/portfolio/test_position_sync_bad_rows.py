"""Position sync against broker answers that are wrong (issue #16): a structurally wrong answer
changes nothing, a bad row is skipped with a warning and the good rows still land."""

from decimal import Decimal

import pytest

from core.brokers.simulated import SimulatedBroker
from core.models import SkipReason, SyncStatus
from marketdata.models import Instrument
from portfolio.models import AccountStatus, Position, PositionEvent, PositionStatus
from portfolio.services.sync import positions_sync, positions_sync_accounts
from tests.factories import AccountFactory, StockPositionRowFactory

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def sync(settings, broker_state, account):
    def run():
        return positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))

    return run


def positions_as_stored() -> list[tuple]:
    return list(
        Position.objects.order_by("pk").values_list("instrument__symbol", "status", "quantity", "missing_since")
    )


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ("positions", "oops"),
        ("positions", {"symbol": "AAPL", "quantity": "0"}),
        ("positions", 0),
        ("values", "oops"),
    ],
    ids=["positions-string", "positions-object", "positions-number", "values-string"],
)
def test_a_wrong_typed_section_skips_the_run_and_closes_nothing(settings, broker_state, sync, section, value):
    """Read as "no positions", a wrong-typed section closed every open position when
    POSITION_SYNC_MARK_MISSING_AS_CLOSED is on, and the run said SUCCESS."""
    settings.POSITION_SYNC_MARK_MISSING_AS_CLOSED = True
    assert sync().status == SyncStatus.SUCCESS
    before, events, status = positions_as_stored(), PositionEvent.objects.count(), AccountStatus.objects.get()
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)[section] = value

    run = sync()

    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.REQUEST_FAILED)
    assert section in run.message
    assert positions_as_stored() == before
    assert [row[1] for row in before] == [PositionStatus.OPEN, PositionStatus.OPEN]
    assert PositionEvent.objects.count() == events
    assert AccountStatus.objects.get().read_at == status.read_at


def test_wrong_typed_accounts_skip_every_account(settings, broker_state, account):
    settings.POSITION_SYNC_MARK_MISSING_AS_CLOSED = True
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    positions_sync_accounts(broker=broker)
    before = positions_as_stored()
    with broker_state.edit() as state:
        state["accounts"] = {"account_id": ACCOUNT}

    (run,) = positions_sync_accounts(broker=broker)

    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.REQUEST_FAILED)
    assert "accounts: a dict, not a list" in run.message  # not "account DU1234567 is not known"
    assert positions_as_stored() == before


BAD_POSITIONS = [
    {"symbol": "S" * 10_000},
    {"symbol": "BAD\x00"},
    {"symbol": "BAD", "con_id": 2**64},
    {"symbol": "BAD", "currency": "DOLLARS"},
    {"symbol": "BAD", "exchange": "E" * 100},
    {"symbol": "BAD", "multiplier": "1e-9"},
    {"symbol": "BAD", "quantity": "9999999999999", "avg_cost": "9999999999999"},
    {"symbol": "BAD", "quantity": "9999999999999", "market_price": "9999999999999"},
]


def test_bad_rows_are_skipped_with_warnings_and_the_good_rows_land(broker_state, sync):
    rows = [
        StockPositionRowFactory(symbol="GOOD", quantity="10"),
        *(StockPositionRowFactory(**bad) for bad in BAD_POSITIONS),
    ]
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["positions"] = rows

    run = sync()

    assert run.status == SyncStatus.SUCCESS and run.created == 1
    assert positions_as_stored() == [("GOOD", PositionStatus.OPEN, Decimal("10"), None)]
    assert list(Instrument.objects.values_list("symbol", flat=True)) == ["GOOD"]
    assert len(run.warnings) == len(BAD_POSITIONS)
    for index, warning in enumerate(run.warnings, start=1):
        assert f"accounts ({ACCOUNT}).positions[{index}]" in warning and "row skipped" in warning


def test_a_quantity_that_rounds_to_zero_closes_the_position_with_a_warning(broker_state, sync):
    """It was stored as an OPEN position of 0E-8: the zero check ran before the rounding."""
    assert sync().created == 2
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["positions"][0]["quantity"] = "0.000000001"

    run = sync()

    assert run.status == SyncStatus.SUCCESS and run.closed == 1
    aapl = Position.objects.get(instrument__symbol="AAPL")
    assert (aapl.status, aapl.quantity) == (PositionStatus.CLOSED, 0)
    assert any("positions[0] (AAPL)" in w and "rounds to 0" in w for w in run.warnings)


def test_a_quantity_that_rounds_to_zero_opens_nothing(broker_state, sync):
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["positions"] = [StockPositionRowFactory(symbol="DUST", quantity="-4e-9")]

    run = sync()

    assert run.status == SyncStatus.SUCCESS
    assert not Position.objects.exists()
    (warning,) = run.warnings
    assert "positions[0] (DUST)" in warning and "rounds to 0" in warning


def test_day_trades_remaining_beyond_the_column_is_not_stored_and_the_rest_is(broker_state, sync):
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["values"]["DayTradesRemaining"] = "99999999999"

    run = sync()

    assert run.status == SyncStatus.SUCCESS
    status = AccountStatus.objects.get()
    assert status.day_trades_remaining is None and status.net_liquidation == Decimal("100000.00")
    assert Position.objects.count() == 2
