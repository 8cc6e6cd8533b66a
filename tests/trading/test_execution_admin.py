"""Staff correct fills in the admin: a reason is required, history keeps it, the ledger follows."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client

from tests.factories import AccountFactory, UserFactory
from trading.models import Execution, SettlementTracking

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(broker_state):
    AccountFactory(account_id="DU1234567")
    call_command("ingest_executions")
    client = Client()
    client.force_login(UserFactory(superuser=True))
    return client


def form_data(execution: Execution, **changes) -> dict:
    data = {
        "broker": execution.broker,
        "exec_id": execution.exec_id,
        "account": execution.account_id,
        "instrument": execution.instrument_id,
        "side": execution.side,
        "quantity": str(execution.quantity),
        "price": str(execution.price),
        "commission": str(execution.commission or ""),
        "commission_currency": execution.commission_currency,
        "executed_at_0": execution.executed_at.strftime("%Y-%m-%d"),
        "executed_at_1": execution.executed_at.strftime("%H:%M:%S"),
        "settlement_date": execution.settlement_date.isoformat() if execution.settlement_date else "",
        "broker_settlement_date": "",
        "order_id": execution.order_id or "",
        "perm_id": execution.perm_id or "",
        "exchange": execution.exchange,
    }
    data.update(changes)
    return data


def test_correction_needs_a_reason(staff_client):
    execution = Execution.objects.get()
    response = staff_client.post(
        f"/admin/trading/execution/{execution.pk}/change/", form_data(execution, commission="0.50")
    )
    assert response.status_code == 200 and "reason" in response.content.decode()
    execution.refresh_from_db()
    assert execution.commission == Decimal("1.0000")


def test_correction_is_kept_with_who_and_why_and_recomputes(staff_client):
    execution = Execution.objects.get()
    response = staff_client.post(
        f"/admin/trading/execution/{execution.pk}/change/",
        form_data(execution, commission="0.50", reason="broker refund"),
    )
    assert response.status_code == 302
    execution.refresh_from_db()
    assert execution.commission == Decimal("0.5000") and execution.staff_fields == ["commission"]
    record = execution.history.first()
    assert record.history_change_reason == "broker refund" and record.history_user is not None
    assert SettlementTracking.objects.get(execution=execution).amount == Decimal("-15025.5000")
    call_command("ingest_executions")  # the broker still says 1.00: the correction stands
    execution.refresh_from_db()
    assert execution.commission == Decimal("0.5000") and execution.broker_disagreement == {"commission": "1.0000"}
