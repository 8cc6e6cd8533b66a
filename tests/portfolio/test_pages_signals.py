"""The Signals and Journal pages: today's signals (check, execute through every risk check), open paper
trades marked at the stored quotes and closed by hand, the journal with trade records and alerts."""

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.factories import AccountFactory, UserFactory
from tests.trading.test_signals import quote, signal_input
from trading.models import (
    PaperTrade,
    PaperTradeStatus,
    RiskAction,
    RiskEvent,
    RiskEventKind,
    RiskSeverity,
    Signal,
    SignalStatus,
)
from trading.services.signals import paper_trade_close, signal_create, signal_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(client, trader, paper_account, aapl):
    client.force_login(trader)
    return client


def make_signal(account, n: int = 1, **kwargs) -> Signal:
    values = {"signal_id": f"s-{n}", "quantity": Decimal(1), **kwargs}
    signal, _ = signal_create(account=account, data=signal_input(**values))
    return signal


def test_the_page_lists_todays_signals_and_executes_one(page, paper_account):
    signal = make_signal(paper_account, confluence_score=Decimal("42.5"))
    text = page.get("/signals/?account=PAPER1").content.decode()
    assert 'data-signal="s-1"' in text and "Generated" in text and ">42.50<" in text
    answer = page.post(f"/signals/{signal.pk}/execute?account=PAPER1", follow=True)
    text = answer.content.decode()
    assert "filled, paper trade open" in text
    signal.refresh_from_db()
    assert signal.status == SignalStatus.EXECUTED
    assert f'data-trade="{signal.paper_trade.pk}"' in text  # now among the open paper trades


def test_check_shows_the_order_tickets_checks_and_stores_nothing(page, paper_account):
    signal = make_signal(paper_account)
    text = page.get(f"/signals/?account=PAPER1&check={signal.pk}").content.decode()
    assert "Checks for signal s-1: BUY 1 AAPL MKT" in text and "position_size" in text
    assert not signal.__class__.objects.filter(order__isnull=False).exists()


def test_a_refused_execute_shows_the_reasons_and_leaves_the_signal_generated(page, paper_account, settings):
    settings.MAX_ORDER_QUANTITY = Decimal("0.5")
    signal = make_signal(paper_account)
    text = page.post(f"/signals/{signal.pk}/execute?account=PAPER1", follow=True).content.decode()
    assert "Signal s-1 refused: quantity:" in text
    signal.refresh_from_db()
    assert signal.status == SignalStatus.GENERATED and signal.status_reasons


def test_open_trades_show_live_pnl_from_the_stored_quote_and_close_by_hand(page, paper_account, clock):
    trade = signal_execute(signal=make_signal(paper_account, quantity=Decimal(10))).paper_trade
    clock.set(clock.now + timedelta(minutes=1))
    quote("101.00", "101.10", clock.now)  # not yet seen by the monitor: the page marks it itself
    text = page.get("/signals/?account=PAPER1").content.decode()
    assert "+$10.00" in text  # 10 x (101.00 bid - 100.00)
    text = page.post(f"/paper-trades/{trade.pk}/close?account=PAPER1", follow=True).content.decode()
    assert f"Paper trade {trade.pk} closed at 101" in text
    trade.refresh_from_db()
    assert trade.status == PaperTradeStatus.MANUAL
    assert f'data-journal="{trade.pk}"' in text  # today's journal, with the reasoning
    assert "broke the morning range on volume" in text


def test_another_traders_signals_are_not_shown_nor_executable(client, page, paper_account):
    signal = make_signal(paper_account)
    other = UserFactory()
    AccountFactory(account_id="OTHER1", users=[other])
    client.force_login(other)
    text = client.get("/signals/?account=PAPER1").content.decode()
    assert 'data-signal="s-1"' not in text
    assert client.post(f"/signals/{signal.pk}/execute?account=PAPER1").status_code == 404
    signal.refresh_from_db()
    assert signal.status == SignalStatus.GENERATED


def test_staff_see_every_account(client, page, paper_account):
    make_signal(paper_account)
    client.force_login(UserFactory(staff=True))
    assert 'data-signal="s-1"' in client.get("/signals/?account=PAPER1").content.decode()


@pytest.mark.parametrize("path", ["/signals/", "/journal/"])
def test_anonymous_is_sent_to_log_in(client, path):
    answer = client.get(path)
    assert answer.status_code == 302 and "/login" in answer["Location"]


# The login session comes from the cache (cached_db): no session query.
SIGNALS_PAGE_QUERIES = 8
JOURNAL_PAGE_QUERIES = 8


@pytest.mark.parametrize("n", [1, 4])
def test_page_query_counts_do_not_depend_on_the_rows(page, paper_account, clock, django_assert_num_queries, n):
    # n closed trades (each a flat-to-flat round trip: a trade record), then n open ones and n GENERATED signals
    for i in range(n):
        closed = signal_execute(signal=make_signal(paper_account, n=3 * i + 1)).paper_trade
        clock.set(clock.now + timedelta(seconds=1))  # the ledger orders fills by time
        paper_trade_close(trade=closed, reason=PaperTradeStatus.MANUAL)
        clock.set(clock.now + timedelta(seconds=1))
    for i in range(n):
        signal_execute(signal=make_signal(paper_account, n=3 * i))
        make_signal(paper_account, n=3 * i + 2)
    page.get("/signals/?account=PAPER1")  # remembers the account in the session
    with django_assert_num_queries(SIGNALS_PAGE_QUERIES):
        text = page.get("/signals/").content.decode()
    assert text.count("data-signal=") == 3 * n and text.count("data-trade=") == n and text.count("data-journal=") == n
    with django_assert_num_queries(JOURNAL_PAGE_QUERIES):
        text = page.get("/journal/", {"date": "2026-12-08"}).content.decode()
    assert text.count("data-journal=") == n and text.count("data-record=") == n


def test_the_journal_shows_trade_records_beside_the_days_risk_events(page, paper_account, clock):
    trade = signal_execute(signal=make_signal(paper_account)).paper_trade
    paper_trade_close(trade=trade, reason=PaperTradeStatus.MANUAL)
    RiskEvent.objects.create(
        account=paper_account,
        kind=RiskEventKind.CIRCUIT_BREAKER_TRIP,
        severity=RiskSeverity.CRITICAL,
        action=RiskAction.TRADING_PAUSED,
        value=Decimal(5),
        threshold=Decimal(5),
        as_of=clock.now.date(),
        message="5 losing round trips in a row",
    )
    text = page.get("/journal/?account=PAPER1&date=2026-12-08").content.decode()
    assert 'data-record="sig-' in text and "broke the morning range on volume" in text
    assert "5 losing round trips in a row" in text and "Closed by hand: paper trade" in text
    other_day = page.get("/journal/?account=PAPER1&date=2026-12-07").content.decode()
    assert "data-record=" not in other_day and "5 losing round trips" not in other_day
    assert "date: expected YYYY-MM-DD" in page.get("/journal/?date=yesterday").content.decode()
    assert PaperTrade.objects.count() == 1


def test_the_trades_page_shows_strategy_reasoning_and_outcome_of_our_fills(page, paper_account, clock, settings):
    from trading.models import Execution, ExecutionSource

    closed = signal_execute(signal=make_signal(paper_account, n=1, quantity=Decimal(10))).paper_trade
    clock.set(clock.now + timedelta(minutes=1))
    quote("101.00", "101.10", clock.now)  # 10 x 1.00 less 2.00 of commissions: a win
    closed = paper_trade_close(trade=closed, reason=PaperTradeStatus.MANUAL)
    clock.set(clock.now + timedelta(minutes=1))
    signal_execute(signal=make_signal(paper_account, n=2, strategy="fade"))
    Execution.objects.create(  # a fill placed in TWS: no order of ours
        broker="ibkr",
        exec_id="TWS-1",
        account=paper_account,
        instrument=closed.instrument,
        side="BUY",
        quantity=Decimal(1),
        price=Decimal(100),
        commission=Decimal(1),
        executed_at=clock.now - timedelta(hours=1),
        trade_date=clock.now.date(),
        source=ExecutionSource.API,
        perm_id=424242,
    )
    text = page.get("/trades/?account=PAPER1").content.decode()
    rows = [row for row in text.split("<tr>") if 'class="mono">' in row]
    cells = {row.split('class="mono">')[1].split("<")[0]: row for row in rows}
    entry = cells[f"PAPER-{closed.entry_order_id}-1"]
    assert "breakout" in entry and "broke the morning range on volume" in entry and ">win<" in entry
    exit_row = cells[f"PAPER-{closed.exit_order_id}-1"]
    assert "Closed by hand: paper trade" in exit_row and ">win<" in exit_row
    still_open = [row for key, row in cells.items() if "fade" in row]
    assert len(still_open) == 1 and ">open<" in still_open[0]
    assert "breakout" not in cells["TWS-1"] and "badge win" not in cells["TWS-1"] and ">open<" not in cells["TWS-1"]
    trips = page.get("/trades/?account=PAPER1&tab=round-trips").content.decode()
    assert "broke the morning range on volume" in trips


def test_an_account_without_signals_today_points_to_the_accounts_that_have_some(page, paper_account, trader):
    from tests.factories import AccountFactory

    AccountFactory(account_id="DU0", users=[trader])  # sorts first: the page opens on it
    make_signal(paper_account)
    text = page.get("/signals/?account=DU0").content.decode()
    assert "No signals today." in text and 'data-elsewhere="PAPER1"' in text
    assert 'data-elsewhere="' not in page.get("/signals/?account=PAPER1").content.decode()
