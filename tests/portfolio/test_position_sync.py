"""Position sync: each numbered rule of the issue, built from the rule rather than one example."""

from decimal import Decimal

import pytest

from core.brokers.simulated import SimulatedBroker
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from portfolio.models import AccountStatus, Position, PositionEvent, PositionEventKind, PositionStatus
from portfolio.services.sync import positions_sync, positions_sync_accounts
from tests.factories import AccountFactory, StockPositionRowFactory
from trading.models import Account

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def sync(settings, broker_state, account):
    """Run one sync of the example account against the current state file."""

    def run(**kwargs) -> SyncRun:
        return positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE), **kwargs)

    return run


def set_positions(broker_state, rows: list[dict]) -> None:
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["positions"] = rows


def aapl(quantity: str, avg_cost: str = "150.25", market_price: str = "155.10") -> dict:
    return StockPositionRowFactory(
        symbol="AAPL", con_id=265598, quantity=quantity, avg_cost=avg_cost, market_price=market_price
    )


def events_of(symbol: str) -> list[str]:
    return list(
        PositionEvent.objects.filter(position__instrument__symbol=symbol)
        .order_by("at", "id")
        .values_list("kind", flat=True)
    )


# --- rule 1: new broker position --------------------------------------------------------------
def test_new_positions_are_created_open_with_an_opened_event(sync):
    run = sync()

    assert run.status == SyncStatus.SUCCESS
    assert (run.created, run.updated, run.closed, run.unchanged) == (2, 0, 0, 0)
    stock = Position.objects.get(instrument__symbol="AAPL")
    assert stock.status == PositionStatus.OPEN and stock.quantity == Decimal("100")
    assert stock.average_price == Decimal("150.25") and stock.current_price == Decimal("155.10")
    assert stock.market_value == Decimal("15510.00")
    assert stock.unrealized_pnl == Decimal("485.00")
    assert stock.unrealized_pnl_pct == Decimal("0.0322795341")  # 485.00 / 15025.00 to 10 places
    assert stock.opened_at == stock.last_synced_at
    option = Position.objects.get(instrument__sec_type="OPT")
    # IBKR's avg_cost is per contract: 512.40 / 100 per unit; short 2 contracts of 100.
    assert option.average_price == Decimal("5.124") and option.quantity == Decimal("-2")
    assert option.market_value == Decimal("-960.00")
    assert option.unrealized_pnl == Decimal("64.80")  # (4.80 - 5.124) x -2 x 100
    assert events_of("AAPL") == [PositionEventKind.OPENED]
    event = PositionEvent.objects.get(position=stock)
    assert (event.quantity_before, event.quantity_after, event.sync_run_id) == (0, 100, run.pk)


def test_account_values_are_stored(sync):
    sync()
    status = AccountStatus.objects.get(account__account_id=ACCOUNT)
    assert status.net_liquidation == Decimal("100000.00") and status.settled_cash == Decimal("24000.00")
    assert status.day_trades_remaining == 3


# --- rule 2: known position, changed ----------------------------------------------------------
def test_increase_takes_the_brokers_average_price(sync, broker_state):
    sync()
    set_positions(broker_state, [aapl("150", avg_cost="152.00", market_price="156.00")])
    run = sync()

    position = Position.objects.get(instrument__symbol="AAPL", status=PositionStatus.OPEN)
    assert position.quantity == Decimal("150") and position.average_price == Decimal("152.00")
    assert run.updated == 1
    event = PositionEvent.objects.filter(position=position).last()
    assert event.kind == PositionEventKind.INCREASED
    assert (event.quantity_before, event.quantity_after) == (Decimal("100"), Decimal("150"))
    assert (event.average_price_before, event.average_price_after) == (Decimal("150.25"), Decimal("152.00"))
    assert event.realized_pnl is None


def test_decrease_realizes_an_estimate_on_the_closed_part(sync, broker_state):
    sync()
    set_positions(broker_state, [aapl("40", market_price="160.00")])
    sync()

    position = Position.objects.get(instrument__symbol="AAPL")
    event = PositionEvent.objects.filter(position=position).last()
    assert event.kind == PositionEventKind.DECREASED
    assert event.realized_pnl == Decimal("585.00")  # (160.00 - 150.25) x 60
    assert event.realized_pnl_estimated is True
    assert position.realized_pnl == Decimal("585.00") and position.realized_pnl_estimated
    assert position.quantity == Decimal("40") and position.average_price == Decimal("150.25")


def test_short_cover_realizes_with_the_signed_quantity(sync, broker_state):
    set_positions(broker_state, [aapl("-10", avg_cost="100", market_price="100")])
    sync()
    set_positions(broker_state, [aapl("-4", avg_cost="100", market_price="110")])
    sync()

    event = PositionEvent.objects.filter(position__instrument__symbol="AAPL").last()
    assert event.kind == PositionEventKind.DECREASED
    assert event.realized_pnl == Decimal("-60.00")  # (110 - 100) x -6: a losing cover is negative


def test_quantity_zero_closes_with_realized_pnl_and_keeps_the_row(sync, broker_state):
    sync()
    set_positions(broker_state, [aapl("0", market_price="157.25")])
    run = sync()

    position = Position.objects.get(instrument__symbol="AAPL")
    assert position.status == PositionStatus.CLOSED and position.closed_at is not None
    assert position.realized_pnl == Decimal("700.00")  # (157.25 - 150.25) x 100
    assert position.realized_pnl_estimated
    assert run.closed == 1
    assert events_of("AAPL") == [PositionEventKind.OPENED, PositionEventKind.CLOSED]


def test_option_close_uses_the_multiplier(sync, broker_state):
    sync()
    with broker_state.edit() as state:
        option = broker_state.account(state, ACCOUNT)["positions"][1]
        option.update(quantity="0", market_price="3.00")
    sync()
    position = Position.objects.get(instrument__sec_type="OPT")
    assert position.status == PositionStatus.CLOSED
    assert position.realized_pnl == Decimal("424.80")  # (3.00 - 5.124) x -2 x 100


def test_reopen_after_close_is_a_new_row(sync, broker_state):
    sync()
    set_positions(broker_state, [aapl("0")])
    sync()
    set_positions(broker_state, [aapl("30", avg_cost="151.00")])
    sync()
    rows = Position.objects.filter(instrument__symbol="AAPL").order_by("opened_at", "id")
    assert [(p.status, p.quantity) for p in rows] == [(PositionStatus.CLOSED, 0), (PositionStatus.OPEN, 30)]


@pytest.mark.parametrize(
    ("before", "after", "ratio"),
    [
        (("100", "150.00"), ("200", "75.00"), Decimal(2)),
        (("100", "150.00"), ("300", "50.00"), Decimal(3)),
        (("100", "150.00"), ("150", "100.00"), Decimal("1.5")),
        (("1000", "2.50"), ("100", "25.00"), Decimal("0.1")),
        (("-100", "30.00"), ("-200", "15.00"), Decimal(2)),
    ],
)
def test_split_is_recorded_and_realizes_nothing(sync, broker_state, before, after, ratio):
    set_positions(broker_state, [aapl(before[0], avg_cost=before[1], market_price=before[1])])
    sync()
    set_positions(broker_state, [aapl(after[0], avg_cost=after[1], market_price=after[1])])
    sync()

    position = Position.objects.get(instrument__symbol="AAPL")
    event = PositionEvent.objects.filter(position=position).last()
    assert event.kind == PositionEventKind.SPLIT
    assert event.split_ratio == ratio
    assert event.realized_pnl is None
    assert position.realized_pnl == 0 and position.quantity == Decimal(after[0])


@pytest.mark.parametrize(
    ("before", "after", "ratio", "split_to", "realized"),
    [
        # 1-for-10 reverse split of 105 shares: 10 held, half a share paid in cash at the market price.
        (("105", "20.00"), ("10", "200.00", "210.00"), Decimal("0.1"), Decimal("10.5"), Decimal("5.00")),
        # 3-for-2 of 101 shares: 151 held, half a share paid in cash.
        (("101", "30.00"), ("151", "20.00", "19.00"), Decimal("1.5"), Decimal("151.5"), Decimal("-0.50")),
        # A short position: the fraction is covered in cash (bought back above the cost: a loss).
        (("-105", "20.00"), ("-10", "200.00", "210.00"), Decimal("0.1"), Decimal("-10.5"), Decimal("-5.00")),
    ],
)
def test_split_with_cash_in_lieu_is_a_split_and_a_small_sale(
    sync, broker_state, before, after, ratio, split_to, realized
):
    set_positions(broker_state, [aapl(before[0], avg_cost=before[1], market_price=before[1])])
    sync()
    set_positions(broker_state, [aapl(after[0], avg_cost=after[1], market_price=after[2])])
    sync()

    position = Position.objects.get(instrument__symbol="AAPL")
    split, sale = PositionEvent.objects.filter(position=position).order_by("id")[1:]
    assert (split.kind, split.split_ratio, split.quantity_before, split.quantity_after, split.realized_pnl) == (
        PositionEventKind.SPLIT,
        ratio,
        Decimal(before[0]),
        split_to,
        None,
    )
    assert (sale.kind, sale.quantity_before, sale.quantity_after) == (
        PositionEventKind.DECREASED,
        split_to,
        Decimal(after[0]),
    )
    assert sale.realized_pnl == realized and sale.realized_pnl_estimated
    assert "cash in lieu" in sale.note
    assert position.realized_pnl == realized and position.quantity == Decimal(after[0])
    assert position.status == PositionStatus.OPEN


def test_a_sale_that_leaves_the_average_alone_is_not_a_split(sync, broker_state):
    set_positions(broker_state, [aapl("105", avg_cost="20.00")])
    sync()
    set_positions(broker_state, [aapl("10", avg_cost="20.00")])
    sync()
    assert events_of("AAPL") == [PositionEventKind.OPENED, PositionEventKind.DECREASED]


def test_quantity_change_with_cost_not_preserved_is_not_a_split(sync, broker_state):
    set_positions(broker_state, [aapl("100", avg_cost="150.00")])
    sync()
    set_positions(broker_state, [aapl("200", avg_cost="150.00")])  # bought 100 more at 150
    sync()
    assert events_of("AAPL")[-1] == PositionEventKind.INCREASED


def test_split_like_change_the_fills_explain_is_a_trade(sync, broker_state):
    """With fills the sync compares with them: a change they explain is no split, however it looks."""
    from tests.factories import ExecutionRowFactory
    from trading.services.executions import executions_ingest

    fills = [
        ExecutionRowFactory(exec_id="b1", quantity="100", price="150.00", commission="0", time="2026-11-20T14:00:00Z")
    ]
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = fills
    set_positions(broker_state, [aapl("100", avg_cost="150.00")])
    broker = SimulatedBroker(broker_state.path)
    executions_ingest(account=Account.objects.get(account_id=ACCOUNT), broker=broker)
    sync()
    # A stock distribution staff entered as a fill at 0: 200 at an average of 75, as a 2:1 split would be.
    fills.append(
        ExecutionRowFactory(exec_id="b2", quantity="100", price="0", commission="0", time="2026-11-20T15:00:00Z")
    )
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["executions"] = fills
    set_positions(broker_state, [aapl("200", avg_cost="75.00")])
    executions_ingest(account=Account.objects.get(account_id=ACCOUNT), broker=broker)
    sync()
    assert events_of("AAPL") == [PositionEventKind.OPENED, PositionEventKind.INCREASED]
    assert not PositionEvent.objects.filter(kind__in=[PositionEventKind.SPLIT, PositionEventKind.RECONCILE]).exists()


def test_sign_flip_closes_then_opens_a_new_position(sync, broker_state):
    sync()
    set_positions(broker_state, [aapl("-50", avg_cost="160.00", market_price="160.00")])
    run = sync()

    old, new = Position.objects.filter(instrument__symbol="AAPL").order_by("id")
    assert old.status == PositionStatus.CLOSED and old.realized_pnl == Decimal("975.00")  # (160-150.25) x 100
    assert new.status == PositionStatus.OPEN and new.quantity == Decimal("-50")
    assert new.average_price == Decimal("160.00")
    assert (run.created, run.closed) == (1, 1)
    assert [e.kind for e in PositionEvent.objects.filter(position=new)] == [PositionEventKind.OPENED]


# --- rule 3: unchanged position ---------------------------------------------------------------
def test_second_sync_of_an_unchanged_state_writes_no_event(sync):
    sync()
    first_sync = Position.objects.get(instrument__symbol="AAPL").last_synced_at
    events = PositionEvent.objects.count()
    run = sync()

    assert PositionEvent.objects.count() == events
    assert (run.created, run.updated, run.closed, run.unchanged) == (0, 0, 0, 2)
    assert Position.objects.get(instrument__symbol="AAPL").last_synced_at > first_sync


def test_unchanged_quantity_refreshes_prices_without_an_event(sync, broker_state):
    sync()
    set_positions(broker_state, [aapl("100", market_price="170.00")])
    sync()
    position = Position.objects.get(instrument__symbol="AAPL")
    assert position.current_price == Decimal("170.00") and position.unrealized_pnl == Decimal("1975.00")
    assert events_of("AAPL") == [PositionEventKind.OPENED]


# --- rule 4: open here, absent at the broker --------------------------------------------------
def test_missing_position_is_flagged_once_and_kept_open(sync, broker_state):
    sync()
    set_positions(broker_state, [])  # the option and AAPL vanished
    run = sync()

    assert Position.objects.filter(status=PositionStatus.OPEN).count() == 2
    assert events_of("AAPL") == [PositionEventKind.OPENED, PositionEventKind.MISSING]
    assert any("AAPL" in w and "absent at the broker" in w for w in run.warnings)
    second = sync()
    assert events_of("AAPL") == [PositionEventKind.OPENED, PositionEventKind.MISSING]
    assert any("AAPL" in w for w in second.warnings)


def test_missing_position_that_comes_back_is_reopened(sync, broker_state):
    sync()
    state = broker_state.read()
    set_positions(broker_state, [])
    sync()
    broker_state.write(state)
    sync()
    position = Position.objects.get(instrument__symbol="AAPL")
    assert position.missing_since is None and position.status == PositionStatus.OPEN
    assert events_of("AAPL") == [PositionEventKind.OPENED, PositionEventKind.MISSING, PositionEventKind.REOPENED]


def test_missing_position_is_closed_when_the_setting_says_so(sync, broker_state, settings):
    sync()
    settings.POSITION_SYNC_MARK_MISSING_AS_CLOSED = True
    set_positions(broker_state, [])
    run = sync()
    position = Position.objects.get(instrument__symbol="AAPL")
    assert position.status == PositionStatus.CLOSED and position.realized_pnl_estimated
    assert position.realized_pnl == Decimal("485.00")  # at the last known price 155.10
    assert run.closed == 2


# --- rule 5: broker unreachable or request failed ---------------------------------------------
@pytest.mark.parametrize("breakage", ["disconnected", "missing_file", "invalid_json", "unknown_account"])
def test_unreachable_broker_skips_the_run_and_changes_nothing(sync, broker_state, breakage):
    sync()
    before = list(Position.objects.values_list("id", "status", "quantity", "last_synced_at").order_by("id"))
    events = PositionEvent.objects.count()
    if breakage == "disconnected":
        with broker_state.edit() as state:
            state["connected"] = False
    elif breakage == "missing_file":
        broker_state.path.unlink()
    elif breakage == "invalid_json":
        broker_state.write_raw("{not json")
    else:
        with broker_state.edit() as state:
            broker_state.account(state, ACCOUNT)["account_id"] = "DU0000000"
    run = sync()

    assert run.status == SyncStatus.SKIPPED
    assert "broker" in run.message
    assert list(Position.objects.values_list("id", "status", "quantity", "last_synced_at").order_by("id")) == before
    assert PositionEvent.objects.count() == events


def test_failure_inside_the_transaction_rolls_everything_back(sync, broker_state, monkeypatch):
    sync()
    set_positions(broker_state, [aapl("0")])

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(AccountStatus.objects, "bulk_create", explode)
    run = sync()
    assert run.status == SyncStatus.FAILED and "disk on fire" in run.message
    assert Position.objects.get(instrument__symbol="AAPL").status == PositionStatus.OPEN
    assert events_of("AAPL") == [PositionEventKind.OPENED]


# --- rule 6: malformed rows -------------------------------------------------------------------
def test_malformed_row_is_skipped_with_a_warning_and_the_rest_synced(sync, broker_state):
    set_positions(
        broker_state,
        [aapl("100"), StockPositionRowFactory(symbol="MSFT", quantity="abc"), StockPositionRowFactory(symbol="NVDA")],
    )
    run = sync()
    assert run.status == SyncStatus.SUCCESS
    assert set(Position.objects.values_list("instrument__symbol", flat=True)) == {"AAPL", "NVDA"}
    assert any("MSFT" in w and "quantity" in w for w in run.warnings)


def test_duplicate_rows_for_one_instrument_keep_the_first(sync, broker_state):
    set_positions(broker_state, [aapl("100"), aapl("999")])
    run = sync()
    assert Position.objects.get(instrument__symbol="AAPL").quantity == 100
    assert any("twice" in w for w in run.warnings)


# --- single flight, settings and several accounts ---------------------------------------------
def test_sync_while_another_runs_is_recorded_as_skipped(sync, account):
    SyncRun.objects.create(kind=SyncKind.POSITIONS, account=account, started_at=account.created_at)
    from django.utils import timezone

    SyncRun.objects.filter(status=SyncStatus.RUNNING).update(started_at=timezone.now())
    run = sync()
    assert run.status == SyncStatus.SKIPPED and run.message == "another sync is running"
    assert not Position.objects.exists()


def test_abandoned_running_run_is_taken_over_after_the_lock_ttl(sync, account, settings):
    from datetime import timedelta

    from django.utils import timezone

    stale = SyncRun.objects.create(
        kind=SyncKind.POSITIONS,
        account=account,
        started_at=timezone.now() - timedelta(seconds=settings.SINGLE_FLIGHT_LOCK_TTL + 5),
    )
    run = sync()
    assert run.status == SyncStatus.SUCCESS
    stale.refresh_from_db()
    assert stale.status == SyncStatus.FAILED and "abandoned" in stale.message


def test_disabled_sync_records_a_skipped_run(sync, settings):
    settings.POSITION_SYNC_ENABLED = False
    run = sync()
    assert run.status == SyncStatus.SKIPPED and "POSITION_SYNC_ENABLED" in run.message
    assert not Position.objects.exists()


def test_sync_accounts_runs_each_active_account(settings, broker_state, account):
    AccountFactory(account_id="DU7777777")  # not at the broker: positions request fails -> SKIPPED
    AccountFactory(account_id="DU8888888", is_active=False)
    runs = positions_sync_accounts(broker=SimulatedBroker(settings.BROKER_STATE_FILE), reason=SyncReason.MANUAL)
    assert {r.account.account_id: r.status for r in runs} == {
        ACCOUNT: SyncStatus.SUCCESS,
        "DU7777777": SyncStatus.SKIPPED,
    }
    assert all(r.reason == SyncReason.MANUAL for r in runs)


def test_sync_accounts_with_broker_down_skips_every_account(settings, broker_state, account):
    with broker_state.edit() as state:
        state["connected"] = False
    runs = positions_sync_accounts(broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    assert [r.status for r in runs] == [SyncStatus.SKIPPED]
    assert "unreachable" in runs[0].message
    assert Account.objects.count() == 1


def test_an_account_rolled_back_does_not_leave_its_new_instruments_to_the_next(settings, monkeypatch):
    """Accounts of one call share the instruments they meet. When an account's transaction rolls back,
    the instruments it created are gone: the next account must create them again, not point at them."""
    from core.brokers.base import AccountValues, BrokerAccount, BrokerPosition
    from core.brokers.contracts import InstrumentSpec
    from core.brokers.memory import MemoryBroker
    from marketdata.models import Instrument

    first, second = AccountFactory(account_id="DU0000001"), AccountFactory(account_id="DU0000002")
    spec = InstrumentSpec(symbol="NEWCO", con_id=987654)
    broker = MemoryBroker(
        accounts=[BrokerAccount(a.account_id, "MARGIN", "USD", AccountValues()) for a in (first, second)],
        positions={
            a.account_id: [BrokerPosition(a.account_id, spec, Decimal(10), Decimal(5), Decimal(6))]
            for a in (first, second)
        },
    )

    def ledger(account):
        if account == first:
            raise RuntimeError("ledger unavailable")
        return {}

    monkeypatch.setattr("portfolio.services.sync.ledger_instruments_of", ledger)
    runs = positions_sync_accounts(broker=broker)
    assert [r.status for r in runs] == [SyncStatus.FAILED, SyncStatus.SUCCESS]
    position = Position.objects.get(account=second)
    assert Instrument.objects.filter(pk=position.instrument_id, con_id=987654).exists()
    assert not Position.objects.filter(account=first).exists()
