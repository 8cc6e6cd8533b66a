"""The ledger's windowed path (a replay from the open position's first fill, or of the new fills alone)
gives exactly what a replay of the whole history gives: lots, matches, round trips, realized P&L, day
trades, settlement, trade frequency (PDT's inputs) and a cash account's state and violations."""

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core.brokers.base import BrokerExecution
from core.brokers.contracts import InstrumentSpec
from tests.factories import AccountFactory
from trading.models import (
    CashAccountState,
    CashViolation,
    DayTrade,
    Execution,
    ExecutionSource,
    Lot,
    LotMatch,
    RoundTrip,
    SettlementTracking,
    TradeFrequencyTracking,
)
from trading.rules.lots import lots_match
from trading.services.executions import executions_upsert
from trading.services.ledger import ledger_recompute

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 30)
# Sessions spanning two ISO weeks (trade frequency) and a weekend.
DAYS = [date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 20), date(2026, 11, 23)]
SYMBOLS = ("AAPL", "MSFT")


def _fill(n: int, symbol: str, side: str, quantity: int, at: datetime, order: int) -> BrokerExecution:
    return BrokerExecution(
        account_id="X",
        exec_id=f"E{n:05d}",
        instrument=InstrumentSpec(symbol=symbol),
        side=side,
        quantity=Decimal(quantity),
        price=Decimal(100) + Decimal(n % 17) / Decimal(4),
        executed_at=at,
        commission=Decimal("1.00") + Decimal(n % 3) / Decimal(3),  # thirds: pro-rating that does not divide
        commission_currency="USD",
        order_id=order,
        perm_id=order,
        exchange="PAPER",
    )


def _generated(seed: int, count: int, symbols: tuple[str, ...] = SYMBOLS) -> list[BrokerExecution]:
    """Fills in time order, mostly; reversals that cross zero, adds, partial closes, the same second twice,
    several fills of one order, and now and then one that arrives after later ones (placed late in the list)."""
    rng = random.Random(seed)
    position = dict.fromkeys(symbols, 0)
    rows, at, order = [], datetime(2026, 11, 16, 14, 30, tzinfo=UTC), 1
    day = 0
    for n in range(count):
        if rng.random() < 0.12 and day < len(DAYS) - 1:
            day += 1
            at = datetime.combine(DAYS[day], datetime.min.time(), tzinfo=UTC) + timedelta(hours=14, minutes=30)
        elif rng.random() > 0.1:  # else: the same second as the previous fill
            at += timedelta(seconds=rng.randint(1, 600))
        symbol = rng.choice(symbols)
        held = position[symbol]
        roll = rng.random()
        if held and roll < 0.35:
            side, quantity = ("SELL" if held > 0 else "BUY"), abs(held)  # flat again
        elif held and roll < 0.55:
            side, quantity = ("SELL" if held > 0 else "BUY"), abs(held) + rng.randint(1, 20)  # cross zero
        else:
            side, quantity = rng.choice(("BUY", "SELL")), rng.randint(1, 30)
        if rng.random() > 0.3:
            order += 1
        position[symbol] += quantity if side == "BUY" else -quantity
        rows.append(_fill(n, symbol, side, quantity, at, order))
    for _ in range(count // 15):  # late arrivals: an older fill after newer ones
        i = rng.randrange(len(rows) - 3)
        rows.insert(i + rng.randint(2, 3), rows.pop(i))
    return rows


def _ingest(account, rows: list[BrokerExecution]) -> None:
    # Exec ids are unique per broker namespace: each account's get its own prefix.
    rows = [replace(row, account_id=account.account_id, exec_id=f"{account.account_id}-{row.exec_id}") for row in rows]
    with transaction.atomic():
        result = executions_upsert(
            account=account, rows=rows, broker_name="paper", source=ExecutionSource.PAPER, write_new=False
        )
        ledger_recompute(account=account, affected=result.affected, unwritten=result.unwritten, today=TODAY)


def _books(account) -> dict:
    mine = {"account": account}
    return {
        "lots": sorted(
            Lot.objects.filter(**mine).values_list(
                "instrument__symbol",
                "opening_execution__exec_id",
                "opened_at",
                "original_quantity",
                "quantity",
                "cost_price",
                "position_opening_execution__exec_id",
            )
        ),
        "matches": sorted(
            LotMatch.objects.filter(**mine).values_list(
                "opening_execution__exec_id",
                "closing_execution__exec_id",
                "quantity",
                "entry_price",
                "exit_price",
                "realized_pnl",
                "method",
            )
        ),
        "round_trips": sorted(
            RoundTrip.objects.filter(**mine).values_list(
                "instrument__symbol",
                "direction",
                "opened_at",
                "closed_at",
                "quantity",
                "average_entry",
                "average_exit",
                "realized_pnl",
                "commissions",
                "outcome",
                "holding_seconds",
                "opening_execution__exec_id",
                "closing_execution__exec_id",
            )
        ),
        "realized": sorted(Execution.objects.filter(**mine).values_list("exec_id", "realized_pnl")),
        "day_trades": sorted(
            DayTrade.objects.filter(**mine).values_list(
                "instrument__symbol",
                "trade_date",
                "quantity",
                "opening_execution__exec_id",
                "closing_execution__exec_id",
                "counting",
            )
        ),
        "settlements": sorted(
            SettlementTracking.objects.filter(**mine).values_list(
                "execution__exec_id", "trade_date", "settlement_date", "amount", "status", "from_broker"
            )
        ),
        "frequency": sorted(
            TradeFrequencyTracking.objects.filter(**mine).values_list("period", "period_start", "trades", "day_trades")
        ),
        "cash_days": sorted(
            CashAccountState.objects.filter(**mine).values_list(
                "date", "settled_cash", "unsettled_cash", "violations_12m"
            )
        ),
        "violations": sorted(
            CashViolation.objects.filter(**mine).values_list(
                "kind", "trade_date", "buy_execution__exec_id", "sell_execution__exec_id", "amount"
            )
        ),
    }


def _full_replay(account) -> None:
    """Everything recomputed from each instrument's first fill (the ledger's full path)."""
    firsts = {}
    for instrument_id, at in Execution.objects.filter(account=account).values_list("instrument_id", "executed_at"):
        firsts[instrument_id] = min(at, firsts.get(instrument_id, at))
    with transaction.atomic():
        ledger_recompute(account=account, affected=firsts, cash_changed=True, today=TODAY)


@pytest.mark.parametrize(
    ("seed", "method", "counting", "cash", "symbols"),
    [
        (1, "fifo", "opening", False, SYMBOLS),
        (2, "fifo", "direction", False, SYMBOLS),
        (3, "average", "opening", False, SYMBOLS),
        (4, "fifo", "opening", True, SYMBOLS),
        (5, "average", "direction", True, SYMBOLS),
        # One instrument: every fill of the week is the window's (trade frequency without a second read).
        (6, "fifo", "opening", False, ("AAPL",)),
        (7, "fifo", "direction", True, ("AAPL",)),
    ],
)
def test_fills_one_at_a_time_book_what_a_full_replay_books(settings, seed, method, counting, cash, symbols):
    settings.LOT_MATCHING = method
    settings.DAY_TRADE_COUNTING = counting
    account = AccountFactory(paper=True, cash=cash) if cash else AccountFactory(paper=True)
    rows = _generated(seed, 90, symbols)
    rng = random.Random(seed)
    start = 0
    while start < len(rows):
        size = 1 if rng.random() < 0.8 else rng.randint(2, 4)  # mostly one fill, as the paper engine sends
        _ingest(account, rows[start : start + size])
        start += size
        # After every step, not only at the end: a later full-path step would mend an earlier mistake.
        incremental = _books(account)
        _full_replay(account)
        assert _books(account) == incremental, f"after {start} fills"
    assert incremental["round_trips"] and incremental["day_trades"] and incremental["matches"]


def _open_position(account, fills: int) -> None:
    at = datetime(2026, 11, 16, 14, 30, tzinfo=UTC)
    for n in range(fills):
        _ingest(account, [_fill(n, "AAPL", "BUY", 10, at + timedelta(minutes=n), n + 1)])


def test_an_added_fill_reads_and_writes_as_much_whatever_the_position_holds():
    small, large = AccountFactory(paper=True), AccountFactory(paper=True)
    _open_position(small, 2)
    _open_position(large, 40)
    counts = []
    for account, n in ((small, 2), (large, 40)):
        at = datetime(2026, 11, 16, 16, 0, tzinfo=UTC)
        with CaptureQueriesContext(connection) as captured:
            _ingest(account, [_fill(500 + n, "AAPL", "BUY", 5, at, 999)])
        counts.append(len(captured))
        # The new lot joins the stored ones, which stay as they were.
        assert Lot.objects.filter(account=account).count() == n + 1
    assert counts[0] == counts[1]


def test_a_close_replays_only_the_open_position_not_the_closed_ones_before_it(monkeypatch):
    from trading.services import ledger

    account = AccountFactory(paper=True)
    at = datetime(2026, 11, 16, 14, 30, tzinfo=UTC)
    for n in range(0, 20, 2):  # ten closed round trips
        _ingest(account, [_fill(n, "AAPL", "BUY", 10, at + timedelta(minutes=n), n + 1)])
        _ingest(account, [_fill(n + 1, "AAPL", "SELL", 10, at + timedelta(minutes=n + 1), n + 2)])
    _ingest(account, [_fill(20, "AAPL", "BUY", 10, at + timedelta(days=7), 100)])  # the next week
    replayed = []

    def counting_lots_match(fills, **kwargs):
        fills = list(fills)
        replayed.append(len(fills))
        return lots_match(fills, **kwargs)

    monkeypatch.setattr(ledger, "lots_match", counting_lots_match)
    _ingest(account, [_fill(21, "AAPL", "SELL", 4, at + timedelta(days=7, minutes=1), 101)])
    assert replayed == [2]  # the position's opening fill and the close: not the 20 fills before it
    monkeypatch.undo()
    assert RoundTrip.objects.filter(account=account).count() == 10
    incremental = _books(account)
    _full_replay(account)
    assert _books(account) == incremental
