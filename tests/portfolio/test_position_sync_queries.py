"""The number of queries of a sync does not grow with the number of positions."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.brokers.base import AccountValues, BrokerAccount, BrokerPosition
from core.brokers.contracts import InstrumentSpec
from core.brokers.memory import MemoryBroker
from portfolio.services.sync import positions_sync, positions_sync_accounts
from tests.factories import AccountFactory
from tests.holders import HOLDER_LOCK_QUERIES

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
