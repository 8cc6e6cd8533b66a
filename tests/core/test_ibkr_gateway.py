"""IBKRBroker (BROKER=ibkr) end to end over the socket against the IB Gateway simulator.

Every adapter call against the example state, then issue #11's cases at the adapter: errors during
the positions request (1), an error on the executions request (2), a silent gateway (3), client id in
use (4), and a commission report that trails the executions answer (5). The same cases through the
services (sync, snapshot, ingest) are in tests/portfolio/test_ibkr_gateway_sync.py and
tests/trading/test_ibkr_gateway_ingest.py.
"""

import re
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.brokers.base import BrokerError, BrokerUnavailable
from core.brokers.contracts import SecType
from core.brokers.gateway_sim import server
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT

LOST = "Connectivity between IB and Trader Workstation has been lost."


def add_future(gateway, *, quantity="1", avg_cost="300000", market_price="6010") -> None:
    with gateway.state.edit() as state:
        gateway.state.account(state, ACCOUNT)["positions"].append(
            {
                "symbol": "ES",
                "sec_type": "FUT",
                "con_id": 495512563,
                "currency": "USD",
                "exchange": "CME",
                "multiplier": "50",
                "expiry": "2026-12-18",
                "quantity": quantity,
                "avg_cost": avg_cost,
                "market_price": market_price,
            }
        )


# --- every call ------------------------------------------------------------------------------------
def test_accounts(gateway):
    fetched = gateway.broker().accounts()
    (account,) = fetched.items
    assert (account.account_id, account.account_type, account.base_currency) == (ACCOUNT, "MARGIN", "USD")
    values = account.values
    assert values.net_liquidation == Decimal("100000.00")
    assert values.total_cash == Decimal("25000.00")
    assert values.settled_cash == Decimal("24000.00")
    assert values.buying_power == Decimal("300000.00")
    assert values.maint_margin_req == Decimal("20000.00")
    assert values.unrealized_pnl == Decimal("1200.00")  # the BASE row, not a currency's slice
    assert values.realized_pnl == Decimal("300.00")
    assert values.day_trades_remaining == 3
    assert fetched.warnings == ()


def test_positions_stocks_shorts_options_and_futures_per_unit(gateway):
    add_future(gateway)
    fetched = gateway.broker().positions(ACCOUNT)
    by_symbol = {p.instrument.symbol: p for p in fetched.items}
    stock, call, future = by_symbol["AAPL"], by_symbol["SPY"], by_symbol["ES"]
    assert (stock.quantity, stock.average_price, stock.market_price) == (
        Decimal("100"),
        Decimal("150.25"),
        Decimal("155.1"),
    )
    assert (call.quantity, call.average_price, call.market_price) == (Decimal("-2"), Decimal("5.124"), Decimal("4.8"))
    assert (call.instrument.strike, call.instrument.right, call.instrument.multiplier) == (
        Decimal("600"),
        "C",
        Decimal("100"),
    )
    assert future.instrument.sec_type == SecType.FUTURE
    assert (future.average_price, future.market_price, future.instrument.multiplier) == (
        Decimal("6000"),
        Decimal("6010"),
        Decimal("50"),
    )
    assert future.instrument.expiry.isoformat() == "2026-12-18"


def test_executions_with_commissions_and_since(gateway):
    with gateway.state.edit() as state:
        executions = gateway.state.account(state, ACCOUNT)["executions"]
        executions.append(
            {
                **executions[0],
                "exec_id": "older.01",
                "time": "2026-11-02T15:00:00Z",
                "side": "SELL",
                "commission": "0.75",
            }
        )
    broker = gateway.broker()
    every = broker.executions(ACCOUNT)
    assert [(e.exec_id, e.side, e.commission) for e in every.items] == [
        ("older.01", "SELL", Decimal("0.75")),
        ("0000e0d5.6553a1b2.01.01", "BUY", Decimal("1.00")),
    ]
    execution = every.items[1]
    assert (execution.quantity, execution.price, execution.order_id, execution.perm_id) == (
        Decimal("100"),
        Decimal("150.25"),
        12,
        987654,
    )
    assert execution.executed_at == datetime(2026, 11, 20, 14, 32, 15, tzinfo=UTC)
    recent = broker.executions(ACCOUNT, since=datetime(2026, 11, 10, tzinfo=UTC))
    assert [e.exec_id for e in recent.items] == ["0000e0d5.6553a1b2.01.01"]


def test_cash_flows_come_from_flex_not_the_socket(gateway):
    fetched = gateway.broker().cash_flows(ACCOUNT)
    assert fetched.items == () and "Flex" in fetched.warnings[0]


def test_bars_daily_and_intraday(gateway):
    with gateway.state.edit() as state:
        state["bars"]["AAPL"]["1h"] = [
            {"time": f"2026-11-20T{h}:30:00Z", "open": "1", "high": "3", "low": "1", "close": "2", "volume": "10"}
            for h in (14, 15, 16)
        ]
    broker = gateway.broker()
    (daily,) = broker.bars("AAPL", "1d", start=datetime(2026, 11, 1, tzinfo=UTC)).items
    assert (daily.start, daily.open, daily.close, daily.volume) == (
        datetime(2026, 11, 19, tzinfo=UTC),
        Decimal("150"),
        Decimal("155.1"),
        Decimal("48211000"),
    )
    hourly = broker.bars(
        "AAPL", "1h", start=datetime(2026, 11, 20, 15, tzinfo=UTC), end=datetime(2026, 11, 20, 17, tzinfo=UTC)
    )
    assert [b.start.hour for b in hourly.items] == [15, 16]
    empty = broker.bars("AAPL", "1d", start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime(2020, 2, 1, tzinfo=UTC))
    assert empty.items == () and "no data" in empty.warnings[0]
    with pytest.raises(BrokerError, match="NOPE: no such security at IBKR \\(error 200"):
        broker.bars("NOPE", "1d")


def test_quote(gateway):
    broker = gateway.broker()
    quote = broker.quote("AAPL")
    assert (quote.bid, quote.ask, quote.last) == (Decimal("155.05"), Decimal("155.12"), Decimal("155.1"))
    with pytest.raises(BrokerError, match="NOPE: no such security at IBKR \\(error 200"):
        broker.quote("NOPE")


def test_a_gateway_that_is_down_is_unavailable(gateway):
    gateway.stop()
    with pytest.raises(BrokerUnavailable, match="connection refused"):
        gateway.broker().positions(ACCOUNT)


def test_connect_asks_for_nothing_it_does_not_need(gateway):
    """Issue #11 case 2: no start-up fetch of account updates, orders or every execution."""
    seen = []
    handler = server._Connection._request

    async def spy(self, raw):
        seen.append(raw[0])
        return await handler(self, raw)

    server._Connection._request = spy
    try:
        gateway.broker().accounts()
    finally:
        server._Connection._request = handler
    # 61: positions (ib_async asks for them at every connect), 62: the account summary asked for.
    assert "7" not in seen and "6" not in seen and "76" not in seen and "5" not in seen


# --- issue #11, case 1: a connectivity error followed by an empty positions answer ----------------
@pytest.mark.parametrize("code", [1100, 10276])
def test_connectivity_lost_then_empty_positions_is_unreachable_not_flat(gateway, code):
    gateway.faults(positions={"errors": [{"code": code, "message": LOST}], "answer": "empty"})
    with pytest.raises(BrokerUnavailable, match=rf"error {code}"):
        gateway.broker().positions(ACCOUNT)


def test_connectivity_lost_at_connect_and_not_restored_is_unreachable(gateway):
    gateway.faults(connect={"errors": [{"code": 1100, "message": LOST}]})
    with pytest.raises(BrokerUnavailable, match="1100"):
        gateway.broker().positions(ACCOUNT)


def test_connectivity_lost_then_restored_is_trusted(gateway):
    gateway.faults(positions={"errors": [1100, 1102], "answer": "normal"})
    assert len(gateway.broker().positions(ACCOUNT).items) == 2


def test_any_other_error_during_the_positions_request_is_a_failed_request(gateway):
    gateway.faults(positions={"errors": [{"code": 322, "message": "Error processing request"}], "answer": "empty"})
    with pytest.raises(BrokerError, match="error 322"):
        gateway.broker().positions(ACCOUNT)


def test_farm_notices_during_the_positions_request_are_not_errors(gateway):
    gateway.faults(positions={"errors": [2104, 2106, 2158], "answer": "normal"})
    assert len(gateway.broker().positions(ACCOUNT).items) == 2


# --- case 2: an error on the executions request ---------------------------------------------------
def test_an_executions_error_does_not_block_positions_and_is_a_failed_request(gateway):
    gateway.faults(executions={"error": {"code": 10187, "message": "Failed to request executions"}})
    broker = gateway.broker()
    assert len(broker.positions(ACCOUNT).items) == 2
    assert broker.accounts().items[0].account_id == ACCOUNT
    with pytest.raises(BrokerError, match="10187") as failed:
        broker.executions(ACCOUNT)
    assert not isinstance(failed.value, BrokerUnavailable)


# --- case 3: a gateway that completes the handshake and then stays silent -------------------------
def test_a_silent_gateway_costs_one_timeout_and_says_how_long_it_waited(gateway):
    gateway.faults(**{"*": {"answer": "none"}})
    broker = gateway.broker(timeout=1.0)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as failed:
        broker.positions(ACCOUNT)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"took {elapsed:.2f}s for a 1s timeout"  # it took 3s and more
    reported = re.search(r"after (\d+(?:\.\d+)?)s", str(failed.value))
    assert reported, str(failed.value)
    assert abs(float(reported.group(1)) - elapsed) < 0.5, (str(failed.value), elapsed)


def test_a_slow_but_answering_gateway_is_waited_for(gateway):
    gateway.faults(positions={"delay": 0.3})
    assert len(gateway.broker(timeout=2.0).positions(ACCOUNT).items) == 2


# --- case 4: client id in use -----------------------------------------------------------------------
def test_client_id_in_use_is_reported_at_once_and_names_the_pool(gateway):
    gateway.faults(client_ids_in_use=[17])
    broker = gateway.broker(timeout=3.0)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="326") as failed:
        broker.positions(ACCOUNT)
    assert time.monotonic() - started < 1.5  # not the whole 3s timeout
    assert "IBKR_CLIENT_IDS" in str(failed.value)


def test_client_id_really_in_use_by_another_connection(gateway):
    holder = gateway.broker(client_id=17)
    gateway.faults(positions={"delay": 1.5})
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("rows", holder.positions(ACCOUNT)))
    thread.start()
    try:
        time.sleep(0.3)
        with pytest.raises(BrokerUnavailable, match="client id 17 is already in use"):
            gateway.broker(client_id=17, timeout=3.0).accounts()
    finally:
        thread.join(5)
    assert len(outcome["rows"].items) == 2


@pytest.mark.django_db
def test_client_id_in_use_tries_the_next_id_of_the_pool(gateway, settings):
    from core.brokers import get_broker

    gateway.faults(client_ids_in_use=[17, 18])
    settings.IBKR_CLIENT_IDS = [17, 18, 19]
    broker = get_broker()
    assert len(broker.positions(ACCOUNT).items) == 2
    assert broker.client_id == 19


@pytest.mark.django_db
def test_every_id_of_the_pool_in_use_is_unavailable_naming_the_pool(gateway, settings):
    from core.brokers import get_broker

    gateway.faults(client_ids_in_use=[17, 18])
    settings.IBKR_CLIENT_IDS = [17, 18]
    with pytest.raises(BrokerUnavailable, match="IBKR_CLIENT_IDS"):
        get_broker().positions(ACCOUNT)


# --- case 5: a commission report later than the short wait ----------------------------------------
def test_a_late_commission_report_is_none_then_picked_up_by_a_later_call(gateway):
    with gateway.state.edit() as state:
        gateway.state.account(state, ACCOUNT)["executions"][0]["commission_delay"] = "1.5"
    broker = gateway.broker(commission_grace_seconds=0.3)
    (first,) = broker.executions(ACCOUNT).items
    assert first.commission is None
    with gateway.state.edit() as state:
        del gateway.state.account(state, ACCOUNT)["executions"][0]["commission_delay"]  # known by now
    (later,) = broker.executions(ACCOUNT).items
    assert (later.exec_id, later.commission) == (first.exec_id, Decimal("1.00"))


def test_a_commission_report_within_the_short_wait_is_kept(gateway):
    with gateway.state.edit() as state:
        gateway.state.account(state, ACCOUNT)["executions"][0]["commission_delay"] = "0.2"
    (execution,) = gateway.broker(commission_grace_seconds=1.0).executions(ACCOUNT).items
    assert execution.commission == Decimal("1.00")


def test_connectivity_lost_while_prices_are_fetched_makes_the_whole_answer_doubtful(gateway):
    gateway.faults(account_updates={"errors": [{"code": 1100, "message": LOST}], "answer": "normal"})
    with pytest.raises(BrokerUnavailable, match="error 1100"):
        gateway.broker().positions(ACCOUNT)
