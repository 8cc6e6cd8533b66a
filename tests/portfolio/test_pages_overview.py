"""The overview page and its "Sync now" form: access, figures, the broker-down and stale banners,
the no-JavaScript sync request, the live fragments (the same access rule, the same HTML as the page,
the banner and the sync outcome decided on the server), and query counts that do not grow with the data."""

import re
from datetime import timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from core.models import SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus
from portfolio.models import (
    AccountSnapshot,
    AccountStatus,
    MetricsWindow,
    PerformanceMetrics,
    Position,
    PositionStatus,
)
from portfolio.selectors import broker_unreachable_since
from portfolio.services.sync import positions_sync
from portfolio.templatetags.money import EMPTY
from portfolio.templatetags.times import clock
from tests.factories import AccountFactory, InstrumentFactory, UserFactory
from trading.calendars import trade_date_of
from trading.models import CashFlow, CashFlowKind, Execution, Side

pytestmark = pytest.mark.django_db

_ids = count(1)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _sync(settings, account):
    return positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))


def _run(account, status, *, minutes_ago: float, message: str = "", skip_reason: str = "") -> SyncRun:
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return SyncRun.objects.create(
        kind=SyncKind.POSITIONS,
        account=account,
        status=status,
        started_at=started,
        finished_at=None if status == SyncStatus.RUNNING else started + timedelta(seconds=1),
        message=message,
        skip_reason=skip_reason,
    )


def _position(account, **fields) -> Position:
    values = {
        "instrument": InstrumentFactory(),
        "status": PositionStatus.OPEN,
        "quantity": Decimal(10),
        "average_price": Decimal("100"),
        "current_price": Decimal("110"),
        "market_value": Decimal("1100"),
        "unrealized_pnl": Decimal("100"),
        "opened_at": timezone.now() - timedelta(days=3),
    }
    values.update(fields)
    return Position.objects.create(account=account, **values)


def _fill(account, **fields) -> Execution:
    at = fields.pop("executed_at", timezone.now() - timedelta(hours=1))
    values = {
        "instrument": InstrumentFactory(),
        "side": Side.BUY,
        "quantity": Decimal(10),
        "price": Decimal("100"),
        "commission": Decimal("1"),
    }
    values.update(fields)
    return Execution.objects.create(
        exec_id=f"exec-{next(_ids)}", account=account, executed_at=at, trade_date=trade_date_of(at), **values
    )


# --- access -------------------------------------------------------------------------------------
def test_anonymous_is_sent_to_login():
    for response in (Client().get("/"), Client().post("/sync-now", {"account": "DU1"})):
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_trader_sees_only_their_accounts_and_a_foreign_id_is_ignored(settings, broker_state):
    trader = UserFactory()
    mine = AccountFactory(account_id="DU1234567", users=[trader])
    AccountFactory(account_id="DU9999999", users=[UserFactory()])
    _sync(settings, mine)

    page = _client(trader).get("/", {"account": "DU9999999"}).content.decode()

    assert "DU1234567" in page and "DU9999999" not in page
    assert "AAPL" in page and "$100,000.00" in page


def test_staff_see_every_account(settings, broker_state):
    staff = UserFactory(staff=True)
    AccountFactory(account_id="DU1111111")
    other = AccountFactory(account_id="DU9999999", users=[UserFactory()])
    _position(other, instrument=InstrumentFactory(symbol="ZZZT"))

    page = _client(staff).get("/", {"account": "DU9999999"}).content.decode()

    assert "DU1111111" in page  # in the switcher
    assert 'data-account="DU9999999"' in page and "ZZZT" in page


def test_user_without_accounts_gets_an_empty_state():
    page = _client(UserFactory()).get("/").content.decode()
    assert "No accounts yet" in page and "Sync now" not in page


# --- figures ------------------------------------------------------------------------------------
def test_figures_positions_fills_and_last_synced(settings, broker_state):
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])
    _sync(settings, account)
    PerformanceMetrics.objects.create(
        account=account, as_of=timezone.now().date(), window=MetricsWindow.ALL, win_rate=Decimal("0.625")
    )
    _fill(account, instrument=InstrumentFactory(symbol="FILLD"), side=Side.SELL, realized_pnl=Decimal("-12.5"))

    response = _client(trader).get("/")
    page = response.content.decode()

    assert response.status_code == 200
    assert "$100,000.00" in page  # portfolio value (NetLiquidation)
    assert "$25,000.00" in page  # cash
    assert "62.5%" in page  # win rate
    assert "AAPL" in page and "SPY 2026-12-18 600C" in page  # open positions
    assert "FILLD" in page and "-$12.50" in page  # recent fill with its realized P&L
    assert "Last synced just now" in page
    assert "Broker unreachable" not in page and "Data is stale" not in page
    assert 'src="/static/vendor/plotly.min.js"' in page  # served locally, never a CDN
    assert 'aria-live="polite"' in page


def test_recent_fills_are_the_latest_fifteen():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    now = timezone.now()
    for minutes in range(20):
        _fill(
            account,
            instrument=InstrumentFactory(symbol=f"F{minutes:02d}X"),
            executed_at=now - timedelta(minutes=minutes),
        )

    page = _client(trader).get("/").content.decode()

    assert "F00X" in page and "F14X" in page and "F15X" not in page


# --- banners ------------------------------------------------------------------------------------
def test_broker_down_and_stale_shows_banner_with_exchange_time_and_last_known_positions(settings, broker_state):
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])
    _sync(settings, account)
    settings.POSITION_SYNC_STALE_AFTER = 0
    with broker_state.edit() as state:
        state["connected"] = False
    skipped = _sync(settings, account)

    page = _client(trader).get("/").content.decode()

    assert skipped.message.startswith("broker unreachable")
    assert f"Broker unreachable since {clock(skipped.started_at)} - showing last known positions" in page
    assert re.search(r"Broker unreachable since \d\d:\d\d - showing last known positions", page)
    assert "AAPL" in page  # last known positions still shown
    assert "$100,000.00" in page


def test_outage_starts_at_the_first_skip_after_the_last_success():
    account = AccountFactory()
    _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=90,
        message="broker unreachable: earlier outage",
        skip_reason=SkipReason.BROKER_UNREACHABLE,
    )
    _run(account, SyncStatus.SUCCESS, minutes_ago=60)
    first = _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=40,
        message="broker unreachable: connection refused",
        skip_reason=SkipReason.BROKER_UNREACHABLE,
    )
    _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=35,
        message="another sync is running",
        skip_reason=SkipReason.ANOTHER_RUNNING,
    )
    _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=30,
        message="broker request failed: timeout",
        skip_reason=SkipReason.REQUEST_FAILED,
    )

    assert broker_unreachable_since(account=account) == first.started_at

    _run(account, SyncStatus.SUCCESS, minutes_ago=1)
    assert broker_unreachable_since(account=account) is None


def test_broker_never_reached_counts_from_the_first_skip():
    account = AccountFactory()
    first = _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=20,
        message="broker unreachable: refused",
        skip_reason=SkipReason.BROKER_UNREACHABLE,
    )
    _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=10,
        message="broker unreachable: refused",
        skip_reason=SkipReason.BROKER_UNREACHABLE,
    )
    assert broker_unreachable_since(account=account) == first.started_at


def test_stale_data_without_an_outage_says_when_it_was_last_synced():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    _run(account, SyncStatus.SUCCESS, minutes_ago=60)
    _run(account, SyncStatus.FAILED, minutes_ago=5, message="ValueError: boom")

    page = _client(trader).get("/").content.decode()

    assert "Data is stale: last synced 1 hour ago." in page
    assert "Broker unreachable" not in page


def test_running_sync_shows_progress():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    run = _run(account, SyncStatus.RUNNING, minutes_ago=0.1)

    page = _client(trader).get("/").content.decode()

    assert f"Syncing… (running since {clock(run.started_at)})" in page


# --- Sync now without JavaScript ----------------------------------------------------------------
def test_sync_now_starts_a_manual_run_and_goes_back_with_a_message():
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])
    client = _client(trader)

    response = client.post("/sync-now", {"account": "DU1234567", "next": "/?account=DU1234567"})

    assert response.status_code == 302 and response["Location"] == "/?account=DU1234567"
    run = SyncRun.objects.get(account=account)
    assert (run.kind, run.reason, run.status) == (SyncKind.POSITIONS, SyncReason.MANUAL, SyncStatus.RUNNING)
    page = client.get(response["Location"]).content.decode()
    assert "Sync of DU1234567 started" in page


def test_sync_now_while_one_runs_says_so():
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])
    _run(account, SyncStatus.RUNNING, minutes_ago=0.2)

    response = _client(trader).post("/sync-now", {"account": "DU1234567"}, follow=True)

    assert "not started: another sync is running" in response.content.decode()


@pytest.mark.django_db(transaction=True)  # no request transaction: the task is sent at once, as in life
def test_sync_now_with_the_task_queue_away_says_so_and_leaves_no_running_run(monkeypatch):
    from kombu.exceptions import OperationalError

    from portfolio.tasks import positions_sync_run_task

    def unreachable(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(positions_sync_run_task, "apply_async", unreachable)
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])

    response = _client(trader).post("/sync-now", {"account": "DU1234567"}, follow=True)

    assert "not started: could not be queued: OperationalError: Error 111" in response.content.decode()
    assert SyncRun.objects.get(account=account).status == SyncStatus.FAILED


def test_sync_now_refuses_an_account_that_is_not_yours_and_an_unsafe_next():
    trader = UserFactory()
    AccountFactory(account_id="DU1234567", users=[trader])
    AccountFactory(account_id="DU9999999", users=[UserFactory()])

    response = _client(trader).post("/sync-now", {"account": "DU9999999", "next": "https://evil.example/"})

    assert response.status_code == 302 and response["Location"] == "/"
    assert not SyncRun.objects.exists()


def test_sync_now_is_post_only():
    trader = UserFactory()
    AccountFactory(users=[trader])
    assert _client(trader).get("/sync-now").status_code == 405


def test_sync_now_enforces_csrf():
    trader = UserFactory()
    AccountFactory(account_id="DU1234567", users=[trader])
    client = Client(enforce_csrf_checks=True)
    client.force_login(trader)

    assert client.post("/sync-now", {"account": "DU1234567"}).status_code == 403
    assert not SyncRun.objects.exists()

    page = client.get("/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post("/sync-now", {"account": "DU1234567", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert SyncRun.objects.filter(reason=SyncReason.MANUAL).count() == 1


# --- queries ------------------------------------------------------------------------------------
# session, user, accounts; summary: status, open positions, fills, last success, metrics, previous close
# (with the flows since it); outage, latest run, positions, fills; the account's mode (from fills or from the
# broker); the latest confluence score of the positions' symbols (sentiment); the option risk (open positions
# with their Greeks). The same with or without a previous close; the broker connection (banner).
OVERVIEW_QUERIES = 16  # the session from the cache (cached_db)


def _overview_data(size: int):
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    AccountFactory(users=[trader])
    for _ in range(size):
        _position(account)
        _fill(account)
        _run(account, SyncStatus.SUCCESS, minutes_ago=30)
    _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=20,
        message="broker unreachable: refused",
        skip_reason=SkipReason.BROKER_UNREACHABLE,
    )
    PerformanceMetrics.objects.create(account=account, as_of=timezone.now().date(), win_rate=Decimal("0.5"))
    now = timezone.now()
    AccountStatus.objects.create(account=account, net_liquidation=Decimal("100000"), total_cash=Decimal(5), read_at=now)
    yesterday = now - timedelta(days=1)
    AccountSnapshot.objects.create(
        account=account, taken_at=yesterday, trade_date=trade_date_of(yesterday), net_liquidation=Decimal("99000")
    )
    return trader


@pytest.mark.parametrize("size", [3, 30])
def test_overview_queries_do_not_grow_with_data(size, django_assert_num_queries):
    client = _client(_overview_data(size))
    client.get("/")  # the first visit also stores the selected account in the session
    with django_assert_num_queries(OVERVIEW_QUERIES):
        response = client.get("/")
    assert response.content.decode().count('data-cell="market_value"') == size


def _daily_pnl_shown(response) -> str:
    return re.search(r'data-kpi="daily_pnl">([^<]*)<', response.content.decode()).group(1)


def test_overview_queries_stay_the_same_once_the_history_reaches_an_earlier_trade_date(django_assert_num_queries):
    """The data doubles as in ``manage.py bench_dashboard``, and the snapshots start to reach back to an
    earlier trade date (a previous close, with deposits and withdrawals since): the daily P&L appears,
    the query count does not move. Dates are explicit, so the test holds at any time of day."""
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    now = timezone.now()
    today = trade_date_of(now)
    AccountStatus.objects.create(account=account, net_liquidation=Decimal("100000"), total_cash=Decimal(5), read_at=now)

    def add(count: int) -> None:
        for _ in range(count):
            _position(account)
            _fill(account)
            _run(account, SyncStatus.SUCCESS, minutes_ago=30)

    add(3)
    for k in range(3):  # today's snapshots only: no previous close yet
        AccountSnapshot.objects.create(
            account=account, taken_at=now - timedelta(seconds=k + 1), trade_date=today, net_liquidation=Decimal(99500)
        )
    client = _client(trader)
    client.get("/")  # the first visit also stores the selected account in the session
    with django_assert_num_queries(OVERVIEW_QUERIES):
        response = client.get("/")
    assert _daily_pnl_shown(response) == EMPTY  # no previous close, no daily P&L

    add(3)
    for days in (3, 2, 1):
        taken_at = now - timedelta(days=days)
        AccountSnapshot.objects.create(
            account=account, taken_at=taken_at, trade_date=trade_date_of(taken_at), net_liquidation=Decimal(99000)
        )
    before_close = now - timedelta(days=1, minutes=1)  # before the previous close: not in today's P&L
    for flow_id, kind, amount, at in [
        ("old", CashFlowKind.DEPOSIT, Decimal(7000), before_close),
        ("dep", CashFlowKind.DEPOSIT, Decimal(2000), now - timedelta(minutes=5)),
        ("wd", CashFlowKind.WITHDRAWAL, Decimal(500), now - timedelta(minutes=4)),
    ]:
        CashFlow.objects.create(account=account, flow_id=flow_id, kind=kind, amount=amount, at=at)
    with django_assert_num_queries(OVERVIEW_QUERIES):
        response = client.get("/")
    assert _daily_pnl_shown(response) == "-$500.00"  # 100,000 - 99,000 - (2,000 deposited - 500 withdrawn)
    assert response.content.decode().count('data-cell="market_value"') == 6


# --- live fragments (GET /overview/fragments) -----------------------------------------------------
FRAGMENT_NAMES = {"last_synced", "progress", "banners", "cards", "positions", "risk", "fills", "outcome"}


def _fragments(client, account_id: str, **extra):
    return client.get("/overview/fragments", {"account": account_id}, **extra)


def test_fragments_need_a_login_and_do_not_redirect_to_the_form():
    AccountFactory(account_id="DU1234567")
    response = Client().get("/overview/fragments", {"account": "DU1234567"})
    assert response.status_code == 403 and "DU1234567" not in response.content.decode()


def test_fragments_follow_the_pages_access_rule(settings, broker_state):
    trader = UserFactory()
    mine = AccountFactory(account_id="DU1234567", users=[trader])
    theirs = AccountFactory(account_id="DU9999999", users=[UserFactory()])
    _position(theirs, instrument=InstrumentFactory(symbol="ZZZT"))
    client = _client(trader)

    for account_id in ("DU9999999", "DU0000000"):  # another trader's, and one that does not exist
        response = _fragments(client, account_id)
        assert response.status_code == 404, account_id
        assert "ZZZT" not in response.content.decode()
    assert client.get("/overview/fragments").status_code == 400
    assert client.post("/overview/fragments?account=DU1234567").status_code == 405

    response = _fragments(client, mine.account_id)
    assert response.status_code == 200 and response.json()["account"] == "DU1234567"
    assert "no-store" in response["Cache-Control"]
    assert "selected_account" not in client.session  # asking does not switch the page's account

    staff = _fragments(_client(UserFactory(staff=True)), "DU9999999")
    assert staff.status_code == 200 and "ZZZT" in staff.json()["fragments"]["positions"]


def _busy_account(settings, broker_state):
    """An account with everything the fragments show: synced figures, positions (one missing at the broker),
    fills with signed P&L, the broker down since a skipped run, and a sync running now."""
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])
    _sync(settings, account)
    ten_minutes_ago = timezone.now() - timedelta(minutes=10)
    SyncRun.objects.filter(account=account).update(started_at=ten_minutes_ago, finished_at=ten_minutes_ago)
    PerformanceMetrics.objects.create(
        account=account, as_of=timezone.now().date(), window=MetricsWindow.ALL, win_rate=Decimal("0.625")
    )
    _position(
        account,
        instrument=InstrumentFactory(symbol="GONE"),
        quantity=Decimal("12.50000000"),
        average_price=Decimal("505.04533333"),
        unrealized_pnl=Decimal("-1234.565"),
        unrealized_pnl_pct=Decimal("-0.031371"),
        missing_since=timezone.now(),
    )
    _fill(account, instrument=InstrumentFactory(symbol="FILLD"), side=Side.SELL, realized_pnl=Decimal("-12.505"))
    _fill(account, instrument=InstrumentFactory(symbol="FILLE"), realized_pnl=Decimal("7.5"))
    _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=3,
        message="broker unreachable: connection refused",
        skip_reason=SkipReason.BROKER_UNREACHABLE,
    )
    running = _run(account, SyncStatus.RUNNING, minutes_ago=1)
    return trader, account, running


def test_every_fragment_is_exactly_what_the_page_shows_for_the_same_data(settings, broker_state):
    trader, account, running = _busy_account(settings, broker_state)
    client = _client(trader)

    page = client.get("/", {"account": account.account_id}).content.decode()
    body = _fragments(client, account.account_id).json()

    assert set(body["fragments"]) == FRAGMENT_NAMES and body["in_progress"] is True
    for name, html in body["fragments"].items():
        if name == "outcome":
            continue  # worded for the end of a followed sync: not on a freshly loaded page
        root = html.strip()
        assert root.startswith("<") and f'data-fragment="{name}"' in root.split(">", 1)[0], name
        assert root in page, f"the {name} fragment differs from the page"
    fragments = body["fragments"]
    # The formats are the template filters' (half-up, signs, exchange time), whatever the data.
    assert "$100,000.00" in fragments["cards"] and "62.5%" in fragments["cards"]
    assert all(text in fragments["positions"] for text in ("GONE", "12.5", "505.04533333", "-$1,234.57", "-3.14%"))
    assert "missing at broker" in fragments["positions"]
    assert "-$12.51" in fragments["fills"] and "+$7.50" in fragments["fills"]
    assert f"Syncing… (running since {clock(running.started_at)})" in fragments["progress"]
    assert "Broker unreachable since" in fragments["banners"]


def test_the_banner_is_decided_by_the_server(settings, broker_state):
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    client = _client(trader)
    _run(account, SyncStatus.SUCCESS, minutes_ago=120)
    _run(account, SyncStatus.FAILED, minutes_ago=5, message="ValueError: boom")

    banners = _fragments(client, account.account_id).json()["fragments"]["banners"]
    assert "Data is stale: last synced 2 hours ago." in banners and "Broker unreachable" not in banners

    down = _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=2,
        message="broker request failed: timeout",
        skip_reason=SkipReason.REQUEST_FAILED,
    )
    banners = _fragments(client, account.account_id).json()["fragments"]["banners"]
    assert f"Broker unreachable since {clock(down.started_at)} - showing last known positions." in banners
    assert re.search(r'data-banner="stale"\s+hidden', banners)

    _run(account, SyncStatus.SUCCESS, minutes_ago=1)
    banners = _fragments(client, account.account_id).json()["fragments"]["banners"]
    assert re.search(r'data-banner="outage"\s+hidden', banners) and "Broker unreachable" not in banners


def test_the_outcome_words_how_the_latest_sync_ended():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    client = _client(trader)

    def outcome():
        body = _fragments(client, account.account_id).json()
        return body["in_progress"], body["fragments"]["outcome"]

    in_progress, text = outcome()
    assert not in_progress and text.strip().endswith('data-fragment="progress"></p>')  # never synced: nothing
    done = _run(account, SyncStatus.SUCCESS, minutes_ago=1)
    SyncRun.objects.filter(pk=done.pk).update(created=1, updated=2, closed=0, unchanged=3)
    in_progress, text = outcome()
    assert not in_progress
    assert f"Synced at {clock(done.finished_at)}: 1 new, 2 updated, 0 closed, 3 unchanged." in text

    _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=0.5,
        message="broker unreachable: refused",
        skip_reason=SkipReason.BROKER_UNREACHABLE,
    )
    assert "Sync skipped: broker unreachable: refused." in outcome()[1]

    # "Sync now" while a scheduled sync runs: the latest run is the skipped one, and the sync is in progress.
    running = _run(account, SyncStatus.RUNNING, minutes_ago=0.3)
    _run(
        account,
        SyncStatus.SKIPPED,
        minutes_ago=0.1,
        message="another sync is running",
        skip_reason=SkipReason.ANOTHER_RUNNING,
    )
    in_progress, text = outcome()
    assert in_progress and f"Syncing… (running since {clock(running.started_at)})" in text
    SyncRun.objects.filter(pk=running.pk).update(status=SyncStatus.SUCCESS, finished_at=timezone.now())
    in_progress, text = outcome()
    assert not in_progress and "Sync finished." in text


@pytest.mark.parametrize("size", [3, 30])
def test_fragment_queries_do_not_grow_with_data(size, django_assert_num_queries):
    trader = _overview_data(size)
    client = _client(trader)
    account_id = trader.accounts.order_by("id").first().account_id
    # user (session cached), the account; summary: status, open positions, fills, last success, metrics, previous
    # close with the flows since; outage, latest run (with the running one), positions, fills, confluence,
    # the broker connection; the option risk (open positions with their Greeks)
    with django_assert_num_queries(15):
        response = _fragments(client, account_id)
    assert response.json()["fragments"]["positions"].count('data-cell="market_value"') == size


def test_the_positions_table_shows_each_symbols_latest_confluence_score():
    from sentiment.models import ConfluenceScore

    trader = UserFactory()
    account = AccountFactory(users=[trader])
    _position(account, instrument=InstrumentFactory(symbol="AAPL"))
    _position(account, instrument=InstrumentFactory(symbol="MSFT"))
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for hours_ago, score in ((2, "10.00"), (0, "42.50")):
        ConfluenceScore.objects.create(
            symbol="AAPL", hour=hour - timedelta(hours=hours_ago), score=Decimal(score), sentiment=Decimal("0.425"),
            missing=["options_flow", "momentum"], computed_at=hour,
        )  # fmt: skip
    html = _client(trader).get("/").content.decode()
    cells = re.findall(r'data-cell="confluence">(.*?)</td>', html, re.S)
    assert len(cells) == 2
    assert "42.50" in cells[0] and "missing: options_flow, momentum" in cells[0]
    assert "—" in cells[1]  # MSFT has no score
