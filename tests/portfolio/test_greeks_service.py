"""Refreshing the Greeks of open option positions: broker first, computed otherwise, stored with the
entry set, carried into snapshots; the task, the command and the query count."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.brokers.base import AccountValues, BrokerAccount, BrokerPosition
from core.brokers.contracts import SecType
from core.brokers.memory import MemoryBroker
from core.brokers.simulated import SimulatedBroker
from marketdata.models import Instrument, Quote
from portfolio.models import PositionGreeks, PositionSnapshot, PositionStatus
from portfolio.services.greeks import greeks_refresh
from portfolio.services.snapshots import snapshot_take
from portfolio.services.sync import positions_sync
from portfolio.tasks import greeks_refresh_task
from tests.factories import EXAMPLE_ACCOUNT_ID, AccountFactory, InstrumentFactory

pytestmark = pytest.mark.django_db
D = Decimal
# Friday 2026-12-04 16:00 New York: the example's SPY 600C (short 2) expires 2026-12-18, 14 days later.
NOW = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
BROKER_GREEKS = {
    "delta": "0.52",
    "gamma": "0.031",
    "theta": "-0.21",
    "vega": "0.44",
    "iv": "0.183",
    "underlying_price": "598.10",
}


@pytest.fixture
def account():
    return AccountFactory(account_id=EXAMPLE_ACCOUNT_ID)


@pytest.fixture
def broker(settings, broker_state):
    return SimulatedBroker(settings.BROKER_STATE_FILE)


def spy_option(broker_state) -> dict:
    with broker_state.edit() as state:
        row = next(p for p in broker_state.account(state, EXAMPLE_ACCOUNT_ID)["positions"] if p["sec_type"] == "OPT")
    return row


def set_option_greeks(broker_state, greeks) -> None:
    with broker_state.edit() as state:
        for row in broker_state.account(state, EXAMPLE_ACCOUNT_ID)["positions"]:
            if row["sec_type"] == "OPT":
                if greeks is None:
                    row.pop("greeks", None)
                else:
                    row["greeks"] = greeks


def quote(instrument: Instrument, *, bid=None, ask=None, last=None) -> Quote:
    values = {"bid": bid, "ask": ask, "last": last, "source": "test", "fetched_at": timezone.now(), "at": NOW}
    return Quote.objects.update_or_create(instrument=instrument, defaults=values)[0]


def spy_quotes(*, option_bid="4.70", option_ask="4.90", spy="598.00") -> None:
    option = Instrument.objects.get(symbol="SPY", sec_type=SecType.OPTION)
    stock = Instrument.objects.filter(symbol="SPY", sec_type=SecType.STOCK).first() or InstrumentFactory(
        symbol="SPY", con_id=756733
    )
    quote(option, bid=D(option_bid), ask=D(option_ask))
    quote(stock, bid=D(spy) - D("0.01"), ask=D(spy) + D("0.01"), last=D(spy))


def greeks_of_spy() -> PositionGreeks:
    return PositionGreeks.objects.get(position__instrument__symbol="SPY", position__status=PositionStatus.OPEN)


def test_broker_greeks_are_preferred_over_computed(account, broker, broker_state):
    set_option_greeks(broker_state, BROKER_GREEKS)
    positions_sync(account=account, broker=broker)
    spy_quotes()  # a computed set would be possible too

    result = greeks_refresh(broker=broker, now=NOW)

    assert (result.positions, result.from_broker, result.computed) == (1, 1, 0)
    greeks = greeks_of_spy()
    assert greeks.source == "BROKER"
    assert (greeks.delta, greeks.gamma, greeks.theta, greeks.vega, greeks.iv) == (
        D("0.52"),
        D("0.031"),
        D("-0.21"),
        D("0.44"),
        D("0.183"),
    )
    assert greeks.underlying_price == D("598.10")  # the broker's, not the stored quote's
    assert greeks.days_to_expiry == D(14)


def test_without_broker_greeks_they_are_computed_from_the_stored_quotes(account, broker, broker_state, settings):
    settings.RISK_FREE_RATE = D("0.045")
    positions_sync(account=account, broker=broker)
    spy_quotes()

    result = greeks_refresh(broker=broker, now=NOW)

    assert (result.from_broker, result.computed, result.empty) == (0, 1, 0)
    greeks = greeks_of_spy()
    assert greeks.source == "COMPUTED"
    assert D("0.3") < greeks.delta < D("0.6")  # per share of a near-the-money call
    assert greeks.theta < 0 and greeks.gamma > 0 and greeks.vega > 0
    assert greeks.underlying_price == D("598.00")  # the mid of the stored SPY quote
    assert greeks.inputs["option_price"] == "4.80000000"
    assert greeks.inputs["price_kind"] == "mid"
    assert greeks.inputs["risk_free_rate"] == "0.045"


def test_an_incomplete_broker_set_is_not_used(account, broker, broker_state):
    set_option_greeks(broker_state, {"delta": "0.52", "underlying_price": "598.10"})
    positions_sync(account=account, broker=broker)
    option = Instrument.objects.get(symbol="SPY", sec_type=SecType.OPTION)
    quote(option, last=D("4.80"))  # no stock quote: the broker's underlying price is used

    greeks_refresh(broker=broker, now=NOW)

    greeks = greeks_of_spy()
    assert greeks.source == "COMPUTED", greeks.reason
    assert greeks.inputs["price_kind"] == "last"
    assert greeks.underlying_price == D("598.10")


def test_a_price_below_intrinsic_is_stored_empty_with_the_reason(account, broker, broker_state):
    positions_sync(account=account, broker=broker)
    spy_quotes(option_bid="0.90", option_ask="1.10", spy="650.00")  # a 600 call worth at least 50

    result = greeks_refresh(broker=broker, now=NOW)

    assert result.empty == 1
    greeks = greeks_of_spy()
    assert greeks.source == "" and greeks.delta is None
    assert "intrinsic value" in greeks.reason
    assert greeks.entry_source == ""  # nothing known yet: no entry set


def test_unreachable_broker_still_computes_and_warns(account, broker, broker_state):
    positions_sync(account=account, broker=broker)
    spy_quotes()
    with broker_state.edit() as state:
        state["connected"] = False

    result = greeks_refresh(broker=broker, now=NOW)

    assert result.computed == 1
    assert "could not be read" in result.warnings[0]


def test_malformed_broker_greeks_are_ignored_with_a_warning(broker, broker_state):
    set_option_greeks(broker_state, {**BROKER_GREEKS, "delta": "1.7"})
    fetched = broker.positions(EXAMPLE_ACCOUNT_ID)
    option = next(p for p in fetched.items if p.instrument.sec_type == SecType.OPTION)
    assert option.greeks is None
    assert any("greeks.delta" in w and "ignored" in w for w in fetched.warnings)


def test_greeks_at_entry_are_kept_after_the_position_changes(account, broker, broker_state):
    set_option_greeks(broker_state, BROKER_GREEKS)
    positions_sync(account=account, broker=broker)
    greeks_refresh(broker=broker, now=NOW)
    entered = greeks_of_spy()
    assert (entered.entry_delta, entered.entry_theta, entered.entry_source) == (D("0.52"), D("-0.21"), "BROKER")

    # The position grows and the market moves: the current set follows, the entry set stays.
    with broker_state.edit() as state:
        row = next(p for p in broker_state.account(state, EXAMPLE_ACCOUNT_ID)["positions"] if p["sec_type"] == "OPT")
        row["quantity"] = "-5"
        row["greeks"] = {**BROKER_GREEKS, "delta": "0.61", "theta": "-0.25"}
    positions_sync(account=account, broker=broker)
    greeks_refresh(broker=broker, now=datetime(2026, 12, 7, 15, 0, tzinfo=UTC))

    greeks = greeks_of_spy()
    assert greeks.position.quantity == D(-5)
    assert (greeks.delta, greeks.theta) == (D("0.61"), D("-0.25"))
    assert (greeks.entry_delta, greeks.entry_theta, greeks.entry_at) == (D("0.52"), D("-0.21"), entered.entry_at)
    assert greeks.entry_days_to_expiry == D(14)


def test_a_snapshot_keeps_the_current_greeks(account, broker, broker_state):
    set_option_greeks(broker_state, BROKER_GREEKS)
    positions_sync(account=account, broker=broker)
    greeks_refresh(broker=broker, now=NOW)

    snapshot = snapshot_take(account=account, broker=broker, at=NOW)

    rows = {row.instrument.sec_type: row for row in PositionSnapshot.objects.filter(snapshot=snapshot)}
    option, stock = rows[SecType.OPTION], rows[SecType.STOCK]
    assert (option.delta, option.theta, option.iv, option.greeks_source) == (
        D("0.52"),
        D("-0.21"),
        D("0.183"),
        "BROKER",
    )
    assert option.underlying_price == D("598.10")
    assert stock.delta is None and stock.greeks_source == ""


def _memory_options(account_id: str, count: int) -> MemoryBroker:
    rows = []
    for index in range(count):
        instrument = InstrumentFactory(option=True, symbol="SPY", strike=D(620 + index))
        rows.append(BrokerPosition(account_id, instrument.spec, D(1), D("5"), D("5")))
    values = AccountValues(net_liquidation=D(1000))
    return MemoryBroker(accounts=[BrokerAccount(account_id, "MARGIN", "USD", values)], positions={account_id: rows})


@pytest.mark.parametrize("size", [2, 40])
def test_refresh_queries_do_not_grow_with_positions(django_assert_num_queries, size):
    account = AccountFactory()
    broker = _memory_options(account.account_id, size)
    positions_sync(account=account, broker=broker)
    # positions, underlyings, quotes, entries recorded; SAVEPOINT, upsert, RELEASE
    with django_assert_num_queries(7):
        first = greeks_refresh(broker=broker, now=NOW)
    assert first.positions == size and first.empty == size  # no quotes: empty, with the reason
    spy_stock = InstrumentFactory(symbol="SPY")
    quote(spy_stock, bid=D("599.99"), ask=D("600.01"))
    # Now every set is known: the new ones record their entry (a second upsert for the first ones).
    with django_assert_num_queries(7):
        second = greeks_refresh(broker=broker, now=NOW)
    assert second.computed == size and second.entries_recorded == size


def test_the_task_runs_only_while_the_market_is_open(account, broker, broker_state, settings, monkeypatch):
    set_option_greeks(broker_state, BROKER_GREEKS)
    positions_sync(account=account, broker=broker)
    monkeypatch.setattr("portfolio.tasks.timezone.now", lambda: datetime(2026, 12, 5, 15, 0, tzinfo=UTC))  # Saturday
    assert greeks_refresh_task()["status"] == "NOT_DUE"
    assert not PositionGreeks.objects.exists()
    monkeypatch.setattr("portfolio.tasks.timezone.now", lambda: datetime(2026, 12, 7, 15, 0, tzinfo=UTC))  # Monday
    done = greeks_refresh_task()
    assert (done["status"], done["from_broker"]) == ("DONE", 1)
    assert greeks_refresh_task(force=True)["status"] == "DONE"


def test_refresh_greeks_command_runs_at_any_hour(account, broker, broker_state, capsys):
    set_option_greeks(broker_state, BROKER_GREEKS)
    positions_sync(account=account, broker=broker)
    call_command("refresh_greeks", "--account", EXAMPLE_ACCOUNT_ID)
    assert "1 option position(s): 1 from the broker" in capsys.readouterr().out
    assert greeks_of_spy().source == "BROKER"
