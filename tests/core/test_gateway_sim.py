"""The IB Gateway simulator speaks the TWS API as ib_async 2.1.0 reads it.

Two levels: every outgoing message decoded by ib_async's own ``Decoder`` at each server-version
layout it knows (157..178), and ib_async's ``IB`` talking to the running simulator over a socket:
accounts, positions, executions with commission reports (inline, late, never), bars, quotes,
orders (place, cancel, order status, open and completed orders, the fills they produce), several
clients at once, and the ``faults`` of the state file.
"""

import asyncio
import json
import socket
import struct
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from ib_async import IB, ExecutionFilter, Future, LimitOrder, MarketOrder, Option, RequestError, Stock
from ib_async.decoder import Decoder
from ib_async.ib import StartupFetchNONE

from core.brokers.gateway_sim.messages import Encoder, WireContract, WireOrder
from core.brokers.gateway_sim.protocol import MAX_SERVER_VERSION, split_fields
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT

VERSIONS = [157, 160, 163, 164, 166, 170, 176, 177, 178]
AAPL = WireContract(con_id=265598, symbol="AAPL", primary_exchange="NASDAQ", local_symbol="AAPL", trading_class="NMS")
SPY_CALL = WireContract(
    con_id=712345678,
    symbol="SPY",
    sec_type="OPT",
    last_trade="20261218",
    strike=Decimal("600"),
    right="C",
    multiplier="100",
    local_symbol="SPY   261218C00600000",
    trading_class="SPY",
)


# --- the messages, decoded by ib_async ------------------------------------------------------------
class Recorder:
    """Stands in for ib_async's Wrapper: records every call the decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.ib = SimpleNamespace(TimezoneTWS=None)
        self.defaultTimezone = UTC

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, args))


class Strict:
    """The decoder's logger: a decoding failure (which ib_async only logs) fails the test."""

    def exception(self, message, *args):
        raise AssertionError(message % args if args else message)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def decode(version: int, *frames: bytes) -> list[tuple[str, tuple]]:
    recorder = Recorder()
    decoder = Decoder(recorder, version)
    decoder.logger = Strict()
    for message in frames:
        (length,) = struct.unpack(">I", message[:4])
        assert length == len(message) - 4
        decoder.interpret(split_fields(message[4:]))
    return recorder.calls


def order(**changes) -> WireOrder:
    values = {
        "order_id": 7,
        "client_id": 17,
        "perm_id": 1234567,
        "account": ACCOUNT,
        "contract": AAPL,
        "action": "BUY",
        "quantity": Decimal("10"),
        "order_type": "LMT",
        "limit_price": Decimal("150.5"),
        "status": "Submitted",
    }
    return WireOrder(**{**values, **changes})


@pytest.mark.parametrize("version", VERSIONS)
def test_every_message_decodes_at_every_server_version(version):
    e = Encoder(version)
    at = datetime(2026, 11, 20, 14, 32, 15, tzinfo=UTC)
    filled = order(status="Filled", filled=Decimal("10"), completed_time="20261120 14:32:15 UTC")
    calls = decode(
        version,
        e.next_valid_id(5),
        e.managed_accounts([ACCOUNT, "DU2"]),
        e.error(-1, 2104, "Market data farm connection is OK:usfarm"),
        e.position(ACCOUNT, SPY_CALL, Decimal("-2"), Decimal("512.4")),
        e.position_end(),
        e.account_summary(3, ACCOUNT, "NetLiquidation", "100000.00", "USD"),
        e.account_summary_end(3),
        e.account_value("CashBalance", "4310.34", "EUR", ACCOUNT),
        e.portfolio_value(
            AAPL,
            quantity=Decimal(100),
            market_price=Decimal("155.1"),
            market_value=Decimal("15510"),
            average_cost=Decimal("150.25"),
            unrealized_pnl=Decimal("485"),
            realized_pnl=Decimal(0),
            account=ACCOUNT,
        ),
        e.account_update_time(at),
        e.account_download_end(ACCOUNT),
        e.account_update_multi(4, ACCOUNT, "", "NetLiquidation", "100000.00", "USD"),
        e.account_update_multi_end(4),
        e.execution(
            6,
            AAPL,
            order_id=12,
            exec_id="0000e0d5.6553a1b2.01.01",
            time=at,
            account=ACCOUNT,
            exchange="ISLAND",
            side="SLD",
            shares=Decimal(100),
            price=Decimal("150.25"),
            perm_id=987654,
            client_id=17,
            cum_qty=Decimal(100),
            avg_price=Decimal("150.25"),
        ),
        e.execution_end(6),
        e.commission_report("0000e0d5.6553a1b2.01.01", Decimal("1.25"), "USD"),
        e.contract_details(8, SPY_CALL),
        e.contract_details_end(8),
        e.historical_data(
            9, "20261101 00:00:00", "20261120 00:00:00", [("20261119", 150, 156, 149.5, 155.1, 10, 152, 1)]
        ),
        e.market_data_type(10, 1),
        e.tick_price(10, 1, Decimal("155.05"), 100),
        e.tick_size(10, 0, 200),
        e.tick_string(10, 45, "1795726799"),
        e.tick_snapshot_end(10),
        e.open_order(order()),
        e.order_status(order()),
        e.open_order_end(),
        e.completed_order(filled),
        e.completed_orders_end(),
        e.current_time(at),
    )
    by_name = {}
    for name, args in calls:
        by_name.setdefault(name, []).append(args)
    assert by_name["nextValidId"] == [(5,)]
    assert by_name["managedAccounts"] == [(f"{ACCOUNT},DU2",)]
    assert by_name["error"][0][:3] == (-1, 2104, "Market data farm connection is OK:usfarm")
    account, contract, quantity, avg_cost = by_name["position"][0]
    assert (account, contract.secType, contract.strike, contract.right, contract.multiplier) == (
        ACCOUNT,
        "OPT",
        600.0,
        "C",
        "100",
    )
    assert (quantity, avg_cost) == (-2.0, 512.4)
    assert by_name["accountSummary"] == [(3, ACCOUNT, "NetLiquidation", "100000.00", "USD")]
    assert by_name["updateAccountValue"] == [("CashBalance", "4310.34", "EUR", ACCOUNT)]
    assert by_name["updatePortfolio"][0][1:] == (100.0, 155.1, 15510.0, 150.25, 485.0, 0.0, ACCOUNT)
    assert by_name["accountDownloadEnd"] == [(ACCOUNT,)]
    assert by_name["accountUpdateMulti"] == [(4, ACCOUNT, "", "NetLiquidation", "100000.00", "USD")]
    req_id, contract, execution = by_name["execDetails"][0]
    assert (req_id, contract.conId, execution.side, execution.shares, execution.price) == (
        6,
        265598,
        "SLD",
        100.0,
        150.25,
    )
    assert execution.time == at
    (report,) = by_name["commissionReport"][0]
    assert (report.execId, report.commission, report.currency) == ("0000e0d5.6553a1b2.01.01", 1.25, "USD")
    details = by_name["contractDetails"][0][1]
    assert (details.contract.conId, details.contract.symbol, details.contract.multiplier) == (712345678, "SPY", "100")
    assert details.contract.lastTradeDateOrContractMonth == "20261218"
    bar = by_name["historicalData"][0][1]
    assert (bar.date, bar.open, bar.close, bar.volume) == ("20261119", 150.0, 155.1, 10.0)
    assert by_name["priceSizeTick"] == [(10, 1, 155.05, 100.0)]
    assert by_name["tickString"] == [(10, 45, "1795726799")]
    order_id, contract, placed, state = by_name["openOrder"][0]
    assert (order_id, contract.symbol, placed.action, placed.totalQuantity, placed.lmtPrice) == (
        7,
        "AAPL",
        "BUY",
        10.0,
        150.5,
    )
    assert (placed.permId, placed.clientId, placed.account, state.status) == (1234567, 17, ACCOUNT, "Submitted")
    assert by_name["orderStatus"][0][:3] == (7, "Submitted", 0.0)
    contract, done, done_state = by_name["completedOrder"][0]
    assert (done.permId, done.filledQuantity, done_state.status, done_state.completedTime) == (
        1234567,
        10.0,
        "Filled",
        "20261120 14:32:15 UTC",
    )
    assert "completedOrdersEnd" in by_name and "openOrderEnd" in by_name and "positionEnd" in by_name


# --- ib_async against the running simulator ---------------------------------------------------------
def run(coroutine):
    return asyncio.run(coroutine)


async def connected(gateway, client_id=5, timeout=3, **options) -> IB:
    ib = IB()
    ib.RaiseRequestErrors = True
    await ib.connectAsync("127.0.0.1", gateway.port, clientId=client_id, timeout=timeout, **options)
    return ib


def add_future_and_euro_stock(gateway) -> None:
    with gateway.state.edit() as state:
        account = gateway.state.account(state, ACCOUNT)
        account["positions"] += [
            {
                "symbol": "ES",
                "sec_type": "FUT",
                "con_id": 495512563,
                "currency": "USD",
                "exchange": "CME",
                "multiplier": "50",
                "expiry": "2026-12-18",
                "quantity": "1",
                "avg_cost": "300000",
                "market_price": "6010",
            },
            {
                "symbol": "SAP",
                "sec_type": "STK",
                "con_id": 14204,
                "currency": "EUR",
                "exchange": "IBIS",
                "quantity": "-10",
                "avg_cost": "200",
                "market_price": "190",
            },
        ]
        account["cash_balances"] = {"USD": "20000.00", "EUR": "4310.34"}
        account["fx_rates"] = {"EUR": "1.16"}


def test_connect_positions_portfolio_and_account_values(gateway):
    add_future_and_euro_stock(gateway)

    async def job():
        ib = await connected(gateway)
        try:
            summary = await ib.accountSummaryAsync()
            return ib.managedAccounts(), ib.positions(), ib.portfolio(), ib.accountValues(), summary
        finally:
            ib.disconnect()

    accounts, positions, portfolio, values, summary = run(job())
    assert accounts == [ACCOUNT]
    by_symbol = {p.contract.symbol: p for p in positions}
    assert by_symbol["AAPL"].avgCost == 150.25  # per share
    assert (by_symbol["SPY"].position, by_symbol["SPY"].avgCost) == (-2.0, 512.4)  # price x 100
    es = by_symbol["ES"]
    assert (es.contract.secType, es.contract.multiplier, es.contract.lastTradeDateOrContractMonth) == (
        "FUT",
        "50",
        "20261218",
    )
    assert es.avgCost == 300000.0  # price x multiplier, as IBKR reports futures
    assert by_symbol["SAP"].position == -10.0
    items = {i.contract.symbol: i for i in portfolio}
    assert (items["ES"].marketPrice, items["ES"].marketValue, items["ES"].unrealizedPNL) == (6010.0, 300500.0, 500.0)
    assert (items["SAP"].marketValue, items["SAP"].unrealizedPNL) == (-1900.0, 100.0)
    value = {(v.tag, v.currency): v.value for v in values}
    assert value[("NetLiquidation", "USD")] == "100000.00"
    assert value[("CashBalance", "EUR")] == "4310.34"
    assert value[("ExchangeRate", "EUR")] == "1.16"
    assert value[("CashBalance", "BASE")] == "24999.9944"  # 20000 + 4310.34 x 1.16
    assert value[("UnrealizedPnL", "BASE")] == "1200.00"
    assert value[("UnrealizedPnL", "EUR")] == "100.00"
    tags = {(v.tag, v.currency): v.value for v in summary}
    assert tags[("NetLiquidation", "USD")] == "100000.00"
    assert tags[("DayTradesRemaining", "")] == "3"
    assert tags[("AccountType", "")] == "MARGIN"
    assert tags[("RealizedPnL", "BASE")] == "300.00"


def test_executions_with_inline_late_and_missing_commission_reports(gateway):
    with gateway.state.edit() as state:
        executions = gateway.state.account(state, ACCOUNT)["executions"]
        base = executions[0]
        executions += [
            {**base, "exec_id": "late.01", "commission": "2.50", "commission_delay": "0.6"},
            {**base, "exec_id": "never.01", "side": "SELL"},
        ]
        del executions[-1]["commission"]

    async def job():
        ib = await connected(gateway, fetchFields=StartupFetchNONE)
        try:
            fills = await ib.reqExecutionsAsync(ExecutionFilter(acctCode=ACCOUNT))
            first = {f.execution.execId: f.commissionReport.commission for f in fills if f.commissionReport.execId}
            await asyncio.sleep(1.0)
            later = {f.execution.execId: f.commissionReport.commission for f in ib.fills() if f.commissionReport.execId}
            return fills, first, later
        finally:
            ib.disconnect()

    fills, first, later = run(job())
    assert [f.execution.execId for f in fills] == ["0000e0d5.6553a1b2.01.01", "late.01", "never.01"]
    assert [f.execution.side for f in fills] == ["BOT", "BOT", "SLD"]
    assert first == {"0000e0d5.6553a1b2.01.01": 1.0}
    assert later == {"0000e0d5.6553a1b2.01.01": 1.0, "late.01": 2.5}


def test_execution_filter_by_time_account_and_side(gateway):
    with gateway.state.edit() as state:
        executions = gateway.state.account(state, ACCOUNT)["executions"]
        executions.append({**executions[0], "exec_id": "older", "time": "2026-11-01T10:00:00Z", "side": "SELL"})

    async def job(execution_filter):
        ib = await connected(gateway, fetchFields=StartupFetchNONE)
        try:
            return [f.execution.execId for f in await ib.reqExecutionsAsync(execution_filter)]
        finally:
            ib.disconnect()

    assert run(job(ExecutionFilter(time="20261110 00:00:00"))) == ["0000e0d5.6553a1b2.01.01"]
    assert run(job(ExecutionFilter(side="SELL"))) == ["older"]
    assert run(job(ExecutionFilter(acctCode="DU999"))) == []


def test_contract_details_bars_and_quotes(gateway):
    with gateway.state.edit() as state:
        state["bars"]["AAPL"]["5m"] = [
            {"time": f"2026-11-20T14:{m:02d}:00Z", "open": "1", "high": "2", "low": "1", "close": "2", "volume": "5"}
            for m in (30, 35, 40)
        ]

    async def job():
        ib = await connected(gateway, fetchFields=StartupFetchNONE)
        try:
            (aapl,) = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            (call,) = await ib.qualifyContractsAsync(Option("SPY", "20261218", 600, "C", "SMART"))
            daily = await ib.reqHistoricalDataAsync(aapl, "", "1 Y", "1 day", "TRADES", True, formatDate=2)
            intraday = await ib.reqHistoricalDataAsync(
                aapl, datetime(2026, 11, 20, 14, 40, tzinfo=UTC), "900 S", "5 mins", "TRADES", True, formatDate=2
            )
            (ticker,) = await ib.reqTickersAsync(aapl)
            with pytest.raises(RequestError) as unknown:
                await ib.reqContractDetailsAsync(Stock("NOPE", "SMART", "USD"))
            with pytest.raises(RequestError) as no_data:
                await ib.reqHistoricalDataAsync(
                    aapl, datetime(2020, 1, 1, tzinfo=UTC), "1 D", "1 day", "TRADES", True, timeout=0
                )
            return aapl, call, daily, intraday, ticker, unknown.value, no_data.value
        finally:
            ib.disconnect()

    aapl, call, daily, intraday, ticker, unknown, no_data = run(job())
    assert (aapl.conId, call.conId, call.multiplier) == (265598, 712345678, "100")
    assert [(b.date, b.close) for b in daily] == [(date(2026, 11, 19), 155.1)]
    assert [b.date for b in intraday] == [
        datetime(2026, 11, 20, 14, 30, tzinfo=UTC),
        datetime(2026, 11, 20, 14, 35, tzinfo=UTC),
    ]  # [end - 900 s, end)
    assert (ticker.bid, ticker.ask, ticker.last) == (155.05, 155.12, 155.1)
    assert ticker.lastTimestamp == datetime(2026, 11, 20, 20, 59, 59, tzinfo=UTC)
    assert unknown.code == 200
    assert no_data.code == 162 and "no data" in no_data.message


def test_orders_place_fill_cancel_open_and_completed(gateway):
    async def job():
        ib = await connected(gateway)
        other = await connected(gateway, client_id=6)
        try:
            aapl = Stock("AAPL", "SMART", "USD", conId=265598)
            market = ib.placeOrder(aapl, MarketOrder("BUY", 10))
            resting = ib.placeOrder(aapl, LimitOrder("BUY", 5, 100))
            for _ in range(100):
                if market.isDone() and resting.orderStatus.status == "Submitted":
                    break
                await asyncio.sleep(0.02)
            mine = await ib.reqOpenOrdersAsync()
            everyone = await other.reqAllOpenOrdersAsync()
            theirs = await other.reqOpenOrdersAsync()
            ib.cancelOrder(resting.order)
            for _ in range(100):
                if resting.isDone():
                    break
                await asyncio.sleep(0.02)
            completed = await ib.reqCompletedOrdersAsync(False)
            return market, resting, mine, everyone, theirs, completed
        finally:
            ib.disconnect()
            other.disconnect()

    market, resting, mine, everyone, theirs, completed = run(job())
    assert (market.orderStatus.status, market.orderStatus.filled, market.orderStatus.avgFillPrice) == (
        "Filled",
        10.0,
        155.12,
    )  # a market buy fills at the ask
    (fill,) = market.fills
    assert (fill.execution.side, fill.execution.shares, fill.commissionReport.commission) == ("BOT", 10.0, 1.0)
    assert [t.order.orderId for t in mine] == [resting.order.orderId]
    assert [t.order.permId for t in everyone] == [resting.order.permId] and theirs == []
    assert resting.orderStatus.status == "Cancelled"
    assert any(entry.errorCode == 202 for entry in resting.log) or resting.log[-1].status == "Cancelled"
    assert sorted(t.orderStatus.status for t in completed) == ["Cancelled", "Filled"]

    # The fill is in the state file: the next positions and executions requests see it.
    state = gateway.state.read()
    account = gateway.state.account(state, ACCOUNT)
    aapl_row = next(p for p in account["positions"] if p["symbol"] == "AAPL")
    assert aapl_row["quantity"] == "110"
    assert Decimal(aapl_row["avg_cost"]) == ((Decimal("150.25") * 100 + Decimal("155.12") * 10) / 110).quantize(
        Decimal("0.00000001")
    )
    assert account["executions"][-1]["exec_id"] == fill.execution.execId
    assert account["executions"][-1]["commission"] == "1.00"
    assert account["values"]["TotalCashValue"] == "23447.80"  # 25000 - 1551.20 - 1.00


def test_cancelling_an_unknown_order_is_error_10147(gateway):
    async def job():
        ib = await connected(gateway)
        errors = []
        ib.errorEvent += lambda req_id, code, message, contract: errors.append((req_id, code))
        try:
            ib.client.cancelOrder(999)
            await asyncio.sleep(0.2)
            return errors
        finally:
            ib.disconnect()

    assert (999, 10147) in run(job())


def test_a_future_order_fills_at_the_quote_and_is_priced_per_contract(gateway):
    add_future_and_euro_stock(gateway)
    with gateway.state.edit() as state:
        state["quotes"]["ES"] = {"bid": "6009.75", "ask": "6010.25", "last": "6010"}

    async def job():
        ib = await connected(gateway)
        try:
            es = Future("ES", "202612", "CME", conId=495512563)
            trade = ib.placeOrder(es, MarketOrder("SELL", 1))
            for _ in range(100):
                if trade.isDone():
                    break
                await asyncio.sleep(0.02)
            return trade
        finally:
            ib.disconnect()

    trade = run(job())
    assert (trade.orderStatus.status, trade.orderStatus.avgFillPrice) == ("Filled", 6009.75)
    row = next(p for p in gateway.state.account(gateway.state.read(), ACCOUNT)["positions"] if p["symbol"] == "ES")
    assert (row["quantity"], row["avg_cost"]) == ("0", "300000")  # closed; IBKR keeps the average cost


def test_several_clients_at_once_and_a_duplicate_client_id_is_refused_with_326(gateway):
    async def job():
        first, second = await asyncio.gather(connected(gateway, client_id=1), connected(gateway, client_id=2))
        duplicate = IB()
        errors = []
        duplicate.errorEvent += lambda req_id, code, message, contract: errors.append(code)
        started = time.monotonic()
        try:
            with pytest.raises((TimeoutError, ConnectionError)):
                await duplicate.connectAsync("127.0.0.1", gateway.port, clientId=1, timeout=1)
            return errors, time.monotonic() - started, len(gateway.sim.clients)
        finally:
            first.disconnect()
            second.disconnect()

    errors, _elapsed, connected_clients = run(job())
    assert errors == [326]
    assert connected_clients == 2


# --- faults ---------------------------------------------------------------------------------------
def test_fault_error_then_an_empty_answer(gateway):
    gateway.faults(positions={"errors": [{"code": 1100}], "answer": "empty"})

    async def job():
        ib = await connected(gateway, fetchFields=StartupFetchNONE)
        errors = []
        ib.errorEvent += lambda req_id, code, message, contract: errors.append((req_id, code, message))
        try:
            return await ib.reqPositionsAsync(), errors
        finally:
            ib.disconnect()

    positions, errors = run(job())
    assert positions == []
    assert errors == [(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")]


def test_fault_error_tied_to_the_request(gateway):
    gateway.faults(executions={"error": {"code": 321, "message": "Error validating request"}, "answer": "none"})
    gateway.faults(executions={"error": {"code": 10187, "message": "Failed to request executions"}})

    async def job():
        ib = await connected(gateway, fetchFields=StartupFetchNONE)
        try:
            with pytest.raises(RequestError) as failed:
                await ib.reqExecutionsAsync()
            return failed.value
        finally:
            ib.disconnect()

    failed = run(job())
    assert (failed.code, failed.message) == (10187, "Failed to request executions")


def test_fault_delay_no_answer_and_dropped_connection(gateway):
    async def ask_positions(timeout):
        # ib_async asks for positions at connect whatever fetchFields says: that one waits too.
        ib = await connected(gateway, fetchFields=StartupFetchNONE, timeout=0.6)
        started = time.monotonic()
        try:
            return await asyncio.wait_for(ib.reqPositionsAsync(), timeout), time.monotonic() - started
        finally:
            ib.disconnect()

    gateway.faults(positions={"delay": 0.4})
    positions, elapsed = run(ask_positions(3))
    assert len(positions) == 2 and elapsed >= 0.4

    gateway.faults(positions={"answer": "none"})
    with pytest.raises(TimeoutError):
        run(ask_positions(0.5))

    gateway.faults(positions={"answer": "partial", "drop": True})
    with pytest.raises(ConnectionError):
        run(ask_positions(3))


def test_fault_wildcard_silences_every_request_but_not_the_handshake(gateway):
    gateway.faults(**{"*": {"answer": "none"}})

    async def job():
        ib = IB()
        await ib.client.connectAsync("127.0.0.1", gateway.port, 9, 2)  # handshake only
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.5)
            return ib.client.getAccounts()
        finally:
            ib.disconnect()

    assert run(job()) == [ACCOUNT]


def test_fault_client_ids_in_use_and_a_gateway_that_is_down(gateway):
    gateway.faults(client_ids_in_use=[5])
    with pytest.raises((TimeoutError, ConnectionError)):
        run(connected(gateway, client_id=5, timeout=0.5))
    run(connected(gateway, client_id=6)).disconnect()

    gateway.faults()
    with gateway.state.edit() as state:
        state["connected"] = False
    with pytest.raises((TimeoutError, ConnectionError)):
        run(connected(gateway, client_id=7, timeout=0.5))


def test_fault_commission_reports_never_come(gateway):
    gateway.faults(commission_reports={"answer": "none"})

    async def job():
        ib = await connected(gateway, fetchFields=StartupFetchNONE)
        try:
            fills = await ib.reqExecutionsAsync()
            await asyncio.sleep(0.2)
            return [f.commissionReport.execId for f in fills]
        finally:
            ib.disconnect()

    assert run(job()) == [""]


def test_the_handshake_negotiates_the_highest_common_version_and_refuses_a_gap(gateway):
    def handshake(versions: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=2) as conn:
            conn.sendall(b"API\0" + struct.pack(">I", len(versions)) + versions)
            return conn.recv(64)

    answer = handshake(b"v100..200")
    assert split_fields(answer[4:])[0] == str(MAX_SERVER_VERSION)
    assert handshake(b"v179..200") == b""  # nothing in common: the gateway closes


def test_the_management_command_serves_until_stopped(broker_state, settings):
    process = subprocess.Popen(
        [sys.executable, "manage.py", "ibgateway_sim", "--port", "0", "--state", settings.BROKER_STATE_FILE],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        lines = []
        while not any("IB Gateway simulator on 127.0.0.1:" in x for x in lines) and len(lines) < 10:
            lines.append(process.stdout.readline())  # log lines may come first
        line = lines[-1]
        assert "IB Gateway simulator on 127.0.0.1:" in line, lines
        port = int(line.split("127.0.0.1:")[1].split(" ")[0])

        async def job():
            ib = IB()
            await ib.connectAsync("127.0.0.1", port, clientId=3, timeout=5, fetchFields=StartupFetchNONE)
            try:
                return ib.managedAccounts()
            finally:
                ib.disconnect()

        assert run(job()) == [ACCOUNT]
    finally:
        process.terminate()
        process.wait(10)
    assert json.loads(Path(settings.BROKER_STATE_FILE).read_text())["accounts"][0]["account_id"] == ACCOUNT
