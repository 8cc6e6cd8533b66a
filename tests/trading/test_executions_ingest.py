"""Execution ingest: every fill once, late commissions, corrections kept, ledger recomputed."""

from datetime import date
from decimal import Decimal

import pytest

from tests.factories import AccountFactory, ExecutionRowFactory
from trading.brokers.simulated import SimulatedBroker
from trading.models import (
    CashFlow,
    DayTrade,
    Execution,
    Lot,
    LotMatch,
    RoundTrip,
    SettlementStatus,
    SettlementTracking,
    SyncStatus,
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
