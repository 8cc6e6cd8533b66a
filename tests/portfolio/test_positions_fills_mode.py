"""Issue #19: holdings built from the fills, the broker sync as reconciliation.

An account the ledger has fills for is in "fills" mode: one position per flat-to-flat holding, events
at the fills' times, realized P&L from the lots; the sync brings prices and compares, and a difference
the fills cannot explain is a RECONCILE event until they can. An account without fills keeps the
sync-driven lifecycle.
"""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from portfolio.models import Position, PositionEvent, PositionEventKind, PositionStatus, ReconcileCause
from portfolio.selectors import positions_mode_get
from portfolio.services.holdings import positions_build_from_fills, positions_build_pending
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory, ExecutionRowFactory, StockPositionRowFactory, UserFactory
from trading.models import Execution, LedgerInstrument, RoundTrip
from trading.services.executions import executions_ingest
from trading.tasks import executions_ingest_task

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
DAY = datetime(2026, 11, 20, tzinfo=UTC)  # a Friday
K = PositionEventKind
D = Decimal


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def trader():
    return UserFactory()


@pytest.fixture
def account(trader):
    return AccountFactory(account_id=ACCOUNT, users=[trader])


@pytest.fixture
def broker(settings, broker_state):
    with broker_state.edit() as state:
        row = broker_state.account(state, ACCOUNT)
        row["positions"], row["executions"] = [], []
    return SimulatedBroker(settings.BROKER_STATE_FILE)


class Desk:
    """The broker's state of the example account, edited fill by fill and position by position."""

    def __init__(self, broker_state, account, broker) -> None:
        self.state, self.account, self.broker = broker_state, account, broker
        self.fills: list[dict] = []

    def fill(self, symbol: str, side: str, quantity: str, price: str, when: datetime, commission="1.00", **kw):
        row = ExecutionRowFactory(
            exec_id=kw.pop("exec_id", f"x.{len(self.fills) + 1:04d}"),
            symbol=symbol,
            con_id=CON_IDS[symbol],
            side=side,
            quantity=quantity,
            price=price,
            commission=commission,
            time=iso(when),
            **kw,
        )
        self.fills.append(row)
        return row

    def holds(self, *rows: tuple[str, str, str]) -> None:
        """The broker's positions: (symbol, quantity, average cost)."""
        with self.state.edit() as state:
            account = self.state.account(state, ACCOUNT)
            account["positions"] = [
                StockPositionRowFactory(symbol=s, con_id=CON_IDS[s], quantity=q, avg_cost=a, market_price=a)
                for s, q, a in rows
            ]
            account["executions"] = list(self.fills)

    def ingest(self):
        with self.state.edit() as state:
            self.state.account(state, ACCOUNT)["executions"] = list(self.fills)
        return executions_ingest(account=self.account, broker=self.broker)

    def sync(self):
        with self.state.edit() as state:
            self.state.account(state, ACCOUNT)["executions"] = list(self.fills)
        run = positions_sync(account=self.account, broker=self.broker)
        assert run.status == "SUCCESS", run.message
        return run


CON_IDS = {"NVDA": 4815747, "AAPL": 265598, "MSFT": 272093, "TSLA": 76792991}


@pytest.fixture
def desk(broker_state, account, broker):
    return Desk(broker_state, account, broker)


def positions(symbol: str) -> list[Position]:
    return list(Position.objects.filter(instrument__symbol=symbol).order_by("opened_at", "id"))


def events(position: Position) -> list[tuple[str, Decimal, Decimal, datetime]]:
    return [(e.kind, e.quantity_before, e.quantity_after, e.at) for e in position.events.order_by("at", "id")]


def reconciles(position: Position) -> list[PositionEvent]:
    return list(position.events.filter(kind=K.RECONCILE).order_by("id"))


# --- the mode ----------------------------------------------------------------------------------
def test_an_account_without_fills_keeps_the_sync_driven_lifecycle(desk, account):
    desk.holds(("AAPL", "100", "150.25"))
    desk.sync()
    desk.holds(("AAPL", "60", "150.25"))
    desk.sync()
    [aapl] = positions("AAPL")
    assert [k for k, *_ in events(aapl)] == [K.OPENED, K.DECREASED]
    assert aapl.realized_pnl_estimated and not aapl.from_fills
    assert not aapl.events.filter(execution__isnull=False).exists()
    assert positions_mode_get(account=account) == "sync"


def test_an_account_with_fills_is_in_fills_mode(desk, account):
    desk.fill("AAPL", "BUY", "10", "150.00", at(14))
    desk.ingest()
    assert positions_mode_get(account=account) == "fills"
    assert LedgerInstrument.objects.filter(account=account).count() == 1


# --- a round trip between two syncs --------------------------------------------------------------
def test_a_round_trip_between_two_syncs_is_a_closed_position(desk, account, trader, django_capture_on_commit_callbacks):
    desk.fill("AAPL", "BUY", "10", "150.00", at(13))
    desk.holds(("AAPL", "10", "150.10"))
    desk.ingest()
    desk.sync()
    # 20 NVDA bought at 14:00 and sold at 14:03: the broker never shows them to a sync.
    desk.fill("NVDA", "BUY", "20", "180.00", at(14, 0))
    desk.fill("NVDA", "SELL", "20", "181.00", at(14, 3))
    with desk.state.edit() as state:
        desk.state.account(state, ACCOUNT)["executions"] = list(desk.fills)
    # The ingest task announces the fills after commit; portfolio's hook syncs and builds.
    with django_capture_on_commit_callbacks(execute=True):
        executions_ingest_task(account_ids=[ACCOUNT])
    [nvda] = positions("NVDA")
    assert nvda.status == PositionStatus.CLOSED and nvda.from_fills
    assert nvda.realized_pnl == D("18.0000") and not nvda.realized_pnl_estimated
    assert (nvda.opened_at, nvda.closed_at) == (at(14, 0), at(14, 3))
    assert events(nvda) == [(K.OPENED, 0, 20, at(14, 0)), (K.CLOSED, 20, 0, at(14, 3))]
    trip = RoundTrip.objects.get(instrument__symbol="NVDA")
    assert nvda.opening_execution_id == trip.opening_execution_id  # the round trip is found by it
    client = Client()
    client.force_login(trader)
    body = client.get("/api/portfolio/positions?status=closed").json()
    [row] = [r for r in body["results"] if r["symbol"] == "NVDA"]
    assert row["realized_pnl"] == "18.0000" and row["status"] == "CLOSED"
    page = client.get("/positions/?status=closed").content.decode()
    assert "NVDA" in page and "+$18.00" in page
    assert "from its fills" in page


# --- partial fills over several syncs ----------------------------------------------------------
def test_partial_fills_spread_over_several_syncs_are_one_position(desk):
    desk.fill("AAPL", "BUY", "30", "100.00", at(14, 0), commission="0")
    desk.holds(("AAPL", "30", "100.00"))
    desk.ingest()
    desk.sync()
    desk.fill("AAPL", "BUY", "30", "110.00", at(14, 10), commission="0")
    desk.holds(("AAPL", "60", "105.00"))
    desk.ingest()
    desk.sync()
    desk.fill("AAPL", "BUY", "40", "120.00", at(14, 20), commission="0")
    desk.fill("AAPL", "SELL", "50", "125.00", at(14, 25), commission="0")
    desk.holds(("AAPL", "50", "111.00"))  # the pool: (3000 + 3300 + 4800) / 100 = 111
    desk.ingest()
    desk.sync()
    desk.sync()
    [aapl] = positions("AAPL")
    assert aapl.status == PositionStatus.OPEN and aapl.quantity == D(50)
    assert aapl.opened_at == at(14, 0)
    assert [(k, b, a) for k, b, a, _ in events(aapl)] == [
        (K.OPENED, 0, 30),
        (K.INCREASED, 30, 60),
        (K.INCREASED, 60, 100),
        (K.DECREASED, 100, 50),
    ]
    # FIFO: 30 @ 100 and 20 @ 110 closed at 125; 10 @ 110 and 40 @ 120 left.
    assert aapl.realized_pnl == D("1050.0000")
    assert aapl.average_price == D(118) and aapl.average_cost == D(111)
    assert not reconciles(aapl)
    assert aapl.current_price == D("111.00") and aapl.market_value == D("5550.0000")


# --- a fill the sync saw before it was ingested --------------------------------------------------
def test_a_late_fill_resolves_the_difference_the_sync_saw(desk):
    desk.fill("NVDA", "BUY", "10", "180.00", at(14, 0), commission="0")
    desk.holds(("NVDA", "10", "180.00"))
    desk.ingest()
    desk.sync()
    # Bought 20 more at 14:05; the sync at 14:06 sees 30, the fill is not in yet.
    late = desk.fill("NVDA", "BUY", "20", "183.00", at(14, 5), commission="0")
    desk.fills.remove(late)
    desk.holds(("NVDA", "30", "182.00"))
    desk.sync()
    [nvda] = positions("NVDA")
    assert nvda.quantity == D(10) and nvda.broker_quantity == D(30)  # neither side overwritten
    [difference] = reconciles(nvda)
    assert (difference.quantity_before, difference.quantity_after) == (D(10), D(30))
    assert difference.cause == ReconcileCause.FILL_PENDING and difference.resolved_at is None
    desk.sync()  # seen again: nothing more
    assert len(reconciles(nvda)) == 1
    desk.fills.append(late)
    desk.ingest()
    result = positions_build_pending(account=desk.account)
    assert result.reconciles_resolved == 1
    nvda.refresh_from_db()
    assert nvda.quantity == D(30) and nvda.broker_quantity is None
    assert [(k, b, a) for k, b, a, _ in events(nvda) if k != K.RECONCILE] == [(K.OPENED, 0, 10), (K.INCREASED, 10, 30)]
    assert nvda.events.get(kind=K.INCREASED).at == at(14, 5)  # the fill's time, not the sync's
    assert reconciles(nvda)[0].resolved_at is not None
    desk.sync()
    assert len(reconciles(nvda)) == 1


def test_a_sale_the_sync_saw_first_closes_when_the_fill_arrives(desk):
    desk.fill("AAPL", "BUY", "100", "150.00", at(14, 0))
    desk.holds(("AAPL", "100", "150.01"))
    desk.ingest()
    desk.sync()
    desk.holds()  # sold at the broker, the fill not yet ingested
    desk.sync()
    [aapl] = positions("AAPL")
    assert aapl.status == PositionStatus.OPEN and aapl.broker_quantity == 0
    assert reconciles(aapl)[0].cause == ReconcileCause.FILL_PENDING
    desk.fill("AAPL", "SELL", "100", "155.00", at(14, 30))
    desk.ingest()
    desk.sync()
    aapl.refresh_from_db()
    assert aapl.status == PositionStatus.CLOSED and aapl.closed_at == at(14, 30)
    assert aapl.realized_pnl == D("498.0000") and not aapl.realized_pnl_estimated
    assert aapl.closing_execution == Execution.objects.get(exec_id=desk.fills[-1]["exec_id"])
    assert all(e.resolved_at for e in reconciles(aapl))


# --- a transfer in ----------------------------------------------------------------------------------
def test_a_transfer_in_without_fills_is_the_brokers_position_with_a_note(desk):
    desk.fill("AAPL", "BUY", "10", "150.00", at(13))
    desk.ingest()
    desk.holds(("AAPL", "10", "150.10"), ("MSFT", "50", "400.00"))
    desk.sync()
    [msft] = positions("MSFT")
    assert msft.status == PositionStatus.OPEN and msft.quantity == D(50) and not msft.from_fills
    [note] = reconciles(msft)
    assert (note.quantity_before, note.quantity_after, note.cause) == (0, D(50), ReconcileCause.TRANSFER_IN)
    assert [k for k, *_ in events(msft)] == [K.OPENED, K.RECONCILE]
    desk.sync()
    assert len(reconciles(msft)) == 1
    [aapl] = positions("AAPL")
    assert not reconciles(aapl)


def test_a_transfer_out_of_a_position_built_from_the_fills(desk):
    desk.fill("AAPL", "BUY", "100", "150.00", at(13))
    desk.holds(("AAPL", "100", "150.01"))
    desk.ingest()
    desk.sync()
    desk.sync()
    desk.holds(("AAPL", "40", "150.01"))
    desk.sync()
    [aapl] = positions("AAPL")
    assert aapl.quantity == D(100) and aapl.broker_quantity == D(40)
    assert reconciles(aapl)[0].cause == ReconcileCause.FILL_PENDING  # the broker moved: most likely a fill


# --- a split ----------------------------------------------------------------------------------------
def test_a_split_is_still_a_split_and_the_fills_are_read_in_the_new_units(desk):
    desk.fill("AAPL", "BUY", "100", "150.00", at(13), commission="0")
    desk.holds(("AAPL", "100", "150.00"))
    desk.ingest()
    desk.sync()
    desk.holds(("AAPL", "200", "75.00"))  # 2-for-1
    desk.sync()
    [aapl] = positions("AAPL")
    assert aapl.quantity == D(200) and aapl.average_price == D(75)
    assert [k for k, *_ in events(aapl)] == [K.OPENED, K.SPLIT] and not reconciles(aapl)
    assert positions_build_from_fills(account=desk.account).wrote_anything is False  # the split holds
    # The split is known from the sync that saw it: fills from then on are in the new units.
    desk.fill("AAPL", "SELL", "200", "80.00", timezone.now() + timedelta(seconds=1), commission="0")
    desk.holds()
    desk.ingest()
    desk.sync()
    aapl.refresh_from_db()
    assert aapl.status == PositionStatus.CLOSED and aapl.realized_pnl == D("1000.0000")
    assert not reconciles(aapl)


# --- a flip ---------------------------------------------------------------------------------------
def test_a_flip_from_long_to_short_inside_one_sync_interval(desk):
    desk.fill("TSLA", "BUY", "100", "250.00", at(14), commission="0")
    desk.holds(("TSLA", "100", "250.00"))
    desk.ingest()
    desk.sync()
    desk.fill("TSLA", "SELL", "150", "260.00", at(14, 2), commission="1.50")
    desk.holds(("TSLA", "-50", "259.99"))
    desk.ingest()
    desk.sync()
    long, short = positions("TSLA")
    assert long.status == PositionStatus.CLOSED and long.closed_at == at(14, 2)
    assert long.realized_pnl == D("999.0000")  # 100 x 10 - 1.00 (its share of the commission)
    assert short.status == PositionStatus.OPEN and short.quantity == D(-50) and short.opened_at == at(14, 2)
    assert [k for k, *_ in events(long)] == [K.OPENED, K.CLOSED]
    assert [k for k, *_ in events(short)] == [K.OPENED]
    assert long.closing_execution_id == short.opening_execution_id
    assert not reconciles(long) and not reconciles(short)


# --- positions the sync opened before the fills were known ------------------------------------------
def test_positions_the_sync_opened_are_adopted_by_their_holdings(desk):
    desk.fill("AAPL", "BUY", "100", "150.00", at(13, 0))
    desk.holds(("AAPL", "100", "150.01"))
    desk.sync()  # no fills yet: the sync opens it, "sync" mode
    [first] = positions("AAPL")
    assert not first.from_fills
    desk.ingest()
    desk.sync()
    [aapl] = positions("AAPL")
    assert aapl.pk == first.pk and aapl.from_fills
    assert aapl.opened_at == at(13, 0) and not aapl.realized_pnl_estimated
    # The sync's own OPENED stays (the history of what it saw), beside the fill's.
    assert [(k, e) for k, *_, e in [(e.kind, e.execution_id) for e in aapl.events.order_by("at", "id")]] == [
        (K.OPENED, Execution.objects.get().pk),
        (K.OPENED, None),
    ]


def test_a_position_that_disagrees_with_its_fills_keeps_the_fills_figure_and_notes_the_broker(desk):
    desk.fill("AAPL", "BUY", "40", "150.00", at(13, 0))
    desk.holds(("AAPL", "100", "150.01"))  # the fills are incomplete: 60 came in otherwise
    desk.sync()
    desk.ingest()
    desk.sync()
    [aapl] = positions("AAPL")
    assert aapl.from_fills and aapl.quantity == D(40) and aapl.broker_quantity == D(100)
    assert reconciles(aapl)[0].cause == ReconcileCause.TRANSFER_IN


# --- idempotency, late fills, and agreement with the round trips -----------------------------------
def _generated(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    held = {"AAPL": 0, "NVDA": 0}
    moment = at(14)
    rows = []
    for n in range(count):
        symbol = rng.choice(sorted(held))
        quantity = rng.choice([1, 5, 10, 20])
        position = held[symbol]
        side = ("SELL" if position > 0 else "BUY") if position and rng.random() < 0.55 else rng.choice(["BUY", "SELL"])
        held[symbol] += quantity if side == "BUY" else -quantity
        moment += timedelta(seconds=rng.choice([1, 20, 90]))
        rows.append(
            ExecutionRowFactory(
                exec_id=f"gen.{seed}.{n:04d}",
                symbol=symbol,
                con_id=CON_IDS[symbol],
                side=side,
                quantity=str(quantity),
                price=f"{rng.randint(9000, 11000) / 100:.2f}",
                commission=f"{rng.randint(0, 150) / 100:.2f}",
                time=iso(moment),
            )
        )
    return rows


def _spans(account) -> list[tuple]:
    return sorted(
        Position.objects.filter(account=account, status=PositionStatus.CLOSED).values_list(
            "instrument_id", "opened_at", "closed_at", "realized_pnl", "opening_execution_id", "closing_execution_id"
        )
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_positions_and_round_trips_agree_over_generated_fills(desk, account, seed):
    rows = _generated(seed, 120)
    rng = random.Random(seed)
    desk.fills, held_back = [], []
    for start in range(0, len(rows), 30):
        batch = rows[start : start + 30]
        late = rng.sample(batch, 3)  # these arrive with the next batch, after later fills
        desk.fills += held_back + [row for row in batch if row not in late]
        held_back = late
        desk.ingest()
        positions_build_pending(account=account)
    desk.fills += held_back
    desk.ingest()
    positions_build_pending(account=account)
    trips = sorted(
        RoundTrip.objects.filter(account=account).values_list(
            "instrument_id", "opened_at", "closed_at", "realized_pnl", "opening_execution_id", "closing_execution_id"
        )
    )
    spans = _spans(account)
    assert trips and [s for s in spans if s not in trips] == [] and [t for t in trips if t not in spans] == []
    # The open ones are the ledger's open positions.
    for position in Position.objects.filter(account=account, status=PositionStatus.OPEN):
        lots = account.lots.filter(instrument_id=position.instrument_id)
        assert position.quantity == sum(lot.quantity for lot in lots)
        assert position.opening_execution_id == lots.first().position_opening_execution_id
    # Every fill is on one position's timeline, at its own time.
    assert PositionEvent.objects.filter(execution__isnull=False).count() >= Execution.objects.count()
    # Building again writes nothing; a full rebuild finds the same (and keeps every key).
    keys = set(Position.objects.values_list("pk", flat=True))
    assert positions_build_pending(account=account).wrote_anything is False
    assert positions_build_from_fills(account=account).wrote_anything is False
    assert set(Position.objects.values_list("pk", flat=True)) == keys


def test_rebuild_positions_command_prints_what_differs_and_dry_run_writes_nothing(desk, account, capsys):
    desk.fill("NVDA", "BUY", "20", "180.00", at(14, 0))
    desk.fill("NVDA", "SELL", "20", "181.00", at(14, 3))
    desk.ingest()
    call_command("rebuild_positions", "--account", ACCOUNT, "--dry-run")
    out = capsys.readouterr().out
    assert "created" in out and "NVDA" in out and "dry run" in out
    assert not Position.objects.exists()
    call_command("rebuild_positions", "--account", ACCOUNT)
    assert Position.objects.get().realized_pnl == D("18.0000")
    call_command("rebuild_positions", "--account", ACCOUNT)
    assert "already agree" in capsys.readouterr().out.splitlines()[-1]


def test_the_position_page_shows_the_difference_and_sync_health_lists_it(desk, trader):
    desk.fill("AAPL", "BUY", "10", "150.00", at(13))
    desk.ingest()
    desk.holds(("AAPL", "10", "150.10"), ("MSFT", "50", "400.00"))
    desk.sync()
    [msft] = positions("MSFT")
    client = Client()
    client.force_login(trader)
    page = client.get(f"/positions/{msft.pk}/").content.decode()
    assert "Differs from the broker" in page and "transfer in" in page
    health = client.get("/sync-health/").content.decode()
    assert "MSFT" in health and "transfer in" in health


def test_after_fills_builds_the_positions_without_a_sync_too(desk):
    from portfolio.tasks import positions_after_fills_task

    desk.fill("NVDA", "BUY", "20", "180.00", at(14))
    desk.ingest()
    result = positions_after_fills_task(account_ids=[ACCOUNT], sync=False)  # POSITION_SYNC_ON_TRADE=false
    assert result["runs"] == [] and result["built"][ACCOUNT]["created"] == 1
    [nvda] = positions("NVDA")
    assert nvda.from_fills and nvda.quantity == D(20) and nvda.opened_at == at(14)
    assert positions_after_fills_task(account_ids=[ACCOUNT], sync=False)["built"][ACCOUNT]["created"] == 0


def test_an_average_the_fills_cannot_explain_is_a_difference_too(desk):
    desk.fill("AAPL", "BUY", "100", "150.00", at(13), commission="1.00")  # 150.01 a share, commission in
    desk.holds(("AAPL", "100", "149.00"))
    desk.ingest()
    desk.sync()
    [aapl] = positions("AAPL")
    [difference] = reconciles(aapl)
    assert difference.cause == ReconcileCause.COST
    assert (difference.average_price_before, difference.average_price_after) == (D("150.01"), D("149.00"))
    desk.holds(("AAPL", "100", "150.01"))
    desk.sync()
    aapl.refresh_from_db()
    assert aapl.broker_quantity is None and reconciles(aapl)[0].resolved_at is not None
