"""Issue #18: options to the end of their life. After the expiry session's close, an option the broker no
longer lists ended: expired worthless, or exercised / assigned when the underlying moved by the
deliverable without fills. Settled as ledger fills under deterministic ids (a Flex statement of the same
event recognises them), the premium in the delivered stock's basis (domain rules)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.brokers.base import BrokerAccount, BrokerExecution, BrokerPosition
from core.brokers.contracts import InstrumentSpec, OptionRight, SecType
from core.brokers.expiries import settlement_exec_id
from core.brokers.memory import MemoryBroker
from portfolio import tasks
from portfolio.models import Position, PositionEvent, PositionEventKind, PositionStatus
from portfolio.rules.expiries import expiry_close, is_past_expiry
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory, InstrumentFactory, PositionFactory, UserFactory
from tests.flex_reports import flex_xml, trade_row
from trading.models import Execution, ExecutionSource, Lot, RoundTrip, SettlementTracking
from trading.services.executions import executions_ingest
from trading.services.flex import flex_import

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
D = Decimal
K = PositionEventKind
FRIDAY = date(2026, 11, 20)  # a full session: closes 16:00 New York (21:00 UTC)
EARLY_CLOSE = date(2026, 11, 27)  # the day after Thanksgiving: closes 13:00 New York (18:00 UTC)


def option(symbol="SPY", strike="600", right=OptionRight.CALL, expiry=FRIDAY) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=symbol,
        sec_type=SecType.OPTION,
        con_id=None,
        multiplier=D(100),
        expiry=expiry,
        strike=D(strike),
        right=right,
    )


def stock(symbol="XYZ") -> InstrumentSpec:
    return InstrumentSpec(symbol=symbol)


class Desk:
    """An account at a broker held in memory: its fills and its positions, edited between syncs."""

    def __init__(self, account) -> None:
        self.account = account
        self.id = account.account_id
        self.fills: list[BrokerExecution] = []
        self.broker = MemoryBroker(
            accounts=[BrokerAccount(account_id=self.id, account_type="MARGIN", base_currency="USD")],
            positions={self.id: []},
            executions={self.id: self.fills},
        )

    def fill(self, spec, side, quantity, price, when, commission="0"):
        self.fills.append(
            BrokerExecution(
                account_id=self.id,
                exec_id=f"{'x' if self.id == ACCOUNT else self.id}.{len(self.fills) + 1:04d}",
                instrument=spec,
                side=side,
                quantity=D(quantity),
                price=D(price),
                executed_at=when,
                commission=D(commission),
            )
        )
        run = executions_ingest(account=self.account, broker=self.broker)
        assert run.status == "SUCCESS", run.message

    def holds(self, *rows):
        """The broker's positions: (spec, quantity, average price per unit)."""
        self.broker.position_rows[self.id] = [
            BrokerPosition(account_id=self.id, instrument=s, quantity=D(q), average_price=D(a), market_price=D(a))
            for s, q, a in rows
        ]

    def sync(self):
        run = positions_sync(account=self.account, broker=self.broker)
        assert run.status == "SUCCESS", run.message
        return run


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def desk(account):
    return Desk(account)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def position_of(spec: InstrumentSpec) -> Position:
    return Position.objects.filter(instrument__key=spec.key).latest("opened_at")


def kinds(position: Position) -> list[str]:
    return list(position.events.order_by("at", "id").values_list("kind", flat=True))


def leg_id(spec: InstrumentSpec, leg: str) -> str:
    return settlement_exec_id(account_id=ACCOUNT, option_key=spec.key, leg=leg)


# --- the example and each way an option ends ---------------------------------------------------
def test_long_call_expired_worthless_realizes_its_cost(desk):
    """The issue's example: bought 2 SPY 600C at 5.00 (commission 1.30), expired worthless: -1,001.30.
    Before: a MISSING/RECONCILE position open forever with its lot; now a fill at 0 closes it."""
    call = option()
    desk.fill(call, "BUY", "2", "5.00", at(date(2026, 11, 17), 15), commission="1.30")
    desk.holds((call, "2", "5.0065"))
    desk.sync()
    assert position_of(call).status == PositionStatus.OPEN
    desk.holds()  # the weekend: the option is gone
    desk.sync()

    position = position_of(call)
    assert (position.status, position.realized_pnl, position.quantity) == (PositionStatus.CLOSED, D("-1001.30"), 0)
    assert kinds(position) == [K.OPENED, K.EXPIRED]
    assert "expired worthless" in position.events.get(kind=K.EXPIRED).note
    assert position.closed_at == at(FRIDAY, 21)  # the expiry session's close, 16:00 New York
    expiry = Execution.objects.get(exec_id=leg_id(call, "exp"))
    assert (expiry.side, expiry.quantity, expiry.price, expiry.source) == ("SELL", 2, 0, ExecutionSource.INFERRED)
    assert expiry.realized_pnl == D("-1001.30")
    trip = RoundTrip.objects.get(instrument=expiry.instrument)
    assert (trip.realized_pnl, trip.outcome) == (D("-1001.30"), "LOSS")
    assert not Lot.objects.filter(instrument=expiry.instrument).exists()
    assert not PositionEvent.objects.filter(kind__in=[K.MISSING, K.RECONCILE]).exists()
    desk.sync()  # settled once: a later sync writes nothing more
    assert Execution.objects.count() == 2 and kinds(position_of(call)) == [K.OPENED, K.EXPIRED]


def test_short_put_expired_keeps_the_premium(desk):
    put = option(strike="550", right=OptionRight.PUT)
    desk.fill(put, "SELL", "1", "2.00", at(date(2026, 11, 16), 15), commission="1.00")
    desk.holds((put, "-1", "1.99"))
    desk.sync()
    desk.holds()
    desk.sync()
    position = position_of(put)
    assert (position.status, position.realized_pnl) == (PositionStatus.CLOSED, D("199.00"))
    assert kinds(position) == [K.OPENED, K.EXPIRED]


def test_short_put_assigned_buys_the_stock_at_the_strike_with_the_premium_in_its_basis(desk):
    """Short put assigned at 50 for a 2.00 premium: shares with a basis of 48.00 each (domain rules)."""
    put = option("XYZ", "50", OptionRight.PUT)
    desk.fill(put, "SELL", "1", "2.00", at(date(2026, 11, 16), 15))
    desk.holds((put, "-1", "2.00"))
    desk.sync()
    desk.holds((stock(), "100", "48"))  # the option gone, 100 XYZ with no fill of ours
    desk.sync()

    option_position, shares = position_of(put), position_of(stock())
    assert kinds(option_position) == [K.OPENED, K.ASSIGNED]
    assert (option_position.status, option_position.realized_pnl) == (PositionStatus.CLOSED, D("0.00"))
    assert (shares.status, shares.quantity, shares.average_price) == (PositionStatus.OPEN, 100, D("48.00"))
    assert kinds(shares) == [K.OPENED]
    assert "premium moved into the delivered stock" in option_position.events.get(kind=K.ASSIGNED).note
    assert "delivered at the strike" in shares.events.get().note
    delivery = Execution.objects.get(exec_id=leg_id(put, "stk"))
    assert (delivery.side, delivery.quantity, delivery.price) == ("BUY", 100, D("50"))
    assert delivery.basis_transfer == D("-200.00")
    assert Execution.objects.get(exec_id=leg_id(put, "asg")).basis_transfer == D("200.00")
    assert Lot.objects.get(instrument=delivery.instrument).cost_price == D("48")
    # Stock delivered by an assignment settles on the equity cycle: T+1 from the expiry.
    assert SettlementTracking.objects.get(execution=delivery).settlement_date == date(2026, 11, 23)
    # The broker's 48 agrees with the fills: no difference recorded.
    assert not PositionEvent.objects.filter(kind=K.RECONCILE).exists()


def test_long_call_exercised_buys_the_stock_with_the_premium_added(desk):
    """A long call exercised at 50 bought for 3.00 makes a basis of 53.00 (domain rules)."""
    call = option("XYZ", "50", OptionRight.CALL)
    desk.fill(call, "BUY", "1", "3.00", at(date(2026, 11, 16), 15))
    desk.holds((call, "1", "3.00"))
    desk.sync()
    desk.holds((stock(), "100", "53"))
    desk.sync()

    assert kinds(position_of(call)) == [K.OPENED, K.EXERCISED]
    assert position_of(call).realized_pnl == 0
    shares = position_of(stock())
    assert (shares.quantity, shares.average_price) == (100, D("53.00"))
    # Selling the shares later realizes against that basis: the premium is part of the stock's trade.
    desk.fill(stock(), "SELL", "100", "55", at(date(2026, 11, 24), 15))
    assert Execution.objects.get(exec_id="x.0002").realized_pnl == D("200.00")


def test_partial_assignment_of_a_multi_contract_short(desk):
    """Short 3 puts, 2 assigned (200 shares delivered), 1 expired: its premium realized, the others' in
    the stock's basis."""
    put = option("XYZ", "50", OptionRight.PUT)
    desk.fill(put, "SELL", "3", "2.00", at(date(2026, 11, 16), 15))
    desk.holds((put, "-3", "2.00"))
    desk.sync()
    desk.holds((stock(), "200", "48"))
    desk.sync()

    position = position_of(put)
    assert kinds(position) == [K.OPENED, K.ASSIGNED, K.EXPIRED]
    assert (position.status, position.realized_pnl) == (PositionStatus.CLOSED, D("200.00"))
    assigned, expired = (Execution.objects.get(exec_id=leg_id(put, leg)) for leg in ("asg", "exp"))
    assert (assigned.quantity, assigned.realized_pnl, expired.quantity, expired.realized_pnl) == (
        2,
        D("0.00"),
        1,
        D("200.00"),
    )
    shares = position_of(stock())
    assert (shares.quantity, shares.average_price) == (200, D("48.00"))


def test_expiry_on_an_early_close_day(desk):
    """The day after Thanksgiving closes at 13:00 New York: the option has ended from then on."""
    call = option(expiry=EARLY_CLOSE)
    assert expiry_close(EARLY_CLOSE) == at(EARLY_CLOSE, 18)
    desk.fill(call, "BUY", "1", "4.00", at(date(2026, 11, 24), 15))
    desk.holds((call, "1", "4.00"))
    desk.sync()
    position = position_of(call)
    assert not is_past_expiry(position, now=at(EARLY_CLOSE, 17, 59))
    assert is_past_expiry(position, now=at(EARLY_CLOSE, 18))
    desk.holds()
    desk.sync()
    position = position_of(call)
    assert (position.status, position.closed_at, position.realized_pnl) == (
        PositionStatus.CLOSED,
        at(EARLY_CLOSE, 18),
        D("-400.00"),
    )
    assert Execution.objects.get(exec_id=leg_id(call, "exp")).trade_date == EARLY_CLOSE


# --- what is not an expiry -------------------------------------------------------------------------
def test_an_option_that_vanished_before_its_expiry_is_still_missing_not_expired(account):
    """Sync mode (no fills): a MISSING event, kept open; with fills: a RECONCILE difference. Never expired."""
    call = option(expiry=date(2027, 1, 15))
    desk = Desk(account)
    desk.holds((call, "1", "4.00"))
    desk.sync()
    desk.holds()
    desk.sync()
    position = position_of(call)
    assert position.status == PositionStatus.OPEN and kinds(position) == [K.OPENED, K.MISSING]

    desk.fill(call, "BUY", "1", "4.00", at(date(2026, 11, 24), 15))  # the account now has fills
    desk.sync()
    assert position_of(call).status == PositionStatus.OPEN
    assert not PositionEvent.objects.filter(kind__in=[K.EXPIRED, K.EXERCISED, K.ASSIGNED]).exists()
    assert not Execution.objects.filter(exec_id__startswith="optx-").exists()


def test_an_option_still_listed_after_its_expiry_awaits_settlement(desk, client):
    """The broker still lists it during the weekend's processing: left open, and the page says so."""
    call = option()
    desk.fill(call, "BUY", "1", "5.00", at(date(2026, 11, 17), 15))
    desk.holds((call, "1", "5.00"))
    desk.sync()
    desk.sync()
    assert position_of(call).status == PositionStatus.OPEN
    assert not Execution.objects.filter(exec_id__startswith="optx-").exists()


def test_sync_mode_option_expires_in_place_with_a_known_loss(account):
    """An account without fills: no opening fill to match a closing one, so the position is closed in
    place; the loss is known (the option is worth 0), not estimated."""
    PositionFactory(
        account=account,
        instrument=InstrumentFactory(option=True, symbol="SPY", expiry=FRIDAY, strike=D("600")),
        quantity=D(2),
        average_price=D("5.0065"),
        opened_at=at(date(2026, 11, 17), 15),
    )
    desk = Desk(account)
    desk.sync()
    position = Position.objects.get()
    assert (position.status, position.realized_pnl, position.realized_pnl_estimated) == (
        PositionStatus.CLOSED,
        D("-1001.30"),
        False,
    )
    assert kinds(position) == [K.EXPIRED]
    assert not Execution.objects.exists()


# --- Flex after the sync ---------------------------------------------------------------------------
def _flex_rows(put: InstrumentSpec, *, assigned: int, expired: int, delivered: int) -> bytes:
    common = {
        "assetCategory": "OPT",
        "symbol": "XYZ   261120P00050000",
        "underlyingSymbol": "XYZ",
        "conid": "",
        "multiplier": "100",
        "strike": "50",
        "expiry": "20261120",
        "putCall": "P",
        "ibExecID": "",
        "transactionType": "BookTrade",
        "buySell": "BUY",
        "tradePrice": "0",
        "ibCommission": "0",
        "dateTime": "20261120;162000",
        "tradeDate": "20261120",
        "ibOrderID": "",
    }
    rows = []
    if assigned:
        rows.append(trade_row(**common, quantity=str(assigned), notes="A", tradeID="9001", transactionID="9101"))
    if expired:
        rows.append(trade_row(**common, quantity=str(expired), notes="Ep", tradeID="9002", transactionID="9102"))
    if delivered:
        rows.append(
            trade_row(
                symbol="XYZ",
                conid="",
                quantity=str(delivered),
                tradePrice="50",
                notes="A",
                ibExecID="",
                transactionType="BookTrade",
                ibCommission="0",
                dateTime="20261120;162000",
                tradeDate="20261120",
                tradeID="9003",
                transactionID="9103",
                ibOrderID="",
            )
        )
    return flex_xml(*rows)


def _assigned_desk(desk, *, contracts: int, delivered: int):
    put = option("XYZ", "50", OptionRight.PUT)
    desk.fill(put, "SELL", str(contracts), "2.00", at(date(2026, 11, 16), 15))
    desk.holds((put, str(-contracts), "2.00"))
    desk.sync()
    desk.holds(*([(stock(), str(delivered), "48")] if delivered else []))
    desk.sync()
    return put


def test_a_flex_statement_after_the_sync_inferred_the_same_event_changes_nothing(desk, tmp_path):
    put = _assigned_desk(desk, contracts=3, delivered=200)
    before = {
        e.exec_id: (e.side, e.quantity, e.price, e.realized_pnl, e.basis_transfer) for e in Execution.objects.all()
    }
    report = tmp_path / "flex.xml"
    report.write_bytes(_flex_rows(put, assigned=2, expired=1, delivered=200))
    result = flex_import(path=report)

    (summary,) = result.accounts
    assert (summary.created, summary.disagreements) == (0, 0), summary.warnings
    after = {
        e.exec_id: (e.side, e.quantity, e.price, e.realized_pnl, e.basis_transfer) for e in Execution.objects.all()
    }
    assert after == before  # nothing doubled, nothing moved
    assert set(Execution.objects.filter(exec_id__startswith="optx-").values_list("source", flat=True)) == {"FLEX"}
    assert position_of(stock()).average_price == D("48.00")
    assert RoundTrip.objects.filter(instrument__key=put.key).count() == 1


def test_a_flex_statement_that_disagrees_with_the_sync_wins_and_the_disagreement_is_kept(desk, tmp_path):
    """The sync saw no stock move (say the delivery came a sync later) and inferred an expiry; the
    statement says 1 contract was assigned: its fills replace the inferred ones."""
    put = _assigned_desk(desk, contracts=1, delivered=0)
    assert Execution.objects.filter(exec_id=leg_id(put, "exp")).exists()
    report = tmp_path / "flex.xml"
    report.write_bytes(_flex_rows(put, assigned=1, expired=0, delivered=100))
    result = flex_import(path=report)

    (summary,) = result.accounts
    assert summary.disagreements == 1
    assert any("differs from what the position sync inferred" in w for w in summary.warnings)
    assert not Execution.objects.filter(exec_id=leg_id(put, "exp")).exists()
    assigned = Execution.objects.get(exec_id=leg_id(put, "asg"))
    assert assigned.broker_disagreement["inferred_by_sync"][0]["exec_id"] == leg_id(put, "exp")
    assert Lot.objects.get(instrument__key=stock().key).cost_price == D("48")


# --- the page and the periodic task ----------------------------------------------------------------
def test_the_positions_page_says_an_option_awaits_settlement(desk, client):
    call = option()
    desk.fill(call, "BUY", "1", "5.00", at(date(2026, 11, 17), 15))
    desk.fill(stock("SPY"), "BUY", "10", "600", at(date(2026, 11, 17), 15))
    desk.holds((call, "1", "5.00"), (stock("SPY"), "10", "600"))  # still listed after the expiry
    desk.sync()
    user = UserFactory()
    desk.account.users.add(user)
    client.force_login(user)
    page = client.get("/positions/")
    assert page.status_code == 200
    assert page.content.decode().count("past expiry, awaiting settlement") == 1  # the option, not the stock
    desk.holds((stock("SPY"), "10", "600"))
    desk.sync()
    assert "awaiting settlement" not in client.get("/positions/").content.decode()


def test_the_option_expiries_task_syncs_only_accounts_holding_options_past_expiry(desk, settings, monkeypatch):
    call = option()
    desk.fill(call, "BUY", "1", "5.00", at(date(2026, 11, 17), 15))
    desk.holds((call, "1", "5.00"))
    desk.sync()
    AccountFactory()  # holds nothing: not synced
    monkeypatch.setattr(tasks, "get_broker", lambda: desk.broker)
    assert tasks.option_expiries_task(now="2026-11-20T20:59:00+00:00") == {"status": "NOT_DUE"}  # before the close
    desk.holds()
    result = tasks.option_expiries_task(now="2026-11-20T21:20:00+00:00")
    assert result["status"] == "DONE" and [r["account"] for r in result["runs"]] == [ACCOUNT]
    assert position_of(call).status == PositionStatus.CLOSED
    assert tasks.option_expiries_task(now="2026-11-20T21:40:00+00:00") == {"status": "NOT_DUE"}


def test_settling_many_options_costs_the_queries_of_one(account):
    """The expiry step's own queries do not grow with the number of options that ended (and a sync with
    nothing to settle pays nothing for it: the other sync query pins still hold). Each option is an
    instrument of its own, which the ledger's recompute refreshes as it does after any ingest: that, and
    only that, grows (a few statements per instrument: its matches, round trips, day trades)."""

    def settle(desk: Desk, strikes: list[str]) -> int:
        calls = [option(strike=s) for s in strikes]
        for call in calls:
            desk.fill(call, "BUY", "1", "5.00", at(date(2026, 11, 17), 15))
        desk.holds(*[(call, "1", "5.00") for call in calls])
        desk.sync()
        desk.holds()
        with CaptureQueriesContext(connection) as queries:
            desk.sync()
        assert Position.objects.filter(account=desk.account, status=PositionStatus.CLOSED).count() == len(strikes)
        return len(queries)

    one = settle(Desk(account), ["600"])
    other = AccountFactory(account_id="DU7654321")
    many = settle(Desk(other), ["590", "600", "610", "620"])
    assert many == one + 3 * LEDGER_REFRESH_PER_INSTRUMENT[connection.vendor]


# What ledger_recompute's refresh of one more instrument costs (PostgreSQL writes a lot match and a
# round trip with COPY in the statements it already runs).
LEDGER_REFRESH_PER_INSTRUMENT = {"sqlite": 6, "postgresql": 4}
