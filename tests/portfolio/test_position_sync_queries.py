"""The number of queries of a sync does not grow with the number of positions."""

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.brokers.base import AccountValues, BrokerAccount, BrokerExecution, BrokerPosition
from core.brokers.contracts import InstrumentSpec
from core.brokers.memory import MemoryBroker
from portfolio.models import Position, PositionEvent, PositionEventKind
from portfolio.services.sync import positions_sync, positions_sync_accounts
from tests.factories import AccountFactory
from tests.holders import HOLDER_LOCK_QUERIES
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db


def memory_broker(account_ids: list[str], n: int) -> MemoryBroker:
    """A broker answering from memory, so only the sync's own queries are counted."""
    values = AccountValues(net_liquidation=Decimal("1000"))
    return MemoryBroker(
        accounts=[BrokerAccount(a, "MARGIN", "USD", values) for a in account_ids],
        positions={a: rows(a, n) for a in account_ids},
    )


def rows(account_id: str, n: int, *, price: str = "10", qty_bump: int = 0, start: int = 0) -> list[BrokerPosition]:
    out = []
    for i in range(start, start + n):
        spec = InstrumentSpec(symbol=f"S{i}", con_id=10_000 + i)
        if i % 5 == 0:
            spec = InstrumentSpec(
                symbol="SPY",
                sec_type="OPT",
                con_id=20_000 + i,
                multiplier=Decimal(100),
                expiry=date(2027, 1, 15),
                strike=Decimal(400 + i),
                right="C",
            )
        out.append(BrokerPosition(account_id, spec, Decimal(10 + qty_bump), Decimal("9.5"), Decimal(price)))
    return out


def count_queries(account, broker) -> int:
    with CaptureQueriesContext(connection) as ctx:
        run = positions_sync(account=account, broker=broker)
    assert run.status == "SUCCESS", run.message
    return len(ctx.captured_queries)


@pytest.mark.parametrize("phase", ["first", "steady", "prices_moved", "quantities_changed", "all_missing"])
def test_queries_per_account_do_not_grow_with_positions(phase):
    counts = []
    for size in (5, 40):  # SQLite splits an INSERT above 999 parameters: stay below for both sizes
        account = AccountFactory()
        broker = memory_broker([account.account_id], size)
        first = count_queries(account, broker)
        if phase == "first":
            counts.append(first)
            continue
        if phase == "prices_moved":
            broker.position_rows[account.account_id] = rows(account.account_id, size, price="11")
        elif phase == "quantities_changed":
            broker.position_rows[account.account_id] = rows(account.account_id, size, qty_bump=5)
        elif phase == "all_missing":
            broker.position_rows[account.account_id] = []
        counts.append(count_queries(account, broker))
    assert counts[0] == counts[1], f"{phase}: {counts[0]} queries for 5 positions, {counts[1]} for 60"


def test_steady_state_sync_query_count_is_pinned(django_assert_num_queries):
    account = AccountFactory()
    broker = memory_broker([account.account_id], 40)
    positions_sync(account=account, broker=broker)
    # Run insert (+ savepoint pair), then inside the transaction (+ savepoint pair): open positions
    # FOR UPDATE, their instruments, instruments with fills since the last sync, one sync-time refresh,
    # the account-status upsert, the run finish. Nothing changed and no fills: nothing to realize.
    with django_assert_num_queries(11 + HOLDER_LOCK_QUERIES):
        positions_sync(account=account, broker=broker)


def test_accounts_holding_the_same_instruments_read_them_once(django_assert_num_queries):
    """A sync of many accounts meets each instrument once: per account one query fewer than alone."""
    accounts = AccountFactory.create_batch(4)
    broker = memory_broker([a.account_id for a in accounts], 20)
    ids = [a.account_id for a in accounts]
    positions_sync_accounts(broker=broker, account_ids=ids)
    # The accounts, the instruments once, then 10 per account.
    with django_assert_num_queries(1 + 1 + (10 + HOLDER_LOCK_QUERIES) * 4):
        runs = positions_sync_accounts(broker=broker, account_ids=ids)
    assert {r.status for r in runs} == {"SUCCESS"}


def test_a_steady_sync_of_every_account_reads_the_accounts_once(django_assert_num_queries):
    """Finding accounts the broker lists and the database lacks costs no query when there are none,
    and the broker is asked for its accounts once."""
    accounts = AccountFactory.create_batch(4)
    broker = memory_broker([a.account_id for a in accounts], 20)
    calls = []
    answer = broker.accounts
    broker.accounts = lambda: calls.append(1) or answer()
    positions_sync_accounts(broker=broker)
    with django_assert_num_queries(1 + 1 + (10 + HOLDER_LOCK_QUERIES) * 4):
        runs = positions_sync_accounts(broker=broker)
    assert {r.status for r in runs} == {"SUCCESS"} and len(runs) == 4
    assert len(calls) == 2  # once per sync


# --- "fills" mode: the positions are built from the fills and the sync compares -----------------
def fills_mode_broker(account_id: str, n: int, *, price: str = "10") -> MemoryBroker:
    """A broker whose positions are exactly what one buy per instrument made (so the two agree)."""
    broker = memory_broker([account_id], n)
    broker.position_rows[account_id] = rows(account_id, n, price=price)
    broker.execution_rows = {
        account_id: [
            BrokerExecution(
                account_id=account_id,
                exec_id=f"{account_id}.{i}",
                instrument=row.instrument,
                side="BUY",
                quantity=row.quantity,
                price=row.average_price,
                executed_at=datetime(2026, 11, 20, 14, 0, i, tzinfo=UTC),
                commission=Decimal(0),
            )
            for i, row in enumerate(broker.position_rows[account_id])
        ]
    }
    return broker


def fills_mode_account(n: int, *, price: str = "10"):
    account = AccountFactory()
    broker = fills_mode_broker(account.account_id, n, price=price)
    executions_ingest(account=account, broker=broker)
    positions_sync(account=account, broker=broker)  # builds from the fills, then compares
    return account, broker


@pytest.mark.parametrize("phase", ["steady", "prices_moved", "new_fills"])
def test_fills_mode_queries_do_not_grow_with_positions(phase):
    counts = []
    for size in (5, 30):  # two events a position with new fills: stay below SQLite's split of an INSERT
        account, broker = fills_mode_account(size)
        if phase == "prices_moved":
            broker.position_rows[account.account_id] = rows(account.account_id, size, price="11")
        elif phase == "new_fills":  # one more fill in every instrument, ingested, not built yet
            more = fills_mode_broker(account.account_id, size).execution_rows[account.account_id]
            broker.execution_rows[account.account_id] += [
                replace(e, exec_id=e.exec_id + "b", executed_at=e.executed_at.replace(hour=15)) for e in more
            ]
            broker.position_rows[account.account_id] = rows(account.account_id, size, qty_bump=10)
            executions_ingest(account=account, broker=broker)
        counts.append(count_queries(account, broker))
    assert counts[0] == counts[1], f"{phase}: {counts[0]} queries for 5 positions, {counts[1]} for 30"


def test_fills_mode_steady_sync_compares_and_writes_as_little_as_the_sync_mode(django_assert_num_queries):
    account, broker = fills_mode_account(40)
    positions_sync(account=account, broker=broker)
    # The same 11 as an account without fills: the ledger query that says "fills" mode (and that
    # nothing changed since the build) replaces the one that found no fills; agreement writes no event.
    with django_assert_num_queries(11 + HOLDER_LOCK_QUERIES):
        positions_sync(account=account, broker=broker)
    assert not PositionEvent.objects.filter(position__account=account, kind=PositionEventKind.RECONCILE).exists()
    assert Position.objects.filter(account=account, opening_execution__isnull=False).count() == 40


def test_cash_per_currency_and_broker_rates_cost_a_fixed_two_queries_more():
    """The broker's rates are stored (one upsert, after one read of today's staff corrections); a balance
    whose currency the broker gave a rate for needs no query; one it did not costs one read of the stored
    rates, whatever the number of currencies."""
    plain, rated, unrated = AccountFactory(), AccountFactory(), AccountFactory()
    values = AccountValues(net_liquidation=Decimal("1000"))
    with_cash = replace(
        values,
        cash_balances={"USD": Decimal("10"), "EUR": Decimal("20"), "GBP": Decimal("30")},
        fx_rates={"EUR": Decimal("1.16"), "GBP": Decimal("1.27")},
    )
    without_rates = replace(with_cash, fx_rates={})
    broker = MemoryBroker(
        accounts=[
            BrokerAccount(plain.account_id, "MARGIN", "USD", values),
            BrokerAccount(rated.account_id, "MARGIN", "USD", with_cash),
            BrokerAccount(unrated.account_id, "MARGIN", "USD", without_rates),
        ],
        positions={a.account_id: rows(a.account_id, 5) for a in (plain, rated, unrated)},
    )
    for account in (plain, rated, unrated):  # the first sync creates the instruments and positions
        count_queries(account, broker)
    base = count_queries(plain, broker)
    assert count_queries(rated, broker) == base + 2
    assert count_queries(unrated, broker) == base + 1
