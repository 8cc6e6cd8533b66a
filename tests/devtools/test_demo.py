"""The demo broker state: a file the simulated broker reads cleanly, whose positions, cash and values
follow from its fills, built and advanced deterministically; and the demo_setup command."""

import json
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from core.brokers.simulated import SimulatedBroker
from devtools.demo import (
    CASH_ACCOUNT_ID,
    MARGIN_ACCOUNT_ID,
    STOCKS,
    demo_state_advance,
    demo_state_build,
    demo_state_write,
)
from portfolio.models import Position, PositionEventKind
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory
from trading.calendars import is_nyse_session, session_close
from trading.models import Account, PaperTrade, Signal
from trading.services.executions import executions_ingest

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 in New York: the market is open


@pytest.fixture
def state() -> dict:
    return demo_state_build(now=NOW)


@pytest.fixture
def state_path(tmp_path, state) -> Path:
    path = tmp_path / "demo" / "broker_state.json"
    demo_state_write(path=path, state=state)
    return path


def _broker_read(path: Path) -> dict:
    """Everything the broker says about the file, failing on any warning."""
    broker = SimulatedBroker(path)
    accounts = broker.accounts()
    assert accounts.warnings == ()
    result = {"accounts": {a.account_id: a for a in accounts.items}}
    for name in ("positions", "executions", "cash_flows"):
        result[name] = {}
        for account_id in result["accounts"]:
            fetched = getattr(broker, name)(account_id)
            assert fetched.warnings == (), fetched.warnings
            result[name][account_id] = fetched.items
    for symbol in STOCKS:
        bars = broker.bars(symbol, "1d")
        assert bars.warnings == ()
        assert bars.items
        assert broker.quote(symbol) is not None
    return result


def _net_by_instrument(executions, now: datetime = NOW) -> dict[str, Decimal]:
    """What the fills leave held, less options past their expiry session's close by ``now`` (the broker
    has dropped them: the demo's expiring put)."""
    net: dict[str, Decimal] = defaultdict(Decimal)
    for execution in executions:
        expiry = execution.instrument.expiry
        if expiry is not None and session_close(expiry) <= now:
            continue
        net[execution.instrument.key] += execution.quantity if execution.side == "BUY" else -execution.quantity
    return {key: quantity for key, quantity in net.items() if quantity != 0}


def _average_cost(executions) -> dict[str, Decimal]:
    """Average cost per unit (commissions in, as the adapter reports it), recomputed from the fills."""
    quantity: dict[str, Decimal] = defaultdict(Decimal)
    multiplier: dict[str, Decimal] = {}
    cost: dict[str, Decimal] = defaultdict(Decimal)  # signed: what the open quantity cost
    for execution in sorted(executions, key=lambda e: e.executed_at):
        key = execution.instrument.key
        multiplier[key] = execution.instrument.multiplier
        signed = execution.quantity if execution.side == "BUY" else -execution.quantity
        if quantity[key] == 0 or (quantity[key] > 0) == (signed > 0):
            value = execution.quantity * execution.price * execution.instrument.multiplier
            cost[key] += (value + execution.commission) if signed > 0 else -(value - execution.commission)
            quantity[key] += signed
        else:
            assert abs(signed) <= abs(quantity[key]), "the demo never flips a position in one fill"
            cost[key] = cost[key] * (quantity[key] + signed) / quantity[key]
            quantity[key] += signed
    return {k: cost[k] / quantity[k] / multiplier[k] for k in quantity if quantity[k] != 0}


def _avg_cost_matches(position, expected: dict[str, Decimal]) -> bool:
    """The file's avg_cost (per contract, 4 places) against the recomputed per-unit average."""
    multiplier = position.instrument.multiplier
    recomputed = (abs(expected[position.instrument.key]) * multiplier).quantize(Decimal("0.0001"), ROUND_HALF_UP)
    return position.average_price * multiplier == recomputed


def _floats(node, where="$") -> list[str]:
    if isinstance(node, float):
        return [where]
    if isinstance(node, dict):
        return [f for key, value in node.items() for f in _floats(value, f"{where}.{key}")]
    if isinstance(node, list):
        return [f for index, value in enumerate(node) for f in _floats(value, f"{where}[{index}]")]
    return []


# --- the built state ---------------------------------------------------------------------------------
def test_built_state_reads_through_the_simulated_broker_without_warnings(state_path):
    read = _broker_read(state_path)

    types = {account_id: account.account_type for account_id, account in read["accounts"].items()}
    assert types == {MARGIN_ACCOUNT_ID: "MARGIN", CASH_ACCOUNT_ID: "CASH"}
    assert all(a.base_currency == "USD" for a in read["accounts"].values())


def test_has_hundreds_of_fills_with_unique_ids_inside_market_hours_and_bar_ranges(state_path, state):
    read = _broker_read(state_path)
    executions = [e for items in read["executions"].values() for e in items]
    assert len(executions) >= 300
    assert len({e.exec_id for e in executions}) == len(executions)
    assert min(e.executed_at for e in executions) >= NOW - timedelta(weeks=7)
    bars = {(symbol, row["time"][:10]): row for symbol, by_size in state["bars"].items() for row in by_size["1d"]}
    for execution in executions:
        local = execution.executed_at.astimezone(NEW_YORK)
        assert execution.executed_at < NOW
        assert is_nyse_session(local.date())
        assert local.strftime("%H:%M") >= "09:30" and execution.executed_at < session_close(local.date())
        assert execution.commission >= Decimal("1.00")
        if execution.instrument.sec_type == "STK":
            bar = bars[(execution.instrument.symbol, local.date().isoformat())]
            assert Decimal(bar["low"]) <= execution.price <= Decimal(bar["high"])


def test_positions_are_the_net_of_the_executions(state_path):
    """...less an option past its expiry session's close: the broker has dropped it (the demo's
    expiring put, for the position sync to settle)."""
    read = _broker_read(state_path)
    for account_id, positions in read["positions"].items():
        reported = {p.instrument.key: p.quantity for p in positions}
        assert all(quantity != 0 for quantity in reported.values())
        assert reported == _net_by_instrument(read["executions"][account_id])
    expired = {
        e.instrument.key
        for items in read["executions"].values()
        for e in items
        if e.instrument.expiry and session_close(e.instrument.expiry) <= NOW
    }
    assert len(expired) == 1  # the 2 SPY puts bought at session 4


@pytest.mark.django_db
def test_the_demo_s_expiring_put_is_settled_by_the_sync(state_path, settings):
    settings.BROKER_STATE_FILE = str(state_path)
    account = AccountFactory(account_id=MARGIN_ACCOUNT_ID)
    broker = SimulatedBroker(state_path)
    assert executions_ingest(account=account, broker=broker).status == "SUCCESS"
    assert positions_sync(account=account, broker=broker).status == "SUCCESS"
    put = Position.objects.get(account=account, instrument__sec_type="OPT", instrument__right="P")
    assert put.status == "CLOSED" and put.events.order_by("at", "id").last().kind == PositionEventKind.EXPIRED
    assert put.realized_pnl < 0 and put.closed_at == session_close(put.instrument.expiry)


def test_average_cost_is_what_the_fills_give(state_path):
    read = _broker_read(state_path)
    checked = 0
    for account_id, positions in read["positions"].items():
        expected = _average_cost(read["executions"][account_id])
        for position in positions:
            assert _avg_cost_matches(position, expected)
            checked += 1
    assert checked >= 3


def test_the_short_call_is_two_contracts_at_the_premium_it_was_sold_for(state_path):
    read = _broker_read(state_path)
    option_fills = [e for e in read["executions"][MARGIN_ACCOUNT_ID] if e.instrument.sec_type == "OPT"]
    sold = next(e for e in option_fills if e.side == "SELL")
    (position,) = [p for p in read["positions"][MARGIN_ACCOUNT_ID] if p.instrument.sec_type == "OPT"]

    assert position.quantity == -2
    assert position.instrument.multiplier == 100
    assert position.instrument.expiry > NOW.date()
    # avg_cost is per contract: price x multiplier less the commission share; buying one back keeps it.
    per_contract = (sold.price * 100 * sold.quantity - sold.commission) / sold.quantity
    row = next(p for p in json.loads(state_path.read_text())["accounts"][0]["positions"] if p["sec_type"] == "OPT")
    assert Decimal(row["avg_cost"]) == per_contract.quantize(Decimal("0.0001"), ROUND_HALF_UP)


def test_cash_and_net_liquidation_follow_from_flows_fills_and_prices(state):
    _assert_values_follow_from_rows(state)


def _assert_values_follow_from_rows(state: dict) -> None:
    for account in state["accounts"]:
        cash = Decimal(0)
        for flow in account["cash_flows"]:
            cash += Decimal(flow["amount"]) * (1 if flow["kind"] == "DEPOSIT" else -1)
        # Cash and the account's values are in its base currency (USD): a EUR fill or position counts at the
        # demo's rate (1 EUR = 1.16 USD), never as if euros were dollars.
        rate = {"USD": Decimal(1), **{c: Decimal(r) for c, r in (account.get("fx_rates") or {}).items()}}
        for fill in account["executions"]:
            value = Decimal(fill["quantity"]) * Decimal(fill["price"]) * Decimal(fill.get("multiplier", "1"))
            commission = Decimal(fill["commission"]) * rate[fill.get("commission_currency", "USD")]
            cash += (-value if fill["side"] == "BUY" else value) * rate[fill["currency"]] - commission
        market = sum(
            Decimal(p["quantity"]) * Decimal(p["market_price"]) * Decimal(p["multiplier"]) * rate[p["currency"]]
            for p in account["positions"]
        )
        values = account["values"]
        assert Decimal(values["TotalCashValue"]) == cash.quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert Decimal(values["NetLiquidation"]) == (cash + market).quantize(Decimal("0.01"))
        assert Decimal(values["SettledCash"]) <= cash.quantize(Decimal("0.01"), ROUND_HALF_UP)  # both in cents
        # Unrealized is value less cost: qty x (price x multiplier - avg_cost), shorts included (qty < 0).
        unrealized = sum(
            Decimal(p["quantity"])
            * (Decimal(p["market_price"]) * Decimal(p["multiplier"]) - Decimal(p["avg_cost"]))
            * rate[p["currency"]]
            for p in account["positions"]
        )
        assert abs(Decimal(values["UnrealizedPnL"]) - unrealized) <= Decimal("0.05")  # avg_cost has 4 places
        for tag in ("BuyingPower", "ExcessLiquidity", "MaintMarginReq", "UnrealizedPnL", "RealizedPnL"):
            assert tag in values
        assert values["DayTradesRemaining"] == "-1"


def test_cash_flows_deposit_before_the_first_fill_and_the_margin_account_also_deposits_and_withdraws(state):
    for account in state["accounts"]:
        first_fill = min(e["time"] for e in account["executions"])
        first_flow = min(account["cash_flows"], key=lambda f: f["time"])
        assert first_flow["kind"] == "DEPOSIT"
        assert first_flow["time"] < first_fill
    margin = next(a for a in state["accounts"] if a["account_id"] == MARGIN_ACCOUNT_ID)
    assert sorted(f["kind"] for f in margin["cash_flows"]) == ["DEPOSIT", "DEPOSIT", "WITHDRAWAL"]


def test_the_cash_account_never_spends_more_than_it_has_and_never_shorts(state):
    account = next(a for a in state["accounts"] if a["account_id"] == CASH_ACCOUNT_ID)
    events = [(f["time"], 0, f) for f in account["cash_flows"]] + [(e["time"], 1, e) for e in account["executions"]]
    cash = Decimal(0)
    held: dict[str, Decimal] = defaultdict(Decimal)
    for _time, _order, row in sorted(events, key=lambda event: event[:2]):
        if "kind" in row:
            cash += Decimal(row["amount"]) * (1 if row["kind"] == "DEPOSIT" else -1)
            continue
        value = Decimal(row["quantity"]) * Decimal(row["price"])
        sign = 1 if row["side"] == "BUY" else -1
        cash += -sign * value - Decimal(row["commission"])
        held[row["symbol"]] += sign * Decimal(row["quantity"])
        assert cash >= 0, row
        assert held[row["symbol"]] >= 0, row


def test_the_margin_account_day_trades_shorts_covers_and_closes_partially(state_path):
    executions = _broker_read(state_path)["executions"][MARGIN_ACCOUNT_ID]
    by_day: dict[tuple, list] = defaultdict(list)
    for e in sorted(executions, key=lambda e: e.executed_at):
        by_day[(e.instrument.key, e.executed_at.astimezone(NEW_YORK).date())].append(e)
    running: dict[str, Decimal] = defaultdict(Decimal)
    day_trades = shorts_covered = partial_closes = 0
    for e in sorted(executions, key=lambda e: e.executed_at):
        key = e.instrument.key
        before = running[key]
        running[key] += e.quantity if e.side == "BUY" else -e.quantity
        if before < 0 and e.side == "BUY":
            shorts_covered += 1
        if before > 0 and e.side == "SELL" and running[key] > 0:
            partial_closes += 1
    for fills in by_day.values():
        if {f.side for f in fills} == {"BUY", "SELL"}:
            day_trades += 1
    assert day_trades >= 20
    assert shorts_covered >= 1
    assert partial_closes >= 1


def test_no_floats_anywhere_in_the_file(state_path):
    assert _floats(json.loads(state_path.read_text())) == []


def test_sessions_are_the_nyse_s_holidays_skipped_and_early_closes_kept():
    """Around Thanksgiving 2026: no fills or bars on the holiday (Thu 11-26), and fills on the day after
    stop before its 13:00 early close."""
    after = datetime(2026, 12, 2, 21, 30, tzinfo=UTC)
    built = demo_state_build(now=after)
    days = {datetime.fromisoformat(r["time"]).date() for r in built["bars"]["AAPL"]["1d"]}
    assert date(2026, 11, 26) not in days and date(2026, 11, 27) in days
    fills = [
        datetime.fromisoformat(e["time"].replace("Z", "+00:00")).astimezone(NEW_YORK)
        for account in built["accounts"]
        for e in account["executions"]
    ]
    assert not [f for f in fills if f.date() == date(2026, 11, 26)]
    early = [f for f in fills if f.date() == date(2026, 11, 27)]
    assert early and max(early).strftime("%H:%M") < "13:00"


def test_daily_bars_cover_a_year_of_sessions_up_to_now(state):
    for symbol in STOCKS:
        rows = state["bars"][symbol]["1d"]
        days = [datetime.fromisoformat(r["time"]).date() for r in rows]
        assert 250 <= len(rows) <= 270
        assert days == sorted(days)
        assert all(is_nyse_session(day) for day in days)
        assert days[-1] == NOW.date()
        assert all(Decimal(r["low"]) <= min(Decimal(r["open"]), Decimal(r["close"])) for r in rows)
        assert all(Decimal(r["high"]) >= max(Decimal(r["open"]), Decimal(r["close"])) for r in rows)
        assert state["quotes"][symbol]["last"] == rows[-1]["close"]


def test_recent_intraday_bars_lie_inside_their_day_and_open_and_close_with_it(state):
    for symbol in STOCKS:
        daily = {r["time"][:10]: r for r in state["bars"][symbol]["1d"]}
        for size, sessions in (("1h", 60), ("5m", 10)):
            rows = state["bars"][symbol][size]
            by_day: dict[str, list[dict]] = {}
            for row in rows:
                by_day.setdefault(row["time"][:10], []).append(row)
            assert len(by_day) == sessions
            for day, bars in by_day.items():
                assert bars[0]["open"] == daily[day]["open"] and bars[-1]["close"] == daily[day]["close"]
                assert max(Decimal(b["high"]) for b in bars) == Decimal(daily[day]["high"])
                assert min(Decimal(b["low"]) for b in bars) == Decimal(daily[day]["low"])
                assert all(Decimal(b["low"]) <= min(Decimal(b["open"]), Decimal(b["close"])) for b in bars)


def test_same_seed_and_now_give_the_same_state_and_another_seed_does_not():
    first = json.dumps(demo_state_build(now=NOW, seed=7))
    assert json.dumps(demo_state_build(now=NOW, seed=7)) == first
    assert json.dumps(demo_state_build(now=NOW, seed=8)) != first
    assert json.loads(first)["demo"] == {"seed": 7, "tick": 0, "last_advanced": "2026-11-18T15:00:00Z"}


def test_build_needs_an_aware_now():
    with pytest.raises(ValueError, match="timezone-aware"):
        demo_state_build(now=datetime(2026, 11, 18, 15, 0))  # naive on purpose


# --- advancing ---------------------------------------------------------------------------------------
def _ticks(path: Path, count: int, start: datetime = NOW) -> list[dict]:
    return [demo_state_advance(path=path, now=start + timedelta(seconds=30 * (n + 1))) for n in range(count)]


def test_a_tick_moves_prices_and_counts_itself(state_path, state):
    result = demo_state_advance(path=state_path, now=NOW + timedelta(seconds=30))
    after = json.loads(state_path.read_text())

    assert result["status"] == "SUCCESS"
    assert result["tick"] == 1
    assert after["demo"]["tick"] == 1
    assert after["demo"]["last_advanced"] == "2026-11-18T15:00:30Z"
    assert {s: q["last"] for s, q in after["quotes"].items()} != {s: q["last"] for s, q in state["quotes"].items()}
    for symbol, quote in after["quotes"].items():
        today = after["bars"][symbol]["1d"][-1]
        assert today["close"] == quote["last"]
        assert Decimal(today["low"]) <= Decimal(quote["last"]) <= Decimal(today["high"])
    assert list(state_path.parent.iterdir()) == [state_path]  # no temporary file left behind


def test_ticks_are_deterministic(state_path, tmp_path):
    copy = tmp_path / "copy.json"
    shutil.copy(state_path, copy)
    assert _ticks(state_path, 12) == _ticks(copy, 12)
    assert state_path.read_text() == copy.read_text()


def test_fifty_ticks_keep_positions_cash_and_values_consistent(state_path):
    results = _ticks(state_path, 50)
    read = _broker_read(state_path)
    state = json.loads(state_path.read_text())

    assert [r["tick"] for r in results] == list(range(1, 51))
    assert sum(r["fills"] for r in results) >= 5  # about one tick in four trades
    for account_id, positions in read["positions"].items():
        assert {p.instrument.key: p.quantity for p in positions} == _net_by_instrument(read["executions"][account_id])
        expected = _average_cost(read["executions"][account_id])
        for position in positions:
            assert _avg_cost_matches(position, expected)
    executions = [e for items in read["executions"].values() for e in items]
    assert len({e.exec_id for e in executions}) == len(executions)
    assert read["accounts"][CASH_ACCOUNT_ID].values.total_cash >= 0
    assert _floats(state) == []
    _assert_values_follow_from_rows(state)


def test_cash_account_cash_never_goes_negative_while_ticking(state_path):
    for n in range(40):
        demo_state_advance(path=state_path, now=NOW + timedelta(seconds=30 * (n + 1)))
        account = SimulatedBroker(state_path).accounts().items
        cash = next(a for a in account if a.account_id == CASH_ACCOUNT_ID).values.total_cash
        assert cash >= 0


def test_outside_a_session_prices_move_but_bars_and_fills_do_not(state_path, state):
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    results = _ticks(state_path, 20, start=saturday)
    after = json.loads(state_path.read_text())

    assert sum(r["fills"] for r in results) == 0
    assert after["bars"] == state["bars"]
    assert after["quotes"]["SPY"]["last"] != state["quotes"]["SPY"]["last"]


def test_a_new_session_opens_a_new_daily_bar(state_path):
    monday = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    demo_state_advance(path=state_path, now=monday)
    after = json.loads(state_path.read_text())
    for symbol in STOCKS:
        today = after["bars"][symbol]["1d"][-1]
        assert today["time"] == "2026-11-23T00:00:00Z"
        assert today["open"] == today["close"] == after["quotes"][symbol]["last"]


def test_a_missing_file_is_built_first(tmp_path):
    path = tmp_path / "nested" / "state.json"
    result = demo_state_advance(path=path, now=NOW)
    assert result == {"status": "SUCCESS", "tick": 1, "fills": result["fills"]}
    _broker_read(path)


def test_a_file_that_is_not_a_demo_state_is_left_alone(tmp_path):
    path = tmp_path / "fixture.json"
    path.write_text('{"connected": true, "accounts": []}')
    assert demo_state_advance(path=path, now=NOW)["status"] == "SKIPPED"
    assert path.read_text() == '{"connected": true, "accounts": []}'


# --- demo_setup and the tick task --------------------------------------------------------------------
def _setup(*args: str) -> str:
    out = StringIO()
    call_command("demo_setup", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_demo_setup_twice_creates_everything_once(settings):
    settings.DEMO_MODE = True
    user_model = get_user_model()
    first = _setup()
    admin = user_model.objects.get(username="admin")
    admin.set_password("changed-by-staff")
    admin.save()
    second = _setup()

    assert "demo / demo-password" in first
    assert "exists, left unchanged" in second
    assert Path(settings.BROKER_STATE_FILE).exists()
    demo = user_model.objects.get(username="demo")
    admin.refresh_from_db()
    assert user_model.objects.filter(username__in=["demo", "admin"]).count() == 2
    assert demo.check_password("demo-password")
    assert not demo.is_staff
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("changed-by-staff")  # an existing user's password is never reset
    assert set(Account.objects.visible_to(demo).values_list("account_id", "name")) == {
        (MARGIN_ACCOUNT_ID, "Margin demo"),
        (CASH_ACCOUNT_ID, "Cash demo"),
        ("PAPER-DEMO", "Paper trading"),  # the order ticket's paper account, created once
    }
    assert Account.objects.get(account_id="PAPER-DEMO").cash_flows.count() == 1
    # The demo's signals, once: one executed into an open paper trade, two GENERATED.
    signals = Signal.objects.filter(account__account_id="PAPER-DEMO").order_by("signal_id")
    assert sorted(s.status for s in signals) == ["EXECUTED", "GENERATED", "GENERATED"]
    assert PaperTrade.objects.get(account__account_id="PAPER-DEMO").status == "OPEN"
    tick = PeriodicTask.objects.get(name="Demo broker tick")
    assert (tick.task, tick.interval.every, tick.expire_seconds) == ("devtools.demo_tick", 30, 25)


@pytest.mark.django_db
def test_demo_setup_keeps_names_and_files_unless_forced(settings):
    settings.DEMO_MODE = True
    path = Path(settings.BROKER_STATE_FILE)
    _setup()
    Account.objects.filter(account_id=MARGIN_ACCOUNT_ID).update(name="My IBKR margin")
    path.write_text(path.read_text().replace('"tick": 0', '"tick": 99'))
    _setup()
    assert json.loads(path.read_text())["demo"]["tick"] == 99
    assert Account.objects.get(account_id=MARGIN_ACCOUNT_ID).name == "My IBKR margin"

    _setup("--force", "--seed", "3")
    demo = json.loads(path.read_text())["demo"]
    assert (demo["seed"], demo["tick"]) == (3, 0)


@pytest.mark.django_db
def test_demo_setup_refuses_a_real_broker(settings):
    settings.DEMO_MODE = True
    settings.BROKER = "ibkr"
    with pytest.raises(CommandError, match="BROKER=simulated"):
        _setup()
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_demo_setup_refuses_outside_debug_and_demo_mode(settings):
    settings.DEBUG = False
    settings.DEMO_MODE = False
    with pytest.raises(CommandError, match="DEMO_MODE"):
        _setup()


@pytest.mark.django_db
def test_the_demo_tick_task_advances_the_state_in_demo_mode(settings):
    from devtools.tasks import demo_tick_task

    settings.DEMO_MODE = True
    assert demo_tick_task.delay().get()["status"] == "SUCCESS"
    assert json.loads(Path(settings.BROKER_STATE_FILE).read_text())["demo"]["tick"] == 1


@pytest.mark.django_db
def test_the_demo_tick_moves_the_file_the_gateway_simulator_serves(settings):
    from devtools.tasks import demo_tick_task

    settings.DEMO_MODE = True
    settings.BROKER = "ibkr"
    settings.IBKR_GATEWAY_SIM = False  # a real gateway: the file is nobody's broker
    assert demo_tick_task.delay().get()["status"] == "SKIPPED"
    settings.IBKR_GATEWAY_SIM = True  # make run BROKER=ibkr: the simulator serves the file
    assert demo_tick_task.delay().get()["status"] == "SUCCESS"


def test_the_margin_account_holds_a_eur_listed_stock_with_its_fills(state):
    """Issue #17: SAP on Xetra, in EUR, with its own fills (a closed round trip and an open position), the
    broker's EUR rate beside it, and the account's values in USD."""
    margin = next(a for a in state["accounts"] if a["account_id"] == MARGIN_ACCOUNT_ID)
    assert set(margin["fx_rates"]) == {"EUR"}
    sap_fills = [e for e in margin["executions"] if e["symbol"] == "SAP"]
    assert [(e["side"], e["quantity"]) for e in sap_fills] == [
        ("BUY", "40"),
        ("BUY", "20"),
        ("SELL", "60"),
        ("BUY", "50"),
    ]
    assert {(e["currency"], e["commission_currency"], e["exchange"]) for e in sap_fills} == {("EUR", "EUR", "IBIS")}
    sap = next(p for p in margin["positions"] if p["symbol"] == "SAP")
    assert (sap["currency"], sap["quantity"]) == ("EUR", "50")
    assert state["quotes"]["SAP"]["last"] == sap["market_price"]


def test_the_margin_account_holds_a_positive_eur_balance_at_the_domain_rules_rate(state):
    """The demo's euros outlast its SAP purchases (a positive EUR balance, not a borrowed one), and the
    broker's current rate is the one domain-rules.md's example uses, which the rates history ends at."""
    margin = next(a for a in state["accounts"] if a["account_id"] == MARGIN_ACCOUNT_ID)
    assert Decimal(margin["cash_balances"]["EUR"]) > 0
    assert Decimal(margin["fx_rates"]["EUR"]) == Decimal("1.16")
    assert Decimal(state["fx_history"]["USD"]["EUR"][-1]["rate"]) == Decimal("1.16")
