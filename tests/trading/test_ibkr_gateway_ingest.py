"""Issue #11, case 5, through the execution ingest with BROKER=ibkr over the gateway simulator.

A commission report that comes later than the adapter's short wait after the executions answer is
stored as "none yet"; the next ingest, once the report comes with the executions, updates the fill and
everything derived from it (round trip, realized P&L, the sale's settlement cash).
"""

from decimal import Decimal

import pytest

from core.brokers import get_broker
from core.models import SyncStatus
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT
from tests.factories import AccountFactory, ExecutionRowFactory
from trading.models import Execution, RoundTrip, SettlementTracking
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
SELL = "0000e0d5.6553a1b2.02.01"


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


def round_trip_fills(gateway, *, sell_commission_delay: str | None) -> None:
    buy = ExecutionRowFactory(
        exec_id="0000e0d5.6553a1b2.01.01", side="BUY", quantity="100", price="150.25", commission="1.00",
        time="2026-11-20T14:32:15Z", order_id=12, perm_id=987654,
    )  # fmt: skip
    sell = ExecutionRowFactory(
        exec_id=SELL, side="SELL", quantity="100", price="155.00", commission="1.20", time="2026-11-20T15:40:00Z",
        order_id=13, perm_id=987655,
    )  # fmt: skip
    if sell_commission_delay is not None:
        sell["commission_delay"] = sell_commission_delay  # the report trails the executions answer
    with gateway.state.edit() as state:
        gateway.state.account(state, ACCOUNT)["executions"] = [buy, sell]


def test_a_late_commission_is_stored_by_the_next_ingest_with_the_ledger(gateway, account):
    round_trip_fills(gateway, sell_commission_delay="3")
    first = executions_ingest(account=account, broker=get_broker())
    assert first.status == SyncStatus.SUCCESS, first.message
    sale = Execution.objects.get(exec_id=SELL)
    assert sale.commission is None
    trip = RoundTrip.objects.get(account=account)
    assert trip.commissions == Decimal("1.00")
    assert trip.realized_pnl == Decimal("474.00")  # (155.00 - 150.25) x 100 - 1.00
    assert SettlementTracking.objects.get(execution=sale).amount == Decimal("15500.00")

    round_trip_fills(gateway, sell_commission_delay=None)  # by now IBKR sends the report with the fill
    later = executions_ingest(account=account, broker=get_broker())

    assert later.status == SyncStatus.SUCCESS, later.message
    assert later.updated == 1
    sale.refresh_from_db()
    assert sale.commission == Decimal("1.20")
    trip = RoundTrip.objects.get(account=account)
    assert trip.commissions == Decimal("2.20")
    assert trip.realized_pnl == Decimal("472.80")
    assert SettlementTracking.objects.get(execution=sale).amount == Decimal("15498.80")
    assert Execution.objects.filter(account=account).count() == 2  # updated, never doubled


def test_an_error_on_the_executions_request_skips_the_ingest_as_a_failed_request(gateway, account):
    gateway.faults(executions={"error": {"code": 10187, "message": "Failed to request executions"}})
    run = executions_ingest(account=account, broker=get_broker())
    assert run.status == SyncStatus.SKIPPED
    assert run.skip_reason == "REQUEST_FAILED" and "10187" in run.message
    assert not Execution.objects.exists()
