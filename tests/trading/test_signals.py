"""Signals and paper trades: idempotent signals, execution through every risk check, the monitor's exits."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from marketdata.models import Quote
from tests.factories import AccountFactory, QuoteFactory
from trading.models import (
    Execution,
    Order,
    OrderStatus,
    PaperTrade,
    PaperTradeStatus,
    Signal,
    SignalStatus,
)
from trading.services.signals import (
    SignalError,
    SignalInput,
    paper_trade_close,
    paper_trades_monitor,
    signal_create,
    signal_execute,
)

pytestmark = pytest.mark.django_db

SIGNALS = "/api/trading/signals"


def signal_input(**kwargs) -> SignalInput:
    values = {
        "signal_id": "s-1",
        "symbol": "AAPL",
        "action": "BUY",
        "entry_price": Decimal("100.00"),
        "stop_loss": Decimal("98.00"),
        "take_profit": Decimal("104.00"),
        "risk_amount": Decimal("200"),
        "confidence": Decimal("0.8"),
        "timeframe": "intraday",
        "strategy": "breakout",
        "reasoning": "broke the morning range on volume",
        "indicators": ["vwap", "rsi"],
    }
    values.update(kwargs)
    return SignalInput(**values)


def quote(bid: str, ask: str, at: datetime) -> None:
    Quote.objects.update(bid=Decimal(bid), ask=Decimal(ask), last=Decimal(bid), at=at, fetched_at=at)


@pytest.fixture
def opened(paper_account, aapl, clock):
    """A long AAPL paper trade: 100 shares (200 / |100 - 98|) bought at the ask, 100.00."""
    signal, _ = signal_create(account=paper_account, data=signal_input())
    signal = signal_execute(signal=signal)
    return PaperTrade.objects.get(signal=signal)


def test_executing_a_signal_sizes_from_the_risk_and_opens_a_paper_trade(opened):
    signal = opened.signal
    assert signal.status == SignalStatus.EXECUTED and signal.order.status == OrderStatus.FILLED
    assert opened.quantity == Decimal(100) and opened.entry_price == Decimal("100.00")
    assert (opened.stop_loss, opened.take_profit) == (Decimal("98.00"), Decimal("104.00"))
    order = signal.order
    assert all(c["passed"] for c in order.checks)  # judged by every risk check
    assert order.decision_price == Decimal("100.00") and order.strategy == "breakout"
    assert order.risk_reward == Decimal(2)
    assert Execution.objects.get().source == "PAPER"


def test_signal_creation_is_idempotent_by_signal_id(paper_account, aapl):
    first, created = signal_create(account=paper_account, data=signal_input())
    again, created_again = signal_create(account=paper_account, data=signal_input(entry_price=Decimal("101")))
    assert created and not created_again and again.pk == first.pk and again.entry_price == Decimal("100.00")
    assert Signal.objects.count() == 1


def test_a_stop_on_the_wrong_side_is_refused_naming_the_field(paper_account, aapl):
    with pytest.raises(ValueError) as error:
        signal_create(account=paper_account, data=signal_input(stop_loss=Decimal("101")))
    assert "stop_loss" in error.value.args[0]


def test_a_refused_order_leaves_the_signal_generated_with_the_reasons(paper_account, aapl, settings):
    settings.MAX_ORDER_QUANTITY = Decimal(50)
    signal, _ = signal_create(account=paper_account, data=signal_input())
    signal = signal_execute(signal=signal)
    assert signal.status == SignalStatus.GENERATED
    assert signal.order.status == OrderStatus.REJECTED and signal.status_reasons[0].startswith("quantity")
    assert not PaperTrade.objects.exists()
    # Executed again with a smaller size: a new order (the refused one is kept), the trade opens.
    signal = signal_execute(signal=signal, quantity=Decimal(40))
    assert signal.status == SignalStatus.EXECUTED and Order.objects.count() == 2
    assert PaperTrade.objects.get().quantity == Decimal(40)


def test_a_signal_expires_at_expires_at(paper_account, aapl, clock):
    signal, _ = signal_create(account=paper_account, data=signal_input(expires_at=clock.now + timedelta(minutes=10)))
    clock.set(clock.now + timedelta(minutes=10))
    assert paper_trades_monitor().expired == 1
    signal.refresh_from_db()
    assert signal.status == SignalStatus.EXPIRED
    with pytest.raises(SignalError, match="EXPIRED"):
        signal_execute(signal=signal)
    assert not Order.objects.exists()


def test_an_expired_signal_is_refused_at_execute_before_the_monitor_sees_it(paper_account, aapl, clock):
    signal, _ = signal_create(account=paper_account, data=signal_input(expires_at=clock.now))
    with pytest.raises(SignalError, match="expired"):
        signal_execute(signal=signal)
    assert Signal.objects.get().status == SignalStatus.EXPIRED and not Order.objects.exists()


def test_nothing_happens_between_the_stop_and_the_target(opened, clock):
    clock.set(clock.now + timedelta(minutes=1))
    quote("101.00", "101.10", clock.now)
    result = paper_trades_monitor()
    assert result.checked == 1 and result.closed == {}
    opened.refresh_from_db()
    assert opened.status == PaperTradeStatus.OPEN and opened.current_price == Decimal("101.00")
    assert opened.unrealized_pnl == Decimal("100.0000")


def test_the_stop_closes_the_trade_through_the_order_path(opened, clock):
    clock.set(clock.now + timedelta(minutes=1))
    quote("98.00", "98.05", clock.now)
    assert paper_trades_monitor().closed == {"STOP_LOSS": 1}
    opened.refresh_from_db()
    assert opened.status == PaperTradeStatus.STOP_LOSS and opened.exit_price == Decimal("98.00")
    exit_order = opened.exit_order
    assert exit_order.side == "SELL" and exit_order.status == OrderStatus.FILLED
    assert Execution.objects.count() == 2  # a real ledger fill
    # -2 x 100 less 1.00 commission on each side
    assert opened.realized_pnl == Decimal("-202.0000")
    assert opened.signal.status == SignalStatus.CLOSED
    assert opened.exit_date.isoformat() == "2026-12-08"


def test_a_gap_through_the_stop_fills_at_the_quote_not_at_the_stop(opened, clock):
    clock.set(clock.now + timedelta(minutes=1))
    quote("95.00", "95.10", clock.now)
    paper_trades_monitor()
    opened.refresh_from_db()
    assert opened.status == PaperTradeStatus.STOP_LOSS and opened.exit_price == Decimal("95.00")
    assert opened.exit_order.slippage == Decimal("3.00000000")  # 3 below the stop: worse for the trader
    assert opened.realized_pnl == Decimal("-502.0000")


def test_the_target_closes_the_trade(opened, clock):
    clock.set(clock.now + timedelta(minutes=1))
    quote("104.20", "104.30", clock.now)
    assert paper_trades_monitor().closed == {"TAKE_PROFIT": 1}
    opened.refresh_from_db()
    assert opened.status == PaperTradeStatus.TAKE_PROFIT and opened.exit_price == Decimal("104.20")
    assert opened.realized_pnl == Decimal("418.0000")


def test_a_short_is_stopped_by_the_ask(paper_account, aapl, clock):
    signal, _ = signal_create(
        account=paper_account,
        data=signal_input(
            action="SELL", entry_price=Decimal("99.90"), stop_loss=Decimal("101.90"), take_profit=Decimal("95.90")
        ),
    )
    trade = PaperTrade.objects.get(signal=signal_execute(signal=signal))
    assert trade.side == "SELL" and trade.entry_price == Decimal("99.90")  # sold at the bid
    clock.set(clock.now + timedelta(minutes=1))
    quote("101.80", "101.95", clock.now)
    paper_trades_monitor()
    trade.refresh_from_db()
    assert trade.status == PaperTradeStatus.STOP_LOSS and trade.exit_price == Decimal("101.95")


def test_intraday_trades_close_eod_close_minutes_before_the_close_swing_trades_stay(paper_account, aapl, clock):
    # 20 shares each (risk 40 / 2): together within the position-size limit.
    swing, _ = signal_create(
        account=paper_account, data=signal_input(signal_id="swing", timeframe="swing", risk_amount=Decimal(40))
    )
    day, _ = signal_create(account=paper_account, data=signal_input(signal_id="day", risk_amount=Decimal(40)))
    signal_execute(signal=swing)
    signal_execute(signal=day)
    clock.set(datetime(2026, 12, 8, 20, 54, tzinfo=UTC))  # 15:54 New York: six minutes to the close
    quote("100.50", "100.60", clock.now)
    assert paper_trades_monitor().closed == {}
    clock.set(datetime(2026, 12, 8, 20, 55, tzinfo=UTC))  # 15:55: EOD_CLOSE_MINUTES (5) before
    quote("100.50", "100.60", clock.now)
    assert paper_trades_monitor().closed == {"EOD_CLOSE": 1}
    assert PaperTrade.objects.get(signal__signal_id="day").status == PaperTradeStatus.EOD_CLOSE
    assert PaperTrade.objects.get(signal__signal_id="swing").status == PaperTradeStatus.OPEN


def test_eod_close_on_an_early_close_day(paper_account, clock):
    from core.brokers.contracts import InstrumentSpec
    from marketdata.services import instrument_get_or_create

    clock.set(datetime(2026, 11, 27, 15, 0, tzinfo=UTC))  # the day after Thanksgiving: closes 13:00 New York
    spy = instrument_get_or_create(spec=InstrumentSpec(symbol="SPY"))
    QuoteFactory(instrument=spy, at=clock.now)
    signal, _ = signal_create(account=paper_account, data=signal_input(symbol="SPY"))
    trade = PaperTrade.objects.get(signal=signal_execute(signal=signal))
    clock.set(datetime(2026, 11, 27, 17, 54, tzinfo=UTC))
    quote("100.50", "100.60", clock.now)
    assert paper_trades_monitor().closed == {}
    clock.set(datetime(2026, 11, 27, 17, 55, tzinfo=UTC))  # 12:55 New York
    quote("100.50", "100.60", clock.now)
    assert paper_trades_monitor().closed == {"EOD_CLOSE": 1}
    trade.refresh_from_db()
    assert trade.status == PaperTradeStatus.EOD_CLOSE and trade.exit_price == Decimal("100.50")


def test_a_manual_close(opened, clock):
    clock.set(clock.now + timedelta(minutes=1))
    quote("100.40", "100.50", clock.now)
    trade = paper_trade_close(trade=opened, reason=PaperTradeStatus.MANUAL)
    assert trade.status == PaperTradeStatus.MANUAL and trade.exit_price == Decimal("100.40")


def test_a_stale_quote_closes_nothing_and_says_so(opened, clock):
    clock.set(clock.now + timedelta(minutes=5))  # the stored quote is now 5 minutes old
    result = paper_trades_monitor()
    assert result.closed == {} and "no fresh quote" in result.waiting[0]
    assert PaperTrade.objects.get().status == PaperTradeStatus.OPEN


def test_after_the_close_the_monitor_leaves_regular_hours_trades_alone(opened, clock):
    clock.set(datetime(2026, 12, 8, 22, 0, tzinfo=UTC))  # 17:00 New York
    quote("90.00", "90.10", clock.now)
    assert paper_trades_monitor().checked == 0
    assert PaperTrade.objects.get().status == PaperTradeStatus.OPEN


def test_a_restart_mid_day_loses_nothing_and_the_monitor_carries_on(opened, clock):
    """Nothing is held in memory: a new process reads the open trade from the database and closes it."""
    trade_id = opened.pk
    del opened  # the "old process" and everything it held is gone
    clock.set(clock.now + timedelta(hours=2))
    quote("104.50", "104.60", clock.now)
    out = StringIO()
    call_command("monitor_paper_trades", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["status"] == "SUCCESS" and result["closed"] == {"TAKE_PROFIT": 1}
    assert PaperTrade.objects.get(pk=trade_id).status == PaperTradeStatus.TAKE_PROFIT
    # A second run (another restart) does nothing twice.
    out = StringIO()
    call_command("monitor_paper_trades", stdout=out)
    assert "closed: none" in out.getvalue()
    assert Order.objects.filter(side="SELL").count() == 1


# --- the API -----------------------------------------------------------------------------------
@pytest.fixture
def api(client, trader):
    client.force_login(trader)
    return client


def body(**kwargs) -> dict:
    values = {
        "account": "PAPER1",
        "signal_id": "s-1",
        "symbol": "AAPL",
        "action": "BUY",
        "entry_price": "100.00",
        "stop_loss": "98.00",
        "take_profit": "104.00",
        "risk_amount": "200",
        "confidence": "0.75",
        "reasoning": "range break",
        "indicators": ["vwap"],
        "confluence_score": "42.50",
        "confluence_components": {"sentiment": "0.3", "options_flow": "0.6"},
    }
    values.update(kwargs)
    return values


def test_api_create_is_idempotent_execute_lists_pnl_and_journal(api, paper_account, aapl, clock):
    created = api.post(SIGNALS, body(), content_type="application/json")
    assert created.status_code == 201, created.json()
    again = api.post(SIGNALS, body(), content_type="application/json")
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    assert created.json()["confluence_score"] == "42.50"
    executed = api.post(f"{SIGNALS}/{created.json()['id']}/execute", {}, content_type="application/json")
    assert executed.status_code == 201, executed.json()
    assert executed.json()["status"] == "EXECUTED" and executed.json()["paper_trade"] is not None
    listed = api.get(SIGNALS, {"status": "EXECUTED"}).json()
    assert [s["signal_id"] for s in listed] == ["s-1"]
    assert len(api.get("/api/trading/paper-trades", {"status": "open"}).json()) == 1
    clock.set(clock.now + timedelta(minutes=1))
    quote("104.00", "104.10", clock.now)
    paper_trades_monitor()
    assert api.get("/api/trading/paper-trades", {"status": "open"}).json() == []
    pnl = api.get("/api/trading/daily-pnl", {"account": "PAPER1"}).json()
    assert pnl["realized_pnl"] == "398.0000" and pnl["closed_trades"] == 1 and pnl["open_trades"] == 0
    journal = api.get("/api/trading/journal", {"account": "PAPER1", "date": "2026-12-08"}).json()
    assert [(j["status"], j["reasoning"]) for j in journal] == [("TAKE_PROFIT", "range break")]


def test_api_daily_pnl_adds_the_unrealized_of_open_trades(api, opened, clock):
    clock.set(clock.now + timedelta(minutes=1))
    quote("101.00", "101.10", clock.now)
    paper_trades_monitor()
    pnl = api.get("/api/trading/daily-pnl").json()
    assert pnl["unrealized_pnl"] == "100.0000" and pnl["total_pnl"] == "100.0000"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stop_loss": "101"}, "stop_loss"),
        ({"take_profit": "99"}, "take_profit"),
        ({"symbol": "TOOLONG"}, "symbol"),
        ({"risk_amount": "0"}, "risk_amount"),
        ({"timeframe": "weekly"}, "timeframe"),
    ],
)
def test_api_malformed_signal_is_400_naming_the_field(api, paper_account, aapl, change, field):
    answer = api.post(SIGNALS, body(**change), content_type="application/json")
    assert answer.status_code == 400 and field in answer.json()
    assert not Signal.objects.exists()


def test_api_a_refused_execute_is_422_and_an_expired_one_409(api, paper_account, aapl, settings, clock):
    settings.MAX_ORDER_QUANTITY = Decimal(10)
    created = api.post(SIGNALS, body(), content_type="application/json").json()
    refused = api.post(f"{SIGNALS}/{created['id']}/execute", {}, content_type="application/json")
    assert refused.status_code == 422 and refused.json()["status"] == "GENERATED"
    assert refused.json()["status_reasons"]
    late = api.post(SIGNALS, body(signal_id="s-2", expires_at="2026-12-08T14:00:00Z"), content_type="application/json")
    answer = api.post(f"{SIGNALS}/{late.json()['id']}/execute", {}, content_type="application/json")
    assert answer.status_code == 409 and "expired" in answer.json()["detail"]


def test_api_other_peoples_signals_are_invisible(api, paper_account, aapl):
    other = AccountFactory()
    signal, _ = signal_create(account=other, data=signal_input())
    assert api.get(SIGNALS).json() == []
    assert api.post(f"{SIGNALS}/{signal.pk}/execute", {}, content_type="application/json").status_code == 404
    assert api.post(SIGNALS, body(account=other.account_id), content_type="application/json").status_code == 403


def test_api_lists_pin_their_query_count(api, paper_account, aapl, django_assert_num_queries):
    for n in range(3):
        signal, _ = signal_create(account=paper_account, data=signal_input(signal_id=f"s-{n}", risk_amount=Decimal(40)))
        signal_execute(signal=signal)
    with django_assert_num_queries(2):  # user (session cached), signals with their trades
        assert len(api.get(SIGNALS).json()) == 3
    with django_assert_num_queries(2):
        assert len(api.get("/api/trading/paper-trades").json()) == 3
