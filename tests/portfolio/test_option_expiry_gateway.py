"""Issue #18 over the socket: the IB Gateway simulator scripts an expiry weekend (an option row with
``at_expiry``: gone after its expiry day's close, the stock moved by the deliverable), and the sync
through the IBKR adapter settles it as it does with the simulated broker."""

from decimal import Decimal

import pytest

from core.brokers import get_broker
from portfolio.models import Position, PositionEventKind, PositionStatus
from portfolio.services.sync import positions_sync
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT
from tests.factories import AccountFactory, ExecutionRowFactory, OptionPositionRowFactory
from trading.models import Execution
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
PUT = {"symbol": "XYZ", "con_id": 712345001, "expiry": "2026-11-20", "strike": "50", "right": "P"}


def test_an_assignment_scripted_at_the_gateway_is_settled_by_the_sync(gateway):
    account = AccountFactory(account_id=ACCOUNT)
    with gateway.state.edit() as state:
        row = gateway.state.account(state, ACCOUNT)
        row["positions"] = [OptionPositionRowFactory(**PUT, quantity="-1", avg_cost="200", market_price="0.01")]
        row["executions"] = [
            ExecutionRowFactory(
                **PUT, sec_type="OPT", multiplier="100", side="SELL", quantity="1", price="2.00", commission="0",
                time="2026-11-16T15:00:00Z",
            )
        ]  # fmt: skip
    broker = get_broker()
    assert executions_ingest(account=account, broker=broker).status == "SUCCESS"
    assert positions_sync(account=account, broker=broker).status == "SUCCESS"
    option = Position.objects.get(instrument__symbol="XYZ", instrument__sec_type="OPT")
    assert option.status == PositionStatus.OPEN  # still listed: the weekend's processing

    with gateway.state.edit() as state:
        gateway.state.account(state, ACCOUNT)["positions"][0]["at_expiry"] = "assign"
    run = positions_sync(account=account, broker=broker)
    assert run.status == "SUCCESS", run.message

    option.refresh_from_db()
    assert option.status == PositionStatus.CLOSED
    assert option.events.order_by("at", "id").last().kind == PositionEventKind.ASSIGNED
    shares = Position.objects.get(instrument__symbol="XYZ", instrument__sec_type="STK", status=PositionStatus.OPEN)
    assert (shares.quantity, shares.average_price) == (Decimal(100), Decimal("48.00"))
    assert not shares.events.filter(kind=PositionEventKind.RECONCILE).exists()
    assert Execution.objects.filter(exec_id__startswith="optx-").count() == 2
