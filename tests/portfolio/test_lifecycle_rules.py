"""The position lifecycle rules on objects in memory: no database (pytest-django refuses any query here)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from core.brokers.base import BrokerPosition
from core.brokers.contracts import InstrumentSpec, SecType
from marketdata.models import Instrument
from portfolio.models import Position, PositionEventKind, PositionStatus
from portfolio.rules.lifecycle import PositionChanges, positions_reconcile
from trading.models import Account

D = Decimal
NOW = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)
ACCOUNT = Account(pk=1, account_id="DU1234567")
AAPL = Instrument(pk=1, key="STK:AAPL:USD", symbol="AAPL", con_id=265598, multiplier=D(1))
SPY_CALL = Instrument(
    pk=2,
    key="OPT:SPY:USD:20270115:400:C:100",
    symbol="SPY",
    sec_type=SecType.OPTION,
    multiplier=D(100),
    expiry=date(2027, 1, 15),
    strike=D(400),
    right="C",
)


def held(instrument: Instrument, quantity: str, average: str = "150.25", price: str = "155.10", **fields) -> Position:
    """An open position as loaded from the database (it has a key), here built in memory."""
    return Position(
        pk=instrument.pk + 100,
        account=ACCOUNT,
        instrument=instrument,
        status=PositionStatus.OPEN,
        quantity=D(quantity),
        average_price=D(average),
        current_price=D(price),
        realized_pnl=D(0),
        opened_at=NOW - timedelta(days=10),
        last_synced_at=NOW - timedelta(minutes=5),
        **fields,
    )


def row(instrument: Instrument, quantity: str, average: str = "150.25", price: str | None = "155.10") -> BrokerPosition:
    spec = InstrumentSpec(symbol=instrument.symbol, con_id=instrument.con_id, multiplier=instrument.multiplier)
    return BrokerPosition(ACCOUNT.account_id, spec, D(quantity), D(average), D(price) if price is not None else None)


def reconcile(
    rows: list[tuple[BrokerPosition, Instrument]],
    open_positions: list[Position],
    *,
    with_fills: set[int] = frozenset(),
    mark_missing_as_closed: bool = False,
) -> PositionChanges:
    changes = PositionChanges(now=NOW)
    positions_reconcile(
        changes,
        account=ACCOUNT,
        rows=rows,
        open_positions=open_positions,
        with_fills=set(with_fills),
        mark_missing_as_closed=mark_missing_as_closed,
    )
    return changes


def kinds(changes: PositionChanges) -> list[str]:
    return [kind for _, kind, _ in changes.events]


def test_a_new_row_opens_a_position_with_an_opened_event_and_a_zero_row_is_ignored():
    changes = reconcile([(row(AAPL, "100"), AAPL), (row(SPY_CALL, "0", "2.50", "3.00"), SPY_CALL)], [])

    (position,) = changes.new_positions
    assert position.status == PositionStatus.OPEN and position.quantity == D(100)
    assert position.opened_at == position.last_synced_at == NOW
    assert position.market_value == D("15510.00") and position.unrealized_pnl == D("485.00")
    assert kinds(changes) == [PositionEventKind.OPENED]
    assert (changes.created, changes.updated, changes.closed, changes.unchanged) == (1, 0, 0, 0)


def test_a_decrease_is_decreased_with_the_estimated_realized_pnl_of_the_closed_part():
    position = held(AAPL, "100")
    changes = reconcile([(row(AAPL, "40", price="160.00"), AAPL)], [position])

    ((event_position, kind, values),) = changes.events
    assert event_position is position and kind == PositionEventKind.DECREASED
    assert values["realized_pnl"] == D("585.00")  # (160 - 150.25) x 60 sold
    assert values["realized_pnl_estimated"] is True
    assert (values["quantity_before"], values["quantity_after"]) == (D(100), D(40))
    assert position.quantity == D(40) and position.realized_pnl == D("585.00") and position.realized_pnl_estimated
    assert changes.changed_positions == {position.pk: position} and changes.updated == 1


def test_an_option_decrease_realizes_through_the_multiplier():
    position = held(SPY_CALL, "3", average="2.50", price="3.00")
    changes = reconcile([(row(SPY_CALL, "1", average="2.50", price="4.00"), SPY_CALL)], [position])

    assert changes.events[0][2]["realized_pnl"] == D("300.00")  # (4.00 - 2.50) x 2 x 100


def test_a_sign_flip_closes_the_position_and_opens_the_other_side():
    old = held(AAPL, "100")
    changes = reconcile([(row(AAPL, "-50", average="160.00", price="160.00"), AAPL)], [old])

    (new,) = changes.new_positions
    assert [(p, kind) for p, kind, _ in changes.events] == [
        (old, PositionEventKind.CLOSED),
        (new, PositionEventKind.OPENED),
    ]
    assert old.status == PositionStatus.CLOSED and old.quantity == 0 and old.closed_at == NOW
    assert old.realized_pnl == D("975.00")  # (160 - 150.25) x 100
    assert changes.events[0][2]["note"] == "direction changed: closed before opening the other side"
    assert new.quantity == D(-50) and new.average_price == D("160.00")
    assert (changes.created, changes.closed) == (1, 1)


def test_a_split_like_change_is_a_split_unless_fills_came_in_between():
    split = reconcile([(row(AAPL, "200", average="75.00"), AAPL)], [held(AAPL, "100", average="150.00")])
    assert kinds(split) == [PositionEventKind.SPLIT]
    assert split.events[0][2]["split_ratio"] == D(2)

    traded = reconcile(
        [(row(AAPL, "200", average="75.00"), AAPL)], [held(AAPL, "100", average="150.00")], with_fills={AAPL.pk}
    )
    assert kinds(traded) == [PositionEventKind.INCREASED]


def test_an_unchanged_position_only_has_its_prices_refreshed():
    position = held(AAPL, "100")
    changes = reconcile([(row(AAPL, "100", price="156.00"), AAPL)], [position])

    assert changes.events == [] and changes.changed_positions == {}
    assert changes.marked_positions == {position.pk: position} and changes.unchanged == 1
    assert position.current_price == D("156.00") and position.last_synced_at == NOW


def test_a_return_no_column_can_hold_is_left_unknown():
    """Bought for 0.00000001, now 9,999,999: the P&L is stored, its ratio to a near-zero basis is not."""
    position = held(AAPL, "100", average="0.00000001")
    reconcile([(row(AAPL, "100", average="0.00000001", price="9999999"), AAPL)], [position])
    assert position.unrealized_pnl == D("999999900.0000")  # 999,999,899.999999 to the cent column
    assert position.unrealized_pnl_pct is None


def test_a_second_row_for_the_same_instrument_is_ignored_with_a_warning():
    changes = reconcile([(row(AAPL, "100"), AAPL), (row(AAPL, "5"), AAPL)], [])

    assert len(changes.new_positions) == 1 and changes.new_positions[0].quantity == D(100)
    assert changes.warnings == ["AAPL: reported twice by the broker; second row ignored"]


def test_a_missing_position_is_kept_open_with_one_missing_event():
    position = held(AAPL, "100")
    changes = reconcile([], [position])

    assert kinds(changes) == [PositionEventKind.MISSING]
    assert position.status == PositionStatus.OPEN and position.missing_since == NOW
    assert changes.changed_positions == {position.pk: position}
    assert changes.warnings == [
        "AAPL (100): open here but absent at the broker since 2025-03-03 15:00 UTC; "
        "kept open (POSITION_SYNC_MARK_MISSING_AS_CLOSED is off)"
    ]

    again = reconcile([], [position])  # still missing: the warning again, no second event, no write
    assert again.events == [] and again.changed_positions == {}
    assert len(again.warnings) == 1 and position.missing_since == NOW


def test_a_missing_position_is_closed_at_its_last_price_when_marked_as_closed():
    position = held(AAPL, "100")
    changes = reconcile([], [position], mark_missing_as_closed=True)

    ((_, kind, values),) = changes.events
    assert kind == PositionEventKind.CLOSED
    assert values["realized_pnl"] == D("485.00") and values["price"] == D("155.10")  # (155.10 - 150.25) x 100
    assert values["note"] == "absent at the broker: closed (POSITION_SYNC_MARK_MISSING_AS_CLOSED)"
    assert position.status == PositionStatus.CLOSED and position.missing_since is None
    assert changes.warnings == ["AAPL (100): absent at the broker; closed with an estimated realized P&L"]
    assert changes.closed == 1


def test_a_missing_position_that_comes_back_is_reopened():
    position = held(AAPL, "100", missing_since=NOW - timedelta(hours=1))
    changes = reconcile([(row(AAPL, "100"), AAPL)], [position])

    assert kinds(changes) == [PositionEventKind.REOPENED]
    assert position.missing_since is None and changes.changed_positions == {position.pk: position}
