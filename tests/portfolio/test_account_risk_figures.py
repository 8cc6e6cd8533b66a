"""The account figures portfolio gives trading's order checks: the broker's status and the previous close
with the net flows since it, read in one query."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from portfolio.models import AccountSnapshot, AccountStatus, SnapshotKind, SnapshotSource
from portfolio.selectors import account_risk_figures_get
from tests.factories import AccountFactory
from trading.hooks import AccountFigures
from trading.models import CashFlow, CashFlowKind

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)  # trade date 2026-12-08


@pytest.fixture(autouse=True)
def now(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


def _snapshot(account, at: datetime, value: str | None) -> None:
    AccountSnapshot.objects.create(
        account=account,
        taken_at=at,
        trade_date=at.date(),
        kind=SnapshotKind.CLOSE,
        source=SnapshotSource.PAPER,
        net_liquidation=None if value is None else Decimal(value),
    )


def _flow(account, n: int, kind: str, amount: str, at: datetime) -> None:
    CashFlow.objects.create(account=account, flow_id=f"f{n}", kind=kind, amount=Decimal(amount), at=at)


def test_nothing_known_gives_empty_figures(django_assert_num_queries):
    account = AccountFactory()
    with django_assert_num_queries(1):
        assert account_risk_figures_get(account) == AccountFigures()


def test_the_status_and_the_last_earlier_close_with_the_flows_since_it(django_assert_num_queries):
    account, other = AccountFactory(), AccountFactory()
    AccountStatus.objects.create(
        account=account, net_liquidation=Decimal("101234.5678"), day_trades_remaining=2, read_at=NOW
    )
    _snapshot(account, datetime(2026, 12, 4, 21, 0, tzinfo=UTC), "90000")
    _snapshot(account, datetime(2026, 12, 7, 21, 0, tzinfo=UTC), "100000.25")  # the previous close
    _snapshot(account, datetime(2026, 12, 7, 22, 0, tzinfo=UTC), None)  # no value: not a close to use
    _snapshot(account, datetime(2026, 12, 8, 14, 45, tzinfo=UTC), "1")  # today's: not the previous close
    _flow(account, 1, CashFlowKind.DEPOSIT, "5000", datetime(2026, 12, 7, 20, 0, tzinfo=UTC))  # before it
    _flow(account, 2, CashFlowKind.DEPOSIT, "2500.10", datetime(2026, 12, 8, 14, 0, tzinfo=UTC))
    _flow(account, 3, CashFlowKind.WITHDRAWAL, "1000.05", datetime(2026, 12, 8, 14, 30, tzinfo=UTC))
    _flow(other, 4, CashFlowKind.DEPOSIT, "777", datetime(2026, 12, 8, 14, 0, tzinfo=UTC))  # not this account
    _snapshot(other, datetime(2026, 12, 7, 21, 0, tzinfo=UTC), "5")
    with django_assert_num_queries(1):
        figures = account_risk_figures_get(account)
    assert figures == AccountFigures(
        net_liquidation=Decimal("101234.5678"),
        previous_close=Decimal("100000.2500"),
        flows_since_close=Decimal("1500.0500"),
        day_trades_remaining=2,
    )
    assert account_risk_figures_get(other) == AccountFigures(
        previous_close=Decimal("5.0000"), flows_since_close=Decimal("777.0000")
    )


def test_a_status_without_values_and_a_close_without_flows():
    account = AccountFactory()
    AccountStatus.objects.create(account=account, read_at=NOW)
    _snapshot(account, datetime(2026, 12, 7, 21, 0, tzinfo=UTC), "100")
    assert account_risk_figures_get(account) == AccountFigures(
        net_liquidation=None, previous_close=Decimal("100.0000"), flows_since_close=Decimal(0)
    )
