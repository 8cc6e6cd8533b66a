"""Once the fills are known, positions are built from them: the real realized P&L, linked executions,
times of the fills; what the broker saw first is a RECONCILE difference until the fills explain it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from portfolio.models import Position, PositionEventKind, PositionStatus
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory, ExecutionRowFactory, StockPositionRowFactory
from trading.models import Execution
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def broker(settings, broker_state):
    return SimulatedBroker(settings.BROKER_STATE_FILE)


def set_state(broker_state, *, positions, executions):
    with broker_state.edit() as state:
        row = broker_state.account(state, ACCOUNT)
        row["positions"] = positions
        row["executions"] = executions


def aapl_position(quantity: str) -> dict:
    return StockPositionRowFactory(
        symbol="AAPL", con_id=265598, quantity=quantity, avg_cost="150.01", market_price="160.00"
    )


def test_open_then_closed_position_gets_the_real_pnl_and_its_executions(account, broker, broker_state):
    opened = timezone.now() - timedelta(hours=2)
    buy = ExecutionRowFactory(
        exec_id="b1", side="BUY", quantity="100", price="150.00", commission="1.00", time=iso(opened)
    )
    set_state(broker_state, positions=[aapl_position("100")], executions=[buy])
    positions_sync(account=account, broker=broker)
    executions_ingest(account=account, broker=broker)
    positions_sync(account=account, broker=broker)
    position = Position.objects.get(instrument__symbol="AAPL")
    assert position.opening_execution.exec_id == "b1"
    assert position.realized_pnl == 0 and position.realized_pnl_estimated is False
    # Opened when the fill says, not when the first sync saw it.
    assert position.opened_at == position.opening_execution.executed_at == opened.replace(microsecond=0)

    sell = ExecutionRowFactory(
        exec_id="s1", side="SELL", quantity="100", price="155.00", commission="1.00", time=iso(timezone.now())
    )
    set_state(broker_state, positions=[aapl_position("0")], executions=[buy, sell])
    positions_sync(account=account, broker=broker)  # the sale is not in the fills yet: a difference
    position.refresh_from_db()
    assert position.status == PositionStatus.OPEN and position.broker_quantity == 0
    assert position.events.filter(kind=PositionEventKind.RECONCILE, resolved_at__isnull=True).exists()
    executions_ingest(account=account, broker=broker)
    positions_sync(account=account, broker=broker)
    position.refresh_from_db()
    assert position.realized_pnl == Decimal("498.00")  # 100 x (155 - 150) - 2 x 1.00
    assert position.realized_pnl_estimated is False and position.status == PositionStatus.CLOSED
    assert position.closing_execution == Execution.objects.get(exec_id="s1")
    assert position.closed_at == position.closing_execution.executed_at
    assert not position.events.filter(kind=PositionEventKind.RECONCILE, resolved_at__isnull=True).exists()


def test_vanished_position_is_closed_when_the_fills_show_it_went_flat(account, broker, broker_state, settings):
    assert settings.POSITION_SYNC_MARK_MISSING_AS_CLOSED is False
    opened = timezone.now() - timedelta(hours=2)
    buy = ExecutionRowFactory(
        exec_id="b1", side="BUY", quantity="100", price="150.00", commission="1.00", time=iso(opened)
    )
    set_state(broker_state, positions=[aapl_position("100")], executions=[buy])
    positions_sync(account=account, broker=broker)
    sell = ExecutionRowFactory(
        exec_id="s1", side="SELL", quantity="100", price="140.00", commission="1.00", time=iso(timezone.now())
    )
    set_state(broker_state, positions=[], executions=[buy, sell])  # not listed at all any more
    positions_sync(account=account, broker=broker)  # no fills yet: "sync" mode, the MISSING rule
    position = Position.objects.get(instrument__symbol="AAPL")
    assert position.status == PositionStatus.OPEN and position.missing_since is not None
    executions_ingest(account=account, broker=broker)
    positions_sync(account=account, broker=broker)
    position.refresh_from_db()
    assert position.status == PositionStatus.CLOSED
    assert position.realized_pnl == Decimal("-1002.00") and position.realized_pnl_estimated is False
    kinds = list(position.events.order_by("at", "id").values_list("kind", "execution__exec_id"))
    assert (PositionEventKind.CLOSED, "s1") in kinds and position.missing_since is None


def test_position_that_disagrees_with_the_fills_keeps_the_fills_figure_and_notes_the_broker(
    account, broker, broker_state
):
    buy = ExecutionRowFactory(
        exec_id="b1",
        side="BUY",
        quantity="40",
        price="150.00",
        commission="1.00",
        time=iso(timezone.now() - timedelta(hours=2)),
    )
    set_state(broker_state, positions=[aapl_position("100")], executions=[buy])  # fills incomplete
    positions_sync(account=account, broker=broker)
    executions_ingest(account=account, broker=broker)
    positions_sync(account=account, broker=broker)
    position = Position.objects.get(instrument__symbol="AAPL")
    assert position.opening_execution.exec_id == "b1" and position.quantity == 40
    assert position.broker_quantity == 100
    [difference] = position.events.filter(kind=PositionEventKind.RECONCILE)
    assert (difference.quantity_before, difference.quantity_after) == (40, 100)
