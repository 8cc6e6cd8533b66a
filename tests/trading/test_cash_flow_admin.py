"""Staff enter and edit deposits and withdrawals: the cash flow and the recomputed ledger go together."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.factories import AccountFactory
from trading.models import CashFlow, CashFlowKind, ExecutionSource
from trading.services import corrections
from trading.services.corrections import cash_flow_save

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return AccountFactory(cash=True)


@pytest.fixture
def recomputes(monkeypatch) -> list[dict]:
    """Record every ledger recompute the service asks for (and still run it)."""
    calls: list[dict] = []
    real = corrections.ledger_recompute

    def recording(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(corrections, "ledger_recompute", recording)
    return calls


@pytest.fixture
def failing_recompute(monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("recompute failed")

    monkeypatch.setattr(corrections, "ledger_recompute", fail)


def deposit(account, **fields) -> CashFlow:
    values = {
        "account": account,
        "flow_id": "staff-1",
        "kind": CashFlowKind.DEPOSIT,
        "amount": Decimal("1000.0000"),
        "at": datetime(2026, 11, 16, 15, tzinfo=UTC),
        "source": ExecutionSource.STAFF,
        **fields,
    }
    return CashFlow(**values)


def test_saving_recomputes_the_accounts_cash_ledger(account, recomputes):
    saved = cash_flow_save(cash_flow=deposit(account))

    assert CashFlow.objects.get().pk == saved.pk
    assert recomputes == [{"account": account, "affected": {}, "cash_changed": True}]


def test_a_failed_recompute_leaves_a_new_cash_flow_unsaved(account, failing_recompute):
    with pytest.raises(RuntimeError, match="recompute failed"):
        cash_flow_save(cash_flow=deposit(account))

    assert not CashFlow.objects.exists()


def test_a_failed_recompute_leaves_an_edited_cash_flow_as_it_was(account, failing_recompute):
    stored = deposit(account)
    stored.save()
    edited = CashFlow.objects.get(pk=stored.pk)
    edited.amount = Decimal("2500.0000")

    with pytest.raises(RuntimeError):
        cash_flow_save(cash_flow=edited)

    assert CashFlow.objects.get(pk=stored.pk).amount == Decimal("1000.0000")


def test_the_admin_saves_through_the_service(admin_client, account, recomputes):
    response = admin_client.post(
        "/admin/trading/cashflow/add/",
        {
            "account": account.pk,
            "flow_id": "staff-1",
            "kind": CashFlowKind.WITHDRAWAL,
            "amount": "250.00",
            "currency": "USD",
            "at_0": "2026-11-16",
            "at_1": "10:00:00",
            "source": ExecutionSource.STAFF,
            "note": "wire",
        },
    )

    assert response.status_code == 302, response.content
    flow = CashFlow.objects.get()
    assert (flow.kind, flow.amount, flow.account) == (CashFlowKind.WITHDRAWAL, Decimal("250.0000"), account)
    assert [call["account"] for call in recomputes] == [account]
