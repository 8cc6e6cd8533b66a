"""Execution ingest: every fill once, late commissions, corrections kept, ledger recomputed."""

from datetime import date
from decimal import Decimal

import pytest

from core.brokers.simulated import SimulatedBroker
from core.models import SyncRun, SyncStatus
from tests.factories import AccountFactory, ExecutionRowFactory
from trading.models import (
    CashFlow,
    DayTrade,
    Execution,
    Lot,
    LotMatch,
    RoundTrip,
    SettlementStatus,
    SettlementTracking,
    TradeFrequencyTracking,
)
from trading.services.corrections import execution_correct
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def ingest(settings, account):
    def run():
        return executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))

    return run


def set_fills(broker_state, rows: list[dict]) -> None:
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = rows


def fill(exec_id: str, side: str, quantity: str, price: str, commission: str | None, time: str, **extra) -> dict:
    row = ExecutionRowFactory(exec_id=exec_id, side=side, quantity=quantity, price=price, time=time, **extra)
    if commission is None:
        row.pop("commission")
    else:
        row["commission"] = commission
    return row


FIFO_EXAMPLE = [
    fill("e1", "BUY", "50", "20.00", "0.50", "2026-11-16T15:00:00Z"),
    fill("e2", "BUY", "50", "24.00", "0.50", "2026-11-17T15:00:00Z"),
    fill("e3", "SELL", "80", "25.00", "1.00", "2026-11-18T15:00:00Z"),
]


def test_fill_is_stored_with_trade_and_settlement_dates(broker_state, ingest):
    run = ingest()
    assert run.status == SyncStatus.SUCCESS and run.created == 1
    execution = Execution.objects.get()
    assert execution.exec_id == "0000e0d5.6553a1b2.01.01" and execution.side == "BUY"
    assert execution.trade_date == date(2026, 11, 20)
    assert execution.settlement_date == date(2026, 11, 23)  # Friday + 1 settlement day = Monday
    settlement = SettlementTracking.objects.get(execution=execution)
    assert settlement.amount == Decimal("-15026.0000")  # 100 x 150.25 + 1.00 commission
    assert CashFlow.objects.get().amount == Decimal("5000.00")


def test_ingesting_the_same_fills_twice_changes_nothing(broker_state, ingest):
    set_fills(broker_state, FIFO_EXAMPLE)
    ingest()
    before = list(Execution.objects.values_list("id", "updated_at", "realized_pnl").order_by("id"))
    counts = (
        LotMatch.objects.count(),
        Lot.objects.count(),
        SettlementTracking.objects.count(),
        CashFlow.objects.count(),
    )
    run = ingest()
    assert (run.created, run.updated, run.unchanged) == (0, 0, 3)
    assert list(Execution.objects.values_list("id", "updated_at", "realized_pnl").order_by("id")) == before
    assert (
        LotMatch.objects.count(),
        Lot.objects.count(),
        SettlementTracking.objects.count(),
        CashFlow.objects.count(),
    ) == counts


def test_a_big_batch_is_matched_by_time_span_then_by_id(monkeypatch, broker_state, ingest):
    """Above LOOKUP_CHUNK fills the stored ones are read by the account's time span; the rest by exec id."""
    from trading.services import executions

    monkeypatch.setattr(executions, "LOOKUP_CHUNK", 2)
    set_fills(broker_state, FIFO_EXAMPLE)
    assert ingest().created == 3  # nothing in the span: all three looked up by id, none found
    run = ingest()  # all three found in the span: nothing left to look up by id
    assert run.status == SyncStatus.SUCCESS
    assert (run.created, run.updated, run.unchanged) == (0, 0, 3)


def test_fifo_example_realized_and_remaining_lot(broker_state, ingest):
    set_fills(broker_state, FIFO_EXAMPLE)
    ingest()
    assert Execution.objects.get(exec_id="e3").realized_pnl == Decimal("278.20")
    assert Execution.objects.get(exec_id="e1").realized_pnl is None
    (lot,) = Lot.objects.all()
    assert lot.quantity == Decimal("20") and lot.cost_price == Decimal("24.01")
    assert not RoundTrip.objects.exists()


def test_commission_arriving_later_updates_the_fill_and_the_pnl(broker_state, ingest):
    rows = [
        fill("e1", "BUY", "10", "100", None, "2026-11-16T15:00:00Z"),
        fill("e2", "SELL", "10", "110", "1.00", "2026-11-17T15:00:00Z"),
    ]
    set_fills(broker_state, rows)
    ingest()
    assert Execution.objects.get(exec_id="e1").commission is None
    assert Execution.objects.get(exec_id="e2").realized_pnl == Decimal("99.00")
    rows[0]["commission"] = "1.00"
    set_fills(broker_state, rows)
    run = ingest()
    assert run.updated == 1
    assert Execution.objects.get(exec_id="e1").commission == Decimal("1.00")
    assert Execution.objects.get(exec_id="e2").realized_pnl == Decimal("98.00")
    assert RoundTrip.objects.get().realized_pnl == Decimal("98.00")
    rows[0].pop("commission")  # a re-send without the report does not erase the commission
    set_fills(broker_state, rows)
    ingest()
    assert Execution.objects.get(exec_id="e1").commission == Decimal("1.00")


def test_short_and_cover_example(broker_state, ingest):
    set_fills(
        broker_state,
        [
            fill("s1", "SELL", "10", "100", "1.00", "2026-11-16T15:00:00Z"),
            fill("s2", "BUY", "10", "110", "1.00", "2026-11-17T15:00:00Z"),
        ],
    )
    ingest()
    trip = RoundTrip.objects.get()
    assert trip.realized_pnl == Decimal("-102.00") and trip.direction == "SHORT" and trip.outcome == "LOSS"


def test_late_fill_gives_the_same_ledger_as_in_order(settings, broker_state, account, ingest):
    rows = [
        fill("a", "BUY", "100", "10.00", "1.00", "2026-11-16T15:00:00Z"),
        fill("b", "BUY", "100", "12.00", "1.00", "2026-11-16T16:00:00Z"),
        fill("c", "SELL", "150", "13.00", "1.50", "2026-11-17T15:00:00Z"),
        fill("d", "SELL", "50", "9.00", "0.50", "2026-11-18T15:00:00Z"),
    ]
    set_fills(broker_state, rows)
    ingest()
    in_order = _ledger_snapshot()

    Execution.objects.all().delete()
    set_fills(broker_state, [rows[0], rows[2], rows[3]])  # b arrives late
    ingest()
    set_fills(broker_state, rows)
    ingest()
    assert _ledger_snapshot() == in_order


def _ledger_snapshot():
    return (
        sorted(Execution.objects.values_list("exec_id", "realized_pnl")),
        sorted(
            LotMatch.objects.values_list(
                "opening_execution__exec_id", "closing_execution__exec_id", "quantity", "realized_pnl"
            )
        ),
        sorted(
            RoundTrip.objects.values_list("opening_execution__exec_id", "closing_execution__exec_id", "realized_pnl")
        ),
        sorted(Lot.objects.values_list("opening_execution__exec_id", "quantity", "cost_price")),
    )


def test_malformed_row_is_skipped_with_a_warning(broker_state, ingest):
    set_fills(broker_state, [FIFO_EXAMPLE[0], fill("bad", "HOLD", "1", "1", None, "2026-11-16T15:00:00Z")])
    run = ingest()
    assert run.status == SyncStatus.SUCCESS and run.created == 1
    assert any("bad" in w and "side" in w for w in run.warnings)


def test_unknown_instrument_is_created(broker_state, ingest):
    set_fills(broker_state, [fill("x1", "BUY", "1", "5", "1", "2026-11-16T15:00:00Z", symbol="ZZZZ", con_id=999)])
    ingest()
    assert Execution.objects.get().instrument.symbol == "ZZZZ"


def test_broker_unreachable_skips_and_writes_nothing(broker_state, ingest):
    with broker_state.edit() as state:
        state["connected"] = False
    run = ingest()
    assert run.status == SyncStatus.SKIPPED and "unreachable" in run.message
    assert not Execution.objects.exists() and not CashFlow.objects.exists()


def test_staff_correction_survives_ingest_and_records_the_disagreement(broker_state, ingest):
    set_fills(broker_state, FIFO_EXAMPLE)
    ingest()
    sell = Execution.objects.get(exec_id="e3")
    previous = sell.executed_at
    sell.commission = Decimal("0.00")
    execution_correct(execution=sell, changed=["commission"], reason="broker refunded", previous_executed_at=previous)
    assert Execution.objects.get(exec_id="e3").realized_pnl == Decimal("279.20")
    run = ingest()
    sell.refresh_from_db()
    assert sell.commission == Decimal("0.00") and sell.staff_fields == ["commission"]
    assert sell.broker_disagreement == {"commission": "1.0000"}
    assert any("staff corrected" in w for w in run.warnings)
    assert sell.history.filter(history_change_reason="broker refunded").exists()
    again = ingest()
    assert again.updated == 0  # the disagreement is recorded once, not on every ingest


def test_day_trade_and_trade_frequency(broker_state, ingest):
    set_fills(
        broker_state,
        [
            fill("d1", "BUY", "50", "10", "1", "2026-11-16T15:00:00Z", perm_id=1),
            fill("d2", "BUY", "50", "10", "1", "2026-11-16T15:05:00Z", perm_id=2),
            fill("d3", "SELL", "100", "11", "1", "2026-11-16T16:00:00Z", perm_id=3),
        ],
    )
    ingest()
    assert DayTrade.objects.count() == 2  # opening counting: two opening transactions closed the same day
    day = TradeFrequencyTracking.objects.get(period="DAY", period_start=date(2026, 11, 16))
    assert (day.trades, day.day_trades) == (3, 2)
    week = TradeFrequencyTracking.objects.get(period="WEEK", period_start=date(2026, 11, 16))
    assert (week.trades, week.day_trades) == (3, 2)


def test_direction_counting_setting(settings, broker_state, ingest):
    settings.DAY_TRADE_COUNTING = "direction"
    set_fills(
        broker_state,
        [
            fill("d1", "BUY", "50", "10", "1", "2026-11-16T15:00:00Z", perm_id=1),
            fill("d2", "BUY", "50", "10", "1", "2026-11-16T15:05:00Z", perm_id=2),
            fill("d3", "SELL", "100", "11", "1", "2026-11-16T16:00:00Z", perm_id=3),
        ],
    )
    ingest()
    assert DayTrade.objects.count() == 1


def test_average_lot_matching_setting(settings, broker_state, ingest):
    settings.LOT_MATCHING = "average"
    set_fills(broker_state, FIFO_EXAMPLE)
    ingest()
    # average cost (1000.50 + 1200.50) / 100 = 22.01; 80 x (25 - 22.01) - 1.00 = 238.20
    assert Execution.objects.get(exec_id="e3").realized_pnl == Decimal("238.20")


def test_settlements_move_to_settled(broker_state, ingest):
    from trading.services.ledger import settlements_mark_settled

    ingest()
    settlement = SettlementTracking.objects.get()
    SettlementTracking.objects.update(status=SettlementStatus.PENDING)
    assert settlements_mark_settled(today=date(2026, 11, 20)) == 0
    assert settlements_mark_settled(today=date(2026, 11, 23)) == 1
    settlement.refresh_from_db()
    assert settlement.status == SettlementStatus.SETTLED


def _broker_rows(settings):
    return SimulatedBroker(settings.BROKER_STATE_FILE).executions(ACCOUNT).items


def _full_snapshot():
    return (
        *_ledger_snapshot(),
        sorted(SettlementTracking.objects.values_list("execution__exec_id", "settlement_date", "amount", "status")),
        sorted(DayTrade.objects.values_list("opening_execution__exec_id", "closing_execution__exec_id", "quantity")),
        sorted(TradeFrequencyTracking.objects.values_list("period", "period_start", "trades", "day_trades")),
    )


LATE_FILL_ROWS = [
    fill("a", "BUY", "100", "10.00", "1.00", "2026-11-16T15:00:00Z"),
    fill("b", "BUY", "100", "12.00", "1.00", "2026-11-16T16:00:00Z"),
    fill("c", "SELL", "150", "13.00", "1.50", "2026-11-16T17:00:00Z"),
    fill("d", "SELL", "50", "9.00", "0.50", "2026-11-18T15:00:00Z"),
    fill("e", "SELL", "30", "9.50", "0.50", "2026-11-18T16:00:00Z", symbol="MSFT", con_id=272093),
]


@pytest.mark.parametrize("write_new", [True, False])
def test_new_fills_held_back_for_the_ledger_give_the_same_ledger(settings, broker_state, account, write_new):
    """Fills written by the upsert, or held back and written by the ledger with their P&L: one result,
    also when the new fills land between stored ones (whose realized P&L then changes)."""
    from django.db import transaction

    from trading.services.executions import executions_upsert
    from trading.services.ledger import ledger_recompute

    def upsert_and_recompute(rows, *, write_new):
        set_fills(broker_state, rows)
        with transaction.atomic():
            result = executions_upsert(
                account=account, rows=_broker_rows(settings), broker_name="ibkr", write_new=write_new
            )
            assert (result.unwritten is None) == write_new
            ledger_recompute(account=account, affected=result.affected, unwritten=result.unwritten)

    upsert_and_recompute(LATE_FILL_ROWS, write_new=True)
    all_at_once = _full_snapshot()
    Execution.objects.all().delete()
    TradeFrequencyTracking.objects.all().delete()

    upsert_and_recompute([LATE_FILL_ROWS[0], LATE_FILL_ROWS[2], LATE_FILL_ROWS[3]], write_new=write_new)
    # Without b, c closes a (1,300.00 - 1.00 of its commission - 1,001.00) and opens a short of 50.
    assert Execution.objects.get(exec_id="c").realized_pnl == Decimal("298.0000")
    upsert_and_recompute(LATE_FILL_ROWS, write_new=write_new)  # b (between stored fills) and e (MSFT) are new

    assert _full_snapshot() == all_at_once
    assert all_at_once[0] == [
        ("a", None),
        ("b", None),
        ("c", Decimal("347.0000")),  # 1,950.00 - 1.50 for a (1,001.00) and half of b (600.50)
        ("d", Decimal("-151.0000")),  # 450.00 - 0.50 for the other half of b
        ("e", None),  # a short opened
    ]


def test_first_ingest_writes_each_fill_once(broker_state, ingest):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    set_fills(broker_state, FIFO_EXAMPLE)
    with CaptureQueriesContext(connection) as queries:
        run = ingest()
    assert run.status == SyncStatus.SUCCESS
    assert not [q["sql"] for q in queries if q["sql"].startswith('UPDATE "trading_execution"')]
    assert Execution.objects.get(exec_id="e3").realized_pnl == Decimal("278.2000")
    assert set(Execution.objects.values_list("exec_id", flat=True)) == {"e1", "e2", "e3"}


def test_fill_stored_under_another_account_is_not_taken_over(settings, broker_state, ingest):
    other = AccountFactory(account_id="DU7654321")
    set_fills(broker_state, FIFO_EXAMPLE)
    with broker_state.edit() as state:
        state["accounts"].append({**broker_state.account(state, ACCOUNT), "account_id": other.account_id})
    executions_ingest(account=other, broker=SimulatedBroker(settings.BROKER_STATE_FILE))

    run = ingest()
    assert run.status == SyncStatus.SUCCESS
    assert run.created == 0
    assert sum("already stored for another account" in w for w in run.warnings) == 3
    assert set(Execution.objects.values_list("account__account_id", flat=True)) == {"DU7654321"}


def test_the_garbage_collector_is_back_on_after_an_ingest(monkeypatch, broker_state, ingest):
    import gc

    from trading.services import executions

    set_fills(broker_state, FIFO_EXAMPLE)
    seen = []
    real_upsert = executions.executions_upsert

    def upsert(**kwargs):
        seen.append(gc.isenabled())
        return real_upsert(**kwargs)

    monkeypatch.setattr(executions, "executions_upsert", upsert)
    assert gc.isenabled()
    assert ingest().status == SyncStatus.SUCCESS
    assert gc.isenabled()

    monkeypatch.setattr(executions, "ledger_recompute", lambda **kwargs: 1 / 0)
    assert ingest().status == SyncStatus.FAILED
    assert gc.isenabled()
    assert seen == [False, False]

    gc.disable()  # someone else paused it: an ingest leaves it to them
    try:
        ingest()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_ingest_goes_on_after_an_account_whose_ingest_broke(settings, broker_state, account):
    """The database going away or a bug in one account's ingest fails that account's run only."""
    from trading.services.executions import executions_ingest_accounts

    broken = AccountFactory(account_id="DU0000001")  # first: before the fix nothing after it ran
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    executions = broker.executions

    def adapter_bug(account_id, since=None):
        if account_id == broken.account_id:
            raise ValueError("unparsable cash flow")
        return executions(account_id, since=since)

    broker.executions = adapter_bug

    runs = {r.account.account_id: r for r in executions_ingest_accounts(broker=broker)}

    assert runs[broken.account_id].status == SyncStatus.FAILED
    assert runs[broken.account_id].message == "ValueError: unparsable cash flow"
    assert runs[ACCOUNT].status == SyncStatus.SUCCESS and Execution.objects.count() == 1
    assert not SyncRun.objects.filter(status=SyncStatus.RUNNING).exists()
