"""A paper round trip shows up everywhere a broker's would: trades, round trips, day trades, PDT status,
positions, snapshots and metrics."""

from datetime import timedelta
from decimal import Decimal

import pytest

from core.brokers.memory import MemoryBroker
from marketdata.models import Quote
from portfolio.models import Position, PositionStatus, SnapshotSource
from portfolio.services.metrics import metrics_compute
from portfolio.services.snapshots import snapshot_take
from trading.calendars import trade_date_of
from trading.models import DayTrade, Execution, OrderStatus, RoundTrip, RoundTripOutcome
from trading.selectors import pdt_status_get
from trading.services.orders import OrderInput, order_execute

pytestmark = pytest.mark.django_db


def test_a_paper_round_trip_reaches_the_whole_ledger(paper_account, aapl, clock, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        bought = order_execute(
            account=paper_account,
            data=OrderInput(client_order_id="buy", symbol="AAPL", side="BUY", quantity=Decimal(50)),
        ).order
    assert callbacks, "the fill is announced to the layers above after commit"
    assert bought.status == OrderStatus.FILLED
    position = Position.objects.get(account=paper_account)  # built from the paper fill by portfolio's hook
    assert position.status == PositionStatus.OPEN and position.quantity == Decimal(50)

    clock.set(clock.now + timedelta(hours=2))
    Quote.objects.update(bid=Decimal("101.00"), ask=Decimal("101.10"), at=clock.now)
    with django_capture_on_commit_callbacks(execute=True):
        sold = order_execute(
            account=paper_account,
            data=OrderInput(client_order_id="sell", symbol="AAPL", side="SELL", quantity=Decimal(50)),
        ).order
    assert sold.status == OrderStatus.FILLED and sold.average_fill_price == Decimal("101.00")

    fills = Execution.objects.filter(account=paper_account, broker="paper").order_by("executed_at")
    assert [f.side for f in fills] == ["BUY", "SELL"]
    trip = RoundTrip.objects.get(account=paper_account)
    # (101.00 - 100.00) x 50 - 1.00 - 1.00 commissions (0.25 each, raised to the 1.00 minimum)
    assert trip.realized_pnl == Decimal("48.0000") and trip.outcome == RoundTripOutcome.WIN
    assert DayTrade.objects.filter(account=paper_account).count() == 1  # opened and closed the same day
    status = pdt_status_get(account=paper_account, as_of=trade_date_of(clock.now))
    assert status.day_trades == 1
    position.refresh_from_db()
    assert position.status == PositionStatus.CLOSED and position.realized_pnl == Decimal("48.0000")

    snapshot = snapshot_take(account=paper_account, broker=MemoryBroker(accounts=[]), at=clock.now)
    assert snapshot.source == SnapshotSource.PAPER
    assert snapshot.net_liquidation == Decimal("100048.0000")  # the deposit plus the round trip
    assert snapshot.positions_count == 0

    metrics = {m.window: m for m in metrics_compute(account=paper_account, as_of=trade_date_of(clock.now))}
    assert metrics["all"].round_trips == 1 and metrics["all"].win_rate == Decimal(1)


def test_a_paper_snapshot_values_open_positions_at_the_stored_quote(paper_account, aapl, clock):
    order_execute(
        account=paper_account, data=OrderInput(client_order_id="b", symbol="AAPL", side="BUY", quantity=Decimal(10))
    )
    Quote.objects.update(bid=Decimal("109.90"), ask=Decimal("110.10"))  # mid 110.00
    snapshot = snapshot_take(account=paper_account, broker=MemoryBroker(accounts=[]), at=clock.now)
    # cash 100,000 - 1,000 - 1.00 commission; 10 x 110.00 held
    assert snapshot.total_cash == Decimal("98999.0000")
    assert snapshot.net_liquidation == Decimal("100099.0000")
    held = snapshot.positions.get()
    assert held.price == Decimal("110.00000000") and held.unrealized_pnl == Decimal("99.0000")


def test_the_position_sync_and_the_executions_ingest_leave_paper_accounts_alone(paper_account):
    from trading.services.accounts import accounts_select

    selection = accounts_select(broker=MemoryBroker(accounts=[]), account_ids=[paper_account.account_id])
    assert selection.accounts == []
