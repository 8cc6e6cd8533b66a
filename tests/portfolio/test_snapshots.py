"""Account snapshots: from the broker, computed when it is away, idempotent per second, the daily close."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from core.brokers.base import AccountValues, BrokerAccount, BrokerPosition
from core.brokers.contracts import InstrumentSpec
from core.brokers.memory import MemoryBroker
from core.brokers.simulated import SimulatedBroker
from core.locks import single_flight
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from core.scheduling import periodic_tasks_ensure
from portfolio.models import AccountSnapshot, PositionSnapshot, SnapshotKind, SnapshotSource
from portfolio.services.snapshots import (
    close_snapshot_due,
    close_snapshots_take,
    snapshot_take,
    snapshots_take_all,
)
from portfolio.services.sync import positions_sync
from portfolio.tasks import close_snapshot_task, portfolio_snapshot_task
from tests.factories import AccountFactory, AccountRowFactory, InstrumentFactory, StockPositionRowFactory
from tests.holders import HOLDER_LOCK_QUERIES

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # a Friday, 10:00 New York


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def broker(settings, broker_state):
    return SimulatedBroker(settings.BROKER_STATE_FILE)


def runs() -> list[SyncRun]:
    return list(SyncRun.objects.filter(kind=SyncKind.SNAPSHOTS).order_by("id"))


def disconnect(broker_state) -> None:
    with broker_state.edit() as state:
        state["connected"] = False


# --- from the broker ---------------------------------------------------------------------------
def test_broker_snapshot_has_every_value_and_a_row_per_position(account, broker):
    snapshot = snapshot_take(account=account, broker=broker, at=AT)

    snapshot.refresh_from_db()
    assert (snapshot.source, snapshot.kind, snapshot.note) == (SnapshotSource.BROKER, SnapshotKind.HOURLY, "")
    assert (snapshot.taken_at, snapshot.trade_date) == (AT, date(2026, 11, 20))
    assert snapshot.net_liquidation == Decimal("100000.00")
    assert (snapshot.total_cash, snapshot.settled_cash) == (Decimal("25000.00"), Decimal("24000.00"))
    assert (snapshot.buying_power, snapshot.excess_liquidity) == (Decimal("300000.00"), Decimal("80000.00"))
    assert snapshot.maint_margin_req == Decimal("20000.00")
    assert (snapshot.unrealized_pnl, snapshot.realized_pnl) == (Decimal("1200.00"), Decimal("300.00"))
    assert snapshot.positions_count == 2
    assert snapshot.positions_value == Decimal("14550.00")  # 100 x 155.10 - 2 x 4.80 x 100
    stock = PositionSnapshot.objects.get(snapshot=snapshot, instrument__symbol="AAPL")
    assert (stock.quantity, stock.average_price, stock.price) == (Decimal(100), Decimal("150.25"), Decimal("155.10"))
    assert (stock.market_value, stock.unrealized_pnl) == (Decimal("15510.00"), Decimal("485.00"))
    option = PositionSnapshot.objects.get(snapshot=snapshot, instrument__sec_type="OPT")
    assert (option.quantity, option.average_price) == (Decimal(-2), Decimal("5.124"))  # per unit: 512.40 / 100
    assert (option.market_value, option.unrealized_pnl) == (Decimal("-960.00"), Decimal("64.80"))
    (run,) = runs()
    assert (run.status, run.account, run.reason, run.created) == (SyncStatus.SUCCESS, account, SyncReason.SCHEDULE, 2)


def test_closed_rows_are_left_out_and_unpriced_rows_are_kept_without_value(account, broker, broker_state):
    with broker_state.edit() as state:
        rows = broker_state.account(state, ACCOUNT)["positions"]
        rows[1]["quantity"] = "0"  # closed today
        rows.append(StockPositionRowFactory(symbol="MSFT", quantity="10", market_price=None))

    snapshot = snapshot_take(account=account, broker=broker, at=AT)

    assert snapshot.positions_count == 2
    assert snapshot.positions_value == Decimal("15510.00")
    msft = PositionSnapshot.objects.get(snapshot=snapshot, instrument__symbol="MSFT")
    assert (msft.price, msft.market_value, msft.unrealized_pnl) == (None, None, None)
    assert any("MSFT" in warning for warning in runs()[0].warnings)


def test_snapshot_time_is_now_truncated_to_the_second_and_must_be_aware(account, broker):
    snapshot = snapshot_take(account=account, broker=broker, at=AT.replace(microsecond=987_654))
    assert snapshot.taken_at == AT
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshot_take(account=account, broker=broker, at=datetime(2026, 11, 20, 15))
    snapshot = snapshot_take(account=account, broker=broker)
    assert snapshot.taken_at.microsecond == 0 and snapshot.taken_at.tzinfo is not None


# --- broker away: computed from what was last known --------------------------------------------
def test_broker_outage_computes_the_snapshot_from_the_last_synced_positions(account, broker, broker_state):
    assert positions_sync(account=account, broker=broker).status == SyncStatus.SUCCESS
    disconnect(broker_state)

    snapshot = snapshot_take(account=account, broker=broker, at=AT)

    snapshot.refresh_from_db()
    assert snapshot.source == SnapshotSource.COMPUTED
    assert snapshot.note.startswith("broker unreachable: broker is disconnected")
    assert "computed from positions last synced" in snapshot.note
    assert snapshot.total_cash == Decimal("25000.00") and snapshot.settled_cash == Decimal("24000.00")
    assert snapshot.positions_value == Decimal("14550.00")
    assert snapshot.net_liquidation == Decimal("39550.00")  # last cash + positions at their last prices
    assert snapshot.unrealized_pnl == Decimal("549.80")  # 485.00 + 64.80
    assert (snapshot.buying_power, snapshot.excess_liquidity, snapshot.maint_margin_req) == (None, None, None)
    rows = {p.instrument.symbol: p for p in PositionSnapshot.objects.filter(snapshot=snapshot)}
    assert rows["AAPL"].price == Decimal("155.10") and rows["AAPL"].market_value == Decimal("15510.00")
    assert rows["SPY"].quantity == Decimal(-2) and rows["SPY"].unrealized_pnl == Decimal("64.80")
    (run,) = runs()
    assert run.status == SyncStatus.SUCCESS
    assert run.warnings and "computed from the last known positions" in run.warnings[0]


def test_broker_outage_uses_the_latest_prices_the_sync_saw(account, broker, broker_state):
    positions_sync(account=account, broker=broker)
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["positions"][0]["market_price"] = "160.00"
    positions_sync(account=account, broker=broker)
    disconnect(broker_state)

    snapshot = snapshot_take(account=account, broker=broker, at=AT)

    assert snapshot.positions_value == Decimal("15040.00")  # 100 x 160.00 - 960.00
    assert snapshot.net_liquidation == Decimal("40040.00")


def test_broker_error_for_the_account_also_computes(account, broker, broker_state):
    positions_sync(account=account, broker=broker)
    broker_state.write({"connected": True, "accounts": [AccountRowFactory(account_id="DU0000001")]})

    snapshot = snapshot_take(account=account, broker=broker, at=AT)

    assert snapshot.source == SnapshotSource.COMPUTED
    assert snapshot.note.startswith(f"broker request failed: account {ACCOUNT} is not in its account list")


def test_broker_outage_with_nothing_known_skips(account, broker, broker_state):
    disconnect(broker_state)

    assert snapshot_take(account=account, broker=broker, at=AT) is None

    assert not AccountSnapshot.objects.exists()
    (run,) = runs()
    assert run.status == SyncStatus.SKIPPED and "nothing known" in run.message


# --- one snapshot per account and second -------------------------------------------------------
def test_a_second_take_at_the_same_time_updates_it_and_replaces_its_positions(account, broker, broker_state):
    first = snapshot_take(account=account, broker=broker, at=AT)
    with broker_state.edit() as state:
        row = broker_state.account(state, ACCOUNT)
        row["values"]["NetLiquidation"] = "101000.00"
        row["positions"] = [row["positions"][0]]

    second = snapshot_take(account=account, broker=broker, at=AT + timedelta(microseconds=500))

    assert second.pk == first.pk
    assert AccountSnapshot.objects.count() == 1
    snapshot = AccountSnapshot.objects.get()
    assert snapshot.net_liquidation == Decimal("101000.00") and snapshot.positions_count == 1
    assert list(PositionSnapshot.objects.values_list("instrument__symbol", flat=True)) == ["AAPL"]
    assert [r.status for r in runs()] == [SyncStatus.SUCCESS, SyncStatus.SUCCESS]


@pytest.mark.parametrize(
    ("first", "then", "kept"),
    [
        (SnapshotKind.CLOSE, SnapshotKind.HOURLY, SnapshotKind.CLOSE),
        (SnapshotKind.CLOSE, SnapshotKind.MANUAL, SnapshotKind.CLOSE),
        (SnapshotKind.HOURLY, SnapshotKind.CLOSE, SnapshotKind.CLOSE),
        (SnapshotKind.HOURLY, SnapshotKind.MANUAL, SnapshotKind.HOURLY),
    ],
)
def test_the_close_mark_survives_a_snapshot_on_the_same_second(account, broker, first, then, kept):
    at = datetime(2026, 11, 20, 21, tzinfo=UTC)  # the hourly tick and the close land on one second
    snapshot_take(account=account, broker=broker, at=at, kind=first)
    snapshot_take(account=account, broker=broker, at=at, kind=then)
    assert AccountSnapshot.objects.get().kind == kept


def test_another_snapshot_of_the_account_running_skips(account, broker):
    SyncRun.objects.create(kind=SyncKind.SNAPSHOTS, account=account, started_at=datetime.now(UTC))

    assert snapshot_take(account=account, broker=broker, at=AT) is None

    assert not AccountSnapshot.objects.exists()
    assert runs()[-1].status == SyncStatus.SKIPPED


def test_a_failed_write_changes_nothing_and_fails_the_run(account, broker, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("portfolio.services.snapshots.PositionSnapshot.objects.bulk_create", explode)

    assert snapshot_take(account=account, broker=broker, at=AT) is None

    assert not AccountSnapshot.objects.exists()
    (run,) = runs()
    assert run.status == SyncStatus.FAILED and run.message == "RuntimeError: disk full"


def test_take_all_asks_for_account_values_once_and_skips_inactive_accounts(settings, broker_state):
    state = broker_state.read()
    state["accounts"].append(AccountRowFactory(account_id="U7654321", positions=[StockPositionRowFactory()]))
    broker_state.write(state)
    AccountFactory(account_id=ACCOUNT)
    AccountFactory(account_id="U7654321")
    AccountFactory(account_id="DU0000009", is_active=False)

    class CountingBroker(SimulatedBroker):
        calls = 0

        def accounts(self):
            CountingBroker.calls += 1
            return super().accounts()

    snapshots = snapshots_take_all(broker=CountingBroker(settings.BROKER_STATE_FILE), kind=SnapshotKind.HOURLY, at=AT)

    assert CountingBroker.calls == 1
    assert [(s.account.account_id, s.positions_count) for s in snapshots] == [(ACCOUNT, 2), ("U7654321", 1)]
    assert {s.taken_at for s in snapshots} == {AT}


def test_take_all_computes_every_account_when_the_broker_is_away(account, broker, broker_state):
    positions_sync(account=account, broker=broker)
    disconnect(broker_state)
    (snapshot,) = snapshots_take_all(broker=broker, kind=SnapshotKind.HOURLY, at=AT)
    assert snapshot.source == SnapshotSource.COMPUTED


# --- the daily close ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "due"),
    [
        ("2026-11-20T20:59:59+00:00", None),  # Friday in winter: closes 16:00 New York = 21:00 UTC
        ("2026-11-20T21:00:00+00:00", date(2026, 11, 20)),
        ("2026-11-21T04:59:00+00:00", date(2026, 11, 20)),  # still the 20th in New York
        ("2026-07-15T19:59:59+00:00", None),  # summer: 16:00 New York = 20:00 UTC
        ("2026-07-15T20:00:00+00:00", date(2026, 7, 15)),
        ("2026-11-27T17:59:59+00:00", None),  # the day after Thanksgiving closes at 13:00 New York
        ("2026-11-27T18:00:00+00:00", date(2026, 11, 27)),
        ("2026-11-26T22:00:00+00:00", None),  # Thanksgiving: no session
        ("2026-11-21T22:00:00+00:00", None),  # Saturday
        ("2026-12-25T22:00:00+00:00", None),  # Christmas
    ],
)
def test_close_snapshot_due(account, now, due):
    assert close_snapshot_due(now=datetime.fromisoformat(now)) == due


def test_no_account_no_close_due():
    assert close_snapshot_due(now=datetime(2026, 11, 20, 22, tzinfo=UTC)) is None


def test_close_snapshot_is_stamped_at_the_early_close_and_taken_once(account, broker):
    now = datetime(2026, 11, 27, 18, 7, 31, tzinfo=UTC)

    (snapshot,) = close_snapshots_take(broker=broker, now=now)

    assert snapshot.taken_at == datetime(2026, 11, 27, 18, tzinfo=UTC)
    assert (snapshot.kind, snapshot.trade_date, snapshot.source) == (
        SnapshotKind.CLOSE,
        date(2026, 11, 27),
        SnapshotSource.BROKER,
    )
    assert close_snapshot_due(now=now + timedelta(minutes=10)) is None
    assert close_snapshots_take(broker=broker, now=now + timedelta(minutes=10)) == []
    assert AccountSnapshot.objects.count() == 1 and len(runs()) == 1


def test_close_snapshots_only_for_the_accounts_that_lack_one(account, broker, broker_state):
    state = broker_state.read()
    state["accounts"].append(AccountRowFactory(account_id="U7654321"))
    broker_state.write(state)
    other = AccountFactory(account_id="U7654321")
    close = datetime(2026, 11, 20, 21, tzinfo=UTC)
    snapshot_take(account=account, broker=broker, at=close, kind=SnapshotKind.CLOSE)

    (snapshot,) = close_snapshots_take(broker=broker, now=close + timedelta(minutes=3))

    assert (snapshot.account, snapshot.taken_at, snapshot.kind) == (other, close, SnapshotKind.CLOSE)
    assert close_snapshot_due(now=close + timedelta(minutes=13)) is None


def test_an_hourly_snapshot_at_the_close_second_does_not_count_as_the_close(account, broker):
    close = datetime(2026, 11, 20, 21, tzinfo=UTC)
    snapshot_take(account=account, broker=broker, at=close, kind=SnapshotKind.HOURLY)
    assert close_snapshot_due(now=close) == date(2026, 11, 20)

    close_snapshots_take(broker=broker, now=close)

    assert AccountSnapshot.objects.get().kind == SnapshotKind.CLOSE


def test_close_snapshot_during_an_outage_is_computed_and_flagged(account, broker, broker_state):
    positions_sync(account=account, broker=broker)
    disconnect(broker_state)
    (snapshot,) = close_snapshots_take(broker=broker, now=datetime(2026, 11, 20, 21, 5, tzinfo=UTC))
    assert (snapshot.kind, snapshot.source) == (SnapshotKind.CLOSE, SnapshotSource.COMPUTED)
    assert snapshot.note.startswith("broker unreachable")


# --- queries do not grow with the number of positions ------------------------------------------
def memory(account_id: str, rows: list[BrokerPosition]) -> MemoryBroker:
    """Answers from memory, so only the snapshot's own queries are counted."""
    values = AccountValues(net_liquidation=Decimal("1000"), total_cash=Decimal("10"))
    return MemoryBroker(accounts=[BrokerAccount(account_id, "MARGIN", "USD", values)], positions={account_id: rows})


def memory_broker(account, size: int) -> MemoryBroker:
    instruments = InstrumentFactory.create_batch(size)  # known instruments: the steady state
    rows = [BrokerPosition(account.account_id, i.spec, Decimal(10), Decimal("9.5"), Decimal(10)) for i in instruments]
    return memory(account.account_id, rows)


# SAVEPOINT/INSERT/RELEASE of the RUNNING run, the instruments, then in one transaction (SAVEPOINT):
# the snapshot upsert, the DELETE and INSERT of its position rows, the run's UPDATE, RELEASE. On
# PostgreSQL the run's advisory lock is taken and released too.
BROKER_QUERIES = 10 + HOLDER_LOCK_QUERIES


@pytest.mark.parametrize("size", [3, 60])  # SQLite splits an INSERT above 999 parameters: 60 x 7 stays below
def test_broker_snapshot_queries_are_fixed(django_assert_num_queries, size):
    account = AccountFactory()
    broker = memory_broker(account, size)
    with django_assert_num_queries(BROKER_QUERIES):
        snapshot = snapshot_take(account=account, broker=broker, at=AT)
    assert snapshot.positions_count == size
    with django_assert_num_queries(BROKER_QUERIES):  # a retake replaces the rows: same count
        snapshot_take(account=account, broker=broker, at=AT)


# As above, with the open positions and the account status read instead of the instruments.
COMPUTED_QUERIES = 11 + HOLDER_LOCK_QUERIES


@pytest.mark.parametrize("size", [3, 60])
def test_computed_snapshot_queries_are_fixed(django_assert_num_queries, size):
    account = AccountFactory()
    broker = memory_broker(account, size)
    assert positions_sync(account=account, broker=broker).status == SyncStatus.SUCCESS

    class Away(MemoryBroker):
        def accounts(self):
            from core.brokers import BrokerUnavailable

            raise BrokerUnavailable("gateway restarting")

    with django_assert_num_queries(COMPUTED_QUERIES):
        snapshot = snapshot_take(account=account, broker=Away(accounts=[]), at=AT)
    assert snapshot.source == SnapshotSource.COMPUTED and snapshot.positions_count == size


# --- tasks and schedules -----------------------------------------------------------------------
def test_periodic_tasks_exist_with_their_schedules():
    periodic_tasks_ensure()

    hourly = PeriodicTask.objects.get(name="Portfolio snapshot")
    assert hourly.task == "portfolio.snapshot_portfolio" and hourly.interval is None
    crontab = hourly.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == ("0", "*", "*", "UTC")
    assert hourly.expire_seconds == 1800
    close = PeriodicTask.objects.get(name="Daily close snapshot")
    assert close.task == "portfolio.close_snapshot"
    assert (close.interval.every, close.interval.period) == (600, IntervalSchedule.SECONDS)
    assert close.expire_seconds == 500


def test_hourly_task_snapshots_every_account(account, broker_state):
    result = portfolio_snapshot_task.delay().get()

    assert result["status"] == "DONE"
    (summary,) = result["snapshots"]
    assert (summary["account"], summary["source"], summary["kind"]) == (ACCOUNT, "BROKER", "HOURLY")
    assert summary["net_liquidation"] == "100000.0000"


def test_hourly_task_is_single_flight(account, broker_state):
    with single_flight("portfolio.snapshot_portfolio") as acquired:
        assert acquired
        assert portfolio_snapshot_task.delay().get()["status"] == "SKIPPED"
    assert not AccountSnapshot.objects.exists()


def test_close_task_takes_the_close_once_due(account, broker_state):
    assert close_snapshot_task.delay(now="2026-11-27T17:50:00+00:00").get() == {"status": "NOT_DUE"}

    result = close_snapshot_task.delay(now="2026-11-27T18:04:00+00:00").get()

    assert result["status"] == "DONE"
    assert [s["taken_at"] for s in result["snapshots"]] == ["2026-11-27T18:00:00+00:00"]
    assert close_snapshot_task.delay(now="2026-11-27T18:14:00+00:00").get() == {"status": "NOT_DUE"}


# --- the command -------------------------------------------------------------------------------
def test_command_backfills_at_a_given_time(account, broker_state, capsys):
    call_command("snapshot_portfolio", "--at", "2026-11-20T10:30:00-05:00", "--json")

    (item,) = json.loads(capsys.readouterr().out)["accounts"]
    assert (item["account"], item["status"]) == (ACCOUNT, "SUCCESS")
    assert item["snapshot"]["taken_at"] == "2026-11-20T15:30:00+00:00"
    assert item["snapshot"]["kind"] == "MANUAL" and item["snapshot"]["source"] == "BROKER"
    snapshot = AccountSnapshot.objects.get()
    assert (snapshot.taken_at, snapshot.trade_date) == (datetime(2026, 11, 20, 15, 30, tzinfo=UTC), date(2026, 11, 20))
    assert SyncRun.objects.get(kind=SyncKind.SNAPSHOTS).reason == SyncReason.MANUAL


def test_command_replays_a_recorded_history(account, broker_state):
    for hour, value in [(15, "100000.00"), (16, "100500.00"), (17, "99800.00")]:
        with broker_state.edit() as state:
            broker_state.account(state, ACCOUNT)["values"]["NetLiquidation"] = value
        call_command(
            "snapshot_portfolio", "--account", ACCOUNT, "--at", f"2026-11-20T{hour}:00:00Z", "--kind", "HOURLY"
        )
    call_command("snapshot_portfolio", "--at", "2026-11-20T16:00:00Z", "--kind", "HOURLY")  # replayed again

    values = list(AccountSnapshot.objects.order_by("taken_at").values_list("kind", "net_liquidation"))
    assert values == [
        ("HOURLY", Decimal("100000.00")),
        ("HOURLY", Decimal("99800.00")),
        ("HOURLY", Decimal("99800.00")),
    ]


def test_command_text_output_and_defaults(account, broker, broker_state, capsys):
    call_command("snapshot_portfolio")
    out = capsys.readouterr().out
    assert f"{ACCOUNT}: SUCCESS BROKER HOURLY snapshot at" in out and "2 positions" in out
    positions_sync(account=account, broker=broker)
    disconnect(broker_state)
    call_command("snapshot_portfolio", "--kind", "CLOSE")
    out = capsys.readouterr().out
    assert "COMPUTED CLOSE snapshot" in out and "broker unreachable" in out
    assert AccountSnapshot.objects.filter(kind=SnapshotKind.CLOSE).get().taken_at.minute == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--at", "2026-11-20T15:00:00"], "has no time zone"),
        (["--at", "yesterday"], "is not an ISO 8601 time"),
        (["--at", "2999-01-01T00:00:00Z"], "is in the future"),
        (["--at", "2026-11-20T20:00:00Z", "--kind", "CLOSE"], r"the close of 2026-11-20 is 2026-11-20T21:00:00\+00:00"),
        (["--at", "2025-11-27T21:00:00Z", "--kind", "CLOSE"], "must be an NYSE session's close$"),  # Thanksgiving
        (["--account", "NOPE"], "unknown account 'NOPE'"),
    ],
)
def test_command_refuses_bad_input(account, broker_state, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("snapshot_portfolio", *arguments)
    assert not AccountSnapshot.objects.exists()


def test_command_exits_1_when_a_snapshot_failed(account, broker_state, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("portfolio.services.snapshots._write", explode)
    with pytest.raises(SystemExit) as exit_info:
        call_command("snapshot_portfolio")
    assert exit_info.value.code == 1


def test_instruments_unknown_so_far_are_created(account):
    spec = InstrumentSpec(symbol="NEWCO", con_id=99_999_001)
    broker = memory(ACCOUNT, [BrokerPosition(ACCOUNT, spec, Decimal(5), Decimal(20), Decimal(21))])
    snapshot = snapshot_take(account=account, broker=broker, at=AT)
    assert PositionSnapshot.objects.get(snapshot=snapshot).instrument.symbol == "NEWCO"
