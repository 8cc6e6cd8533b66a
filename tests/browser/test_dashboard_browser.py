"""The dashboard in a real browser: logging in, "Sync now" to its finished state, the broker-down banner,
live updates (server-rendered parts swapped in; nothing repainted when nothing changed), the charts, one
trader not seeing another's data, and every page at desktop and phone sizes.

The live server runs in a thread of this process and Celery is eager (root conftest), so a "Sync now"
click runs the whole position sync inside the request, against this test's broker state file.
"""

import os
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from devtools.demo import demo_state_build
from devtools.demo_history import demo_history_build
from portfolio.models import AccountStatus, MetricsWindow, PerformanceMetrics, Position, PositionStatus
from portfolio.services.metrics import metrics_compute_series
from portfolio.services.sync import positions_sync, positions_sync_accounts
from tests.browser.conftest import DESKTOP, PHONE
from tests.factories import TEST_PASSWORD, AccountFactory, InstrumentFactory, StockPositionRowFactory, UserFactory
from trading.calendars import trade_date_of
from trading.models import Account, Execution, Side
from trading.services.accounts import accounts_sync
from trading.services.executions import executions_ingest

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - playwright is in requirements/dev.txt
    if os.environ.get("CI"):
        raise  # never skip silently in CI: the import error fails the run
    pytest.skip("browser tests skipped: playwright is not installed", allow_module_level=True)

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = {
    "overview": "/",
    "positions": "/positions/",
    "trades": "/trades/",
    "compliance": "/compliance/",
    "performance": "/performance/",
    "sync-health": "/sync-health/",
}


def _broker(settings) -> SimulatedBroker:
    return SimulatedBroker(settings.BROKER_STATE_FILE)


def _trader_with_account(account_id: str = "DU1234567"):
    trader = UserFactory()
    return trader, AccountFactory(account_id=account_id, users=[trader])


def _open_position(account: Account, symbol: str) -> Position:
    return Position.objects.create(
        account=account,
        instrument=InstrumentFactory(symbol=symbol),
        status=PositionStatus.OPEN,
        quantity=Decimal(10),
        average_price=Decimal("100"),
        current_price=Decimal("110"),
        market_value=Decimal("1100"),
        unrealized_pnl=Decimal("100"),
        opened_at=timezone.now() - timedelta(days=3),
    )


def _metrics_days(account: Account, days: int = 30) -> None:
    """A month of daily metrics rows: the equity curve rises a little every day, with one dip."""
    today = timezone.now().date()
    index = Decimal(1)
    peak = index
    for n in range(days):
        step = Decimal("-0.012") if n == days // 2 else Decimal("0.004")
        index = (index * (1 + step)).quantize(Decimal("0.00000001"))
        peak = max(peak, index)
        PerformanceMetrics.objects.create(
            account=account,
            as_of=today - timedelta(days=days - n),
            window=MetricsWindow.ALL,
            daily_return=step,
            twr=index - 1,
            twr_index=index,
            drawdown=(index / peak - 1).quantize(Decimal("0.00000001")),
            max_drawdown=Decimal("-0.012"),
            daily_pnl=(step * 100_000).quantize(Decimal("0.01")),
            round_trips=8,
            win_rate=Decimal("0.625"),
            expectancy=Decimal("42.50"),
            gross_profit=Decimal("900"),
            gross_loss=Decimal("560"),
        )


# --- logging in ---------------------------------------------------------------------------------
def test_login_form_leads_to_the_traders_overview(page, live_server, settings, broker_state):
    trader, account = _trader_with_account()
    positions_sync(account=account, broker=_broker(settings))

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))  # anonymous: sent to the form
    page.get_by_label("Username").fill(trader.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".error")).to_contain_text("didn't match")

    page.get_by_label("Username").fill(trader.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(live_server.url + "/")
    overview = page.locator("#overview")
    expect(overview).to_have_attribute("data-account", "DU1234567")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator('[data-kpi="portfolio_value"]')).to_have_text("$100,000.00")  # NetLiquidation
    expect(page.locator('[data-kpi="cash_balance"]')).to_have_text("$25,000.00")
    expect(page.locator("#positions-table")).to_contain_text("AAPL")
    expect(page.locator('[data-field="last-synced"]')).to_have_text("Last synced just now")
    expect(page.locator(".logout")).to_contain_text(trader.username)
    assert page.js_errors == []


# --- "Sync now" -----------------------------------------------------------------------------------
def test_sync_now_runs_a_sync_and_the_page_shows_it_finished(page, login, settings, broker_state):
    trader, account = _trader_with_account()
    with broker_state.edit() as state:
        # No fills: the broker drives the positions ("sync" mode), so a quantity it changes is the
        # position's at once (with fills, the fills would say, and the sync note the difference).
        broker_state.account(state, "DU1234567")["executions"] = []
    positions_sync(account=account, broker=_broker(settings))
    # That sync was two hours ago, and the broker's positions have moved on since.
    two_hours_ago = timezone.now() - timedelta(hours=2)
    SyncRun.objects.filter(account=account).update(
        started_at=two_hours_ago, finished_at=two_hours_ago + timedelta(seconds=1)
    )
    with broker_state.edit() as state:
        row = broker_state.account(state, "DU1234567")
        row["positions"][0]["quantity"] = "150"  # AAPL bought more
        row["positions"].append(StockPositionRowFactory(symbol="MSFT", con_id=272093, quantity="40"))

    login(page, trader)
    last_synced = page.locator('[data-field="last-synced"]')
    stale = page.locator('[data-banner="stale"]')
    expect(last_synced).to_have_text("Last synced 2 hours ago")
    expect(stale).to_be_visible()
    expect(stale).to_contain_text("Data is stale")
    expect(page.locator("#positions-table")).not_to_contain_text("MSFT")

    page.get_by_role("button", name="Sync now").click()

    progress = page.locator("#sync-progress")
    expect(progress).to_contain_text("Synced at")  # the finished state, not "Syncing…"
    expect(progress).to_contain_text("1 new, 1 updated")
    expect(last_synced).to_have_text("Last synced just now")
    expect(stale).to_be_hidden()
    expect(page.get_by_role("button", name="Sync now")).to_be_enabled()
    # The tables were refreshed from the API without a reload.
    expect(page.locator("#positions-table tbody tr", has_text="MSFT")).to_have_count(1)
    aapl = page.locator("#positions-table tbody tr", has_text="AAPL")
    expect(aapl.locator('[data-cell="quantity"]')).to_have_text("150")
    expect(page.locator('[data-field="positions-count"]')).to_have_text("3")
    assert page.js_errors == []

    latest = SyncRun.objects.filter(account=account, kind=SyncKind.POSITIONS).order_by("-started_at").first()
    assert (latest.status, latest.reason) == (SyncStatus.SUCCESS, SyncReason.API)


# --- broker unreachable -------------------------------------------------------------------------
def test_broker_down_shows_the_banner_and_the_last_known_positions(page, login, settings, broker_state):
    settings.POSITION_SYNC_STALE_AFTER = 0  # every figure is stale at once
    trader, account = _trader_with_account()
    positions_sync(account=account, broker=_broker(settings))
    with broker_state.edit() as state:
        state["connected"] = False
    skipped = positions_sync(account=account, broker=_broker(settings))  # the next scheduled sync
    assert skipped.status == SyncStatus.SKIPPED and skipped.message.startswith("broker unreachable")

    with page.expect_response(lambda response: "/overview/fragments" in response.url):
        login(page, trader)  # the fragments poll answers once the page has loaded

    outage = page.locator('[data-banner="outage"]')
    expect(outage).to_be_visible()
    expect(outage).to_contain_text("Broker unreachable since")
    expect(outage).to_contain_text("showing last known positions")
    expect(page.locator('[data-banner="stale"]')).to_be_hidden()  # one banner, the one that explains
    table = page.locator("#positions-table")
    expect(table).to_be_visible()
    expect(table).to_contain_text("AAPL")
    expect(table).to_contain_text("SPY")
    expect(page.locator('[data-kpi="portfolio_value"]')).to_have_text("$100,000.00")

    # "Sync now" while it is down: the run is skipped, said so, and the banner and positions stay.
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#sync-progress")).to_contain_text("Sync skipped: broker unreachable")
    expect(outage).to_be_visible()
    expect(table).to_contain_text("AAPL")
    assert Position.objects.filter(account=account, status=PositionStatus.OPEN).count() == 2  # nothing closed
    assert page.js_errors == []


# --- live updates -------------------------------------------------------------------------------
def _wait_for_fragments(page, times: int = 1) -> None:
    for _ in range(times):
        with page.expect_response(lambda response: "/overview/fragments" in response.url):
            pass


def test_a_poll_swaps_in_what_changed_rendered_by_the_server(page, login, settings, broker_state):
    trader, account = _trader_with_account()
    positions_sync(account=account, broker=_broker(settings))
    login(page, trader)
    _wait_for_fragments(page)
    kpi = page.locator('[data-kpi="portfolio_value"]')
    expect(kpi).to_have_text("$100,000.00")
    outage = page.locator('[data-banner="outage"]')
    expect(outage).to_be_hidden()

    # Behind the page's back: new figures, a new fill, and the broker stops answering.
    AccountStatus.objects.filter(account=account).update(net_liquidation=Decimal("123456.785"))
    Position.objects.filter(account=account, instrument__symbol="AAPL").update(quantity=Decimal("150.5"))
    at = timezone.now() - timedelta(minutes=5)
    Execution.objects.create(
        exec_id="live-1",
        account=account,
        instrument=InstrumentFactory(symbol="LIVEX"),
        side=Side.SELL,
        quantity=Decimal("2.50"),
        price=Decimal("12.3456"),
        commission=Decimal("1"),
        realized_pnl=Decimal("-7.005"),
        executed_at=at,
        trade_date=trade_date_of(at),
    )
    with broker_state.edit() as state:
        state["connected"] = False
    positions_sync(account=account, broker=_broker(settings))

    # The texts are the server's template filters' (half-up rounding, signs, exchange time), not the script's.
    expect(kpi).to_have_text("$123,456.79")
    aapl = page.locator("#positions-table tbody tr", has_text="AAPL")
    expect(aapl.locator('[data-cell="quantity"]')).to_have_text("150.5")
    fill = page.locator("#fills-table tbody tr", has_text="LIVEX")
    expect(fill.locator('[data-cell="realized_pnl"]')).to_have_text("-$7.01")
    expect(fill.locator('[data-cell="realized_pnl"]')).to_have_class(re.compile(r"\bneg\b"))
    expect(fill.locator('[data-cell="price"]')).to_have_text("12.3456")
    expect(fill.locator('[data-cell="executed_at"]')).to_have_text(
        timezone.localtime(at, ZoneInfo(settings.EXCHANGE_TIME_ZONE)).strftime("%b %-d, %H:%M:%S")
    )
    expect(outage).to_be_visible()  # the server decided the broker is down
    expect(outage).to_contain_text("Broker unreachable since")
    assert page.js_errors == []


def test_a_poll_that_brings_nothing_new_changes_nothing(page, login, settings, broker_state):
    trader, account = _trader_with_account()
    positions_sync(account=account, broker=_broker(settings))
    login(page, trader)
    _wait_for_fragments(page)
    page.evaluate(
        """() => {
            window.fragmentMutations = 0;
            const observer = new MutationObserver((records) => { window.fragmentMutations += records.length; });
            document.querySelectorAll("[data-fragment]").forEach((element) =>
                observer.observe(element, { subtree: true, childList: true, attributes: true, characterData: true }));
        }"""
    )
    _wait_for_fragments(page, times=2)
    page.wait_for_timeout(200)  # let the second answer be applied
    assert page.evaluate("window.fragmentMutations") == 0
    # banners, cards, progress, last synced, positions, fills, portfolio risk
    assert page.evaluate("document.querySelectorAll('[data-fragment]').length") == 7
    assert page.js_errors == []


# --- charts -------------------------------------------------------------------------------------
def test_equity_charts_render_on_the_overview_and_the_performance_page(page, login):
    trader, account = _trader_with_account()
    _metrics_days(account)
    PerformanceMetrics.objects.create(
        account=account,
        as_of=timezone.now().date() - timedelta(days=1),
        window=MetricsWindow.LAST_20,
        round_trips=8,
        win_rate=Decimal("0.5"),
    )

    login(page, trader)
    for chart in ("#chart-equity", "#chart-drawdown"):
        expect(page.locator(f"{chart} .main-svg").first).to_be_visible()
        expect(page.locator(f"{chart} .scatterlayer .trace")).to_have_count(1)  # the line, not just axes
    expect(page.locator("#chart-equity .chart-msg")).to_have_count(0)  # "Loading…" is gone

    page.goto("/performance/")
    for chart in ("#chart-equity", "#chart-drawdown", "#chart-monthly"):
        expect(page.locator(f"{chart} .main-svg").first).to_be_visible()
    expect(page.locator("#chart-monthly .barlayer .trace")).to_have_count(1)
    trips = page.locator("table.metrics", has_text="Round trips")
    expect(trips.locator("tr", has_text="Win rate")).to_contain_text("62.5%")
    expect(trips.locator("tr", has_text="Win rate")).to_contain_text("50.0%")
    assert page.js_errors == []


# --- one trader, one set of accounts ------------------------------------------------------------
def test_another_traders_accounts_are_not_visible(page, login):
    trader, mine = _trader_with_account("DU1111111")
    _open_position(mine, "MINE")
    _other, theirs = _trader_with_account("DU2222222")
    their_position = _open_position(theirs, "THEIRS")
    at = timezone.now() - timedelta(hours=1)
    Execution.objects.create(
        exec_id="theirs-1",
        account=theirs,
        instrument=their_position.instrument,
        side=Side.BUY,
        quantity=Decimal(10),
        price=Decimal(100),
        executed_at=at,
        trade_date=trade_date_of(at),
    )

    login(page, trader)
    expect(page.locator("#positions-table")).to_contain_text("MINE")
    switcher = page.locator("#account-switcher option")
    expect(switcher).to_have_count(1)
    expect(switcher).to_have_text("DU1111111")

    for path in ("/", "/positions/", "/trades/", "/compliance/", "/performance/", "/sync-health/"):
        page.goto(f"{path}?account=DU2222222")  # asking for it by id changes nothing
        expect(page.locator("main")).to_be_visible()
        content = page.content()
        assert "DU2222222" not in content and "THEIRS" not in content, path

    assert page.goto(f"/positions/{their_position.pk}/").status == 404
    api = page.request.get("/api/portfolio/positions?status=all")
    assert api.ok and [row["account"] for row in api.json()["results"]] == ["DU1111111"]
    fills = page.request.get("/api/trading/trades?account=DU2222222")
    assert "theirs-1" not in fills.text()
    assert page.js_errors == []


# --- every page, desktop and phone --------------------------------------------------------------
def _demo_data(settings, broker_state, trader) -> None:
    """What `make demo` builds (two accounts, their fills, a quarter of history and metrics), smaller."""
    now = timezone.now()
    broker_state.write(demo_state_build(now=now))
    broker = _broker(settings)
    accounts_sync(broker=broker)
    accounts = list(Account.objects.all())
    for account in accounts:
        account.users.add(trader)
    positions_sync_accounts(broker=broker, reason=SyncReason.MANUAL)
    for account in accounts:
        executions_ingest(account=account, broker=broker)
    positions_sync_accounts(broker=broker, reason=SyncReason.SCHEDULE)
    for account in accounts:
        demo_history_build(account=account, end=now, days=90)
        metrics_compute_series(account=account, since=date(1990, 1, 1))


def test_every_page_renders_without_errors_at_desktop_and_phone_sizes(page, login, settings, broker_state, tmp_path):
    """Screenshots go to BROWSER_SHOTS_DIR (for a person to look at) or the test's tmp dir."""
    shots = Path(os.environ.get("BROWSER_SHOTS_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    trader = UserFactory()
    _demo_data(settings, broker_state, trader)
    login(page, trader)

    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        for name, path in PAGES.items():
            response = page.goto(path)
            assert response.status == 200, f"{path}: {response.status}"
            page.wait_for_load_state("networkidle")
            if name in ("overview", "performance"):
                expect(page.locator("#chart-equity .main-svg").first).to_be_visible()
            page.screenshot(path=shots / f"{name}-{size_name}.png", full_page=True)
            # Content wider than a phone's screen makes the whole page scroll sideways.
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{path} at {size['width']}px is {overflow}px wider than the screen"
    assert failed == []
    assert page.js_errors == []
