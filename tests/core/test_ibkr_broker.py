"""IBKRBroker against a fake IB object that serves ib_async's own data classes.

The fake checks every call against the real ``ib_async.IB`` method signature, so a call the real
library would reject fails here too. Two tests talk to real sockets with the real ``IB`` class: a
refused connection, and a gateway that answers a duplicate client id with error 326.
"""

import asyncio
import inspect
import socket
import struct
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from eventkit import Event
from ib_async import (
    IB,
    AccountValue,
    BarData,
    CommissionReport,
    Contract,
    Execution,
    ExecutionFilter,
    Fill,
    Future,
    Option,
    PortfolioItem,
    Position,
    RequestError,
    Stock,
    Ticker,
)

from core.brokers.base import Broker, BrokerError, BrokerUnavailable
from core.brokers.ibkr import IBKRBroker

UNSET = sys.float_info.max
NAN = float("nan")
HOST, PORT, CLIENT_ID = "gw.example", 4002, 17


def aapl() -> Stock:
    return Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ")


def spy_call() -> Option:
    return Option("SPY", "20261218", 600.0, "C", "SMART", multiplier="100", currency="USD", conId=712345678)


class FakeIB:
    """Stands in for ib_async.IB: async methods return prepared data, or raise/hang when told to."""

    def __init__(
        self,
        *,
        accounts=("DU1",),
        summary=(),
        positions=(),
        portfolio=None,
        fills=(),
        bars=(),
        tickers=None,
        qualify=None,
        fail=None,
        connect_error=None,
        connect_codes=(),
        late_reports=None,
    ):
        self.errorEvent = Event("errorEvent")
        self.RaiseRequestErrors = False
        self.RequestTimeout = 0
        self.accounts = list(accounts)
        self.summary = list(summary)
        self.position_rows = list(positions)
        self.portfolio_items = dict(portfolio or {})
        self.known_fills = list(fills)
        self.bar_rows = list(bars)
        self.tickers = tickers
        self.qualify = qualify
        self.fail = dict(fail or {})
        self.delayed_available = False
        self.market_data_type = 1
        self.connect_error = connect_error
        self.connect_codes = list(connect_codes)
        self.late_reports = late_reports or {}
        self.loaded_portfolios: set[str] = set()
        self.calls: list[tuple[str, inspect.BoundArguments]] = []
        self.disconnects = 0
        self.settings_at_connect = None

    def _record(self, name, *args, **kwargs):
        bound = inspect.signature(getattr(IB, name)).bind(self, *args, **kwargs)  # as the real IB would
        bound.apply_defaults()
        self.calls.append((name, bound))
        return bound.arguments

    def called(self, name):
        return [bound.arguments for called, bound in self.calls if called == name]

    async def _maybe_fail(self, name):
        failure = self.fail.get(name)
        if failure == "hang":
            await asyncio.sleep(30)
        elif failure is not None:
            raise failure

    async def connectAsync(self, *args, **kwargs):
        arguments = self._record("connectAsync", *args, **kwargs)
        self.settings_at_connect = (self.RaiseRequestErrors, self.RequestTimeout)
        for code in self.connect_codes:
            self.errorEvent.emit(-1, code, f"message {code}", None)
        if self.connect_error is not None:
            raise self.connect_error
        if arguments["account"]:
            self.loaded_portfolios.add(arguments["account"])
        elif len(self.accounts) == 1:
            self.loaded_portfolios.add(self.accounts[0])
        return self

    def disconnect(self):
        self._record("disconnect")
        self.disconnects += 1

    def managedAccounts(self):
        self._record("managedAccounts")
        return list(self.accounts)

    def portfolio(self, account=""):
        self._record("portfolio", account)
        return list(self.portfolio_items.get(account, [])) if account in self.loaded_portfolios else []

    async def accountSummaryAsync(self, account=""):
        self._record("accountSummaryAsync", account)
        await self._maybe_fail("accountSummaryAsync")
        return [v for v in self.summary if not account or v.account == account]

    async def reqPositionsAsync(self):
        self._record("reqPositionsAsync")
        await self._maybe_fail("reqPositionsAsync")
        return list(self.position_rows)

    async def reqAccountUpdatesAsync(self, account):
        self._record("reqAccountUpdatesAsync", account)
        await self._maybe_fail("reqAccountUpdatesAsync")
        self.loaded_portfolios.add(account)

    def fills(self):
        self._record("fills")
        return list(self.known_fills)

    async def reqExecutionsAsync(self, *args, **kwargs):
        self._record("reqExecutionsAsync", *args, **kwargs)
        await self._maybe_fail("reqExecutionsAsync")
        loop = asyncio.get_running_loop()
        for exec_id, (delay, report) in self.late_reports.items():
            known = next(f for f in self.known_fills if f.execution.execId == exec_id)
            loop.call_later(delay, lambda f=known, r=report: f.commissionReport.__dict__.update(r.__dict__))
        # As ib_async does for executions it already holds (connect fetches them all): a fresh Fill with an
        # empty CommissionReport; the report itself lives on the Fill in ib.fills().
        return [Fill(f.contract, f.execution, CommissionReport(), f.time) for f in self.known_fills]

    async def qualifyContractsAsync(self, *contracts, **kwargs):
        self._record("qualifyContractsAsync", *contracts, **kwargs)
        await self._maybe_fail("qualifyContractsAsync")
        if self.qualify is not None:
            return list(self.qualify)
        for contract in contracts:
            contract.conId = 265598
            contract.primaryExchange = "NASDAQ"
        return list(contracts)

    async def reqHistoricalDataAsync(self, *args, **kwargs):
        self._record("reqHistoricalDataAsync", *args, **kwargs)
        await self._maybe_fail("reqHistoricalDataAsync")
        return list(self.bar_rows)

    async def reqTickersAsync(self, *contracts, **kwargs):
        self._record("reqTickersAsync", *contracts, **kwargs)
        await self._maybe_fail("reqTickersAsync")
        return [self.tickers] if self.tickers is not None else []

    def reqMarketDataType(self, market_data_type):
        self.market_data_type = market_data_type
        if market_data_type == 3:
            self.fail.pop("reqTickersAsync", None) if self.delayed_available else None


def make_broker(fake: FakeIB, **kwargs) -> IBKRBroker:
    options = {"host": HOST, "port": PORT, "client_id": CLIENT_ID, "timeout": 2.0, **kwargs}
    broker = IBKRBroker(**options, ib_factory=lambda: fake)
    broker.commission_grace_seconds = 0
    return broker


def av(account, tag, value, currency="USD"):
    return AccountValue(account, tag, value, currency, "")


def fill(
    exec_id,
    *,
    account="DU1",
    side="BOT",
    shares=100.0,
    price=150.25,
    contract=None,
    report=None,
    time=datetime(2026, 11, 20, 14, 32, 15, tzinfo=UTC),
    order_id=12,
    perm_id=987654,
):
    execution = Execution(
        execId=exec_id,
        time=time,
        acctNumber=account,
        exchange="ISLAND",
        side=side,
        shares=shares,
        price=price,
        permId=perm_id,
        clientId=CLIENT_ID,
        orderId=order_id,
        cumQty=shares,
        avgPrice=price,
    )
    return Fill(contract or aapl(), execution, report or CommissionReport(), time)


# --- the session shape ----------------------------------------------------------------------------
def test_is_a_broker_and_connects_readonly_with_the_configured_account():
    fake = FakeIB(
        accounts=["DU1", "DU2"],
        positions=[Position("DU1", aapl(), 100.0, 150.25)],
        portfolio={"DU1": [PortfolioItem(aapl(), 100.0, 155.1, 15510.0, 150.25, 485.0, 0.0, "DU1")]},
    )
    broker = make_broker(fake, account="DU1", readonly=True, timeout=7.5)
    assert isinstance(broker, Broker)
    assert broker.name == "ibkr"

    broker.positions("DU1")

    (connect,) = fake.called("connectAsync")
    assert (connect["host"], connect["port"], connect["clientId"]) == (HOST, PORT, CLIENT_ID)
    assert connect["readonly"] is True
    assert connect["account"] == "DU1"
    assert connect["timeout"] == 7.5
    assert fake.settings_at_connect == (True, 7.5)  # RaiseRequestErrors, RequestTimeout set before connect
    assert fake.disconnects == 1


def test_no_configured_account_connects_with_an_empty_account_and_readonly_false_is_passed_on():
    fake = FakeIB(positions=[])
    make_broker(fake, readonly=False).positions("DU1")
    (connect,) = fake.called("connectAsync")
    assert connect["account"] == ""
    assert connect["readonly"] is False


def test_get_broker_builds_the_ibkr_adapter(settings):
    from core.brokers import get_broker

    settings.IBKR_HOST, settings.IBKR_PORT, settings.IBKR_CLIENT_ID = "127.0.0.1", 4002, 17
    settings.IBKR_ACCOUNT, settings.IBKR_TIMEOUT, settings.IBKR_READONLY = "", 15.0, True
    broker = get_broker("ibkr")
    assert isinstance(broker, IBKRBroker)
    assert broker.account is None
    assert broker.ib_factory is IB


def test_connection_refused_is_unavailable_and_names_host_port_and_client_id():
    fake = FakeIB(connect_error=ConnectionRefusedError(111, "Connect call failed"))
    with pytest.raises(BrokerUnavailable, match=r"gw\.example:4002 \(client id 17\).*connection refused"):
        make_broker(fake).positions("DU1")
    assert fake.disconnects == 1
    assert not fake.called("reqPositionsAsync")


def test_client_id_in_use_is_unavailable_and_says_so():
    # The gateway answers 326 and closes the socket; ib_async then times out waiting for the API.
    fake = FakeIB(connect_codes=[326], connect_error=TimeoutError())
    with pytest.raises(BrokerUnavailable, match=r"client id 17 is already in use") as caught:
        make_broker(fake).accounts()
    assert "gw.example:4002" in str(caught.value)
    assert fake.disconnects == 1


def test_connect_timeout_is_unavailable():
    fake = FakeIB(connect_error=TimeoutError())
    with pytest.raises(BrokerUnavailable, match=r"gw\.example:4002 .*no API handshake within 2s"):
        make_broker(fake).accounts()


def test_connection_lost_while_connecting_is_unavailable_and_mentions_1100():
    fake = FakeIB(connect_codes=[1100], connect_error=ConnectionError("Socket connection broken while connecting"))
    with pytest.raises(BrokerUnavailable, match=r"1100"):
        make_broker(fake).accounts()


def test_request_error_is_a_broker_error_not_an_empty_result():
    fake = FakeIB(fail={"reqPositionsAsync": RequestError(-1, 322, "Error processing request")})
    with pytest.raises(BrokerError, match=r"positions failed \(error 322"):
        make_broker(fake).positions("DU1")
    assert fake.disconnects == 1


def test_request_rejected_with_an_error_ib_async_calls_a_warning_is_an_error_after_the_deadline():
    # ib_async logs 321 as a warning and never ends the request; the deadline ends it, and the reported
    # error makes it a BrokerError rather than "unavailable".
    fake = FakeIB(fail={"reqExecutionsAsync": "hang"})
    original = fake.reqExecutionsAsync

    async def rejected(*args, **kwargs):
        fake.errorEvent.emit(-1, 2104, "Market data farm connection is OK:usfarm", None)
        fake.errorEvent.emit(4, 321, "Error validating request:-'bN' : cause - invalid account code", None)
        return await original(*args, **kwargs)

    fake.reqExecutionsAsync = rejected
    with pytest.raises(
        BrokerError, match=r"no answer to executions within 0.05s \(gave up after .*\); the gateway reported error 321"
    ) as caught:
        make_broker(fake, timeout=0.05).executions("DU1")
    assert "2104" not in str(caught.value)


@pytest.mark.parametrize("code", [504, 1100])
def test_request_error_for_lost_connectivity_is_unavailable(code):
    fake = FakeIB(fail={"reqExecutionsAsync": RequestError(3, code, "Not connected")})
    with pytest.raises(BrokerUnavailable, match=f"error {code}"):
        make_broker(fake).executions("DU1")
    assert fake.disconnects == 1


def test_request_timeout_is_unavailable_and_disconnects():
    fake = FakeIB(fail={"reqPositionsAsync": "hang"})
    with pytest.raises(BrokerUnavailable, match=r"no answer to positions within 0.05s"):
        make_broker(fake, timeout=0.05).positions("DU1")
    assert fake.disconnects == 1


def test_connection_dropped_mid_request_is_unavailable():
    fake = FakeIB(fail={"accountSummaryAsync": ConnectionError("Socket disconnect")})
    with pytest.raises(BrokerUnavailable, match="connection lost during account summary"):
        make_broker(fake).accounts()
    assert fake.disconnects == 1


def test_called_inside_a_running_event_loop_is_refused_without_connecting():
    created = []

    def factory():
        created.append(1)
        return FakeIB()

    broker = IBKRBroker(host=HOST, port=PORT, client_id=CLIENT_ID, ib_factory=factory)

    async def inside_a_loop():
        return broker.positions("DU1")

    with pytest.raises(BrokerError, match="running event loop"):
        asyncio.run(inside_a_loop())
    assert created == []


def test_unknown_account_is_an_error_not_an_empty_list():
    fake = FakeIB(accounts=["DU1"], positions=[Position("DU1", aapl(), 100.0, 150.25)])
    with pytest.raises(BrokerError, match="account DU9 is not managed"):
        make_broker(fake).positions("DU9")
    with pytest.raises(BrokerError, match="account DU9 is not managed"):
        make_broker(fake).executions("DU9")


# --- accounts -------------------------------------------------------------------------------------
SUMMARY = [
    av("DU1", "AccountType", "INDIVIDUAL", ""),
    av("DU1", "NetLiquidation", "100000.00"),
    av("DU1", "TotalCashValue", "25000.00"),
    av("DU1", "SettledCash", "1.7976931348623157E308"),
    av("DU1", "BuyingPower", "NaN"),
    av("DU1", "ExcessLiquidity", ""),
    av("DU1", "MaintMarginReq", "20000.00"),
    av("DU1", "UnrealizedPnL", "1200.00", "BASE"),  # $LEDGER:ALL: the whole account in base currency
    av("DU1", "UnrealizedPnL", "1000.00", "USD"),  # only the USD positions
    av("DU1", "UnrealizedPnL", "180.00", "EUR"),  # only the EUR positions, in EUR
    av("DU1", "RealizedPnL", "300.00", "BASE"),
    av("DU1", "DayTradesRemaining", "-1", ""),
    av("DU2", "AccountType", "CASH", ""),
    av("DU2", "NetLiquidation", "5000.50", "EUR"),
    av("DU2", "TotalCashValue", "inf", "EUR"),
    av("DU2", "BuyingPower", "lots", "EUR"),
    av("DU2", "DayTradesRemaining", "3", ""),
]


def test_accounts_values_sentinels_base_rows_and_types():
    fake = FakeIB(accounts=["DU1", "DU2"], summary=SUMMARY)
    fetched = make_broker(fake).accounts()

    du1, du2 = fetched.items
    assert (du1.account_id, du1.account_type, du1.base_currency) == ("DU1", None, "USD")  # INDIVIDUAL: unknown
    assert du1.values.net_liquidation == Decimal("100000.00")
    assert du1.values.total_cash == Decimal("25000.00")
    assert du1.values.settled_cash is None  # 1.797e308
    assert du1.values.buying_power is None  # NaN
    assert du1.values.excess_liquidity is None  # ""
    assert du1.values.maint_margin_req == Decimal("20000.00")
    assert du1.values.unrealized_pnl == Decimal("1200.00")  # the BASE row, not the USD slice
    assert du1.values.realized_pnl == Decimal("300.00")  # only a BASE row
    assert du1.values.day_trades_remaining == -1  # unlimited, as IBKR reports it
    assert du1.values.currency == "USD"

    assert (du2.account_id, du2.account_type, du2.base_currency) == ("DU2", "CASH", "EUR")
    assert du2.values.net_liquidation == Decimal("5000.50")
    assert du2.values.total_cash is None  # inf
    assert du2.values.buying_power is None
    assert du2.values.day_trades_remaining == 3
    assert fetched.warnings == ("account DU2: BuyingPower: not a number: 'lots'; value ignored",)
    assert all(isinstance(v, Decimal) for v in (du1.values.net_liquidation, du2.values.net_liquidation))
    assert fake.disconnects == 1


def test_accounts_with_a_configured_account_lists_only_it():
    fake = FakeIB(accounts=["DU1", "DU2"], summary=SUMMARY)
    fetched = make_broker(fake, account="DU2").accounts()
    assert [a.account_id for a in fetched.items] == ["DU2"]


def test_accounts_with_a_configured_account_the_login_does_not_manage_is_an_error():
    fake = FakeIB(accounts=["DU1"], summary=SUMMARY)
    with pytest.raises(BrokerError, match="configured account DU7 is not managed"):
        make_broker(fake, account="DU7").accounts()


def test_account_without_summary_rows_is_listed_with_a_warning():
    fake = FakeIB(accounts=["DU1", "DU3"], summary=SUMMARY)
    fetched = make_broker(fake).accounts()
    du3 = fetched.items[1]
    assert (du3.account_id, du3.account_type, du3.base_currency) == ("DU3", None, "USD")
    assert du3.values.net_liquidation is None
    assert "account DU3: the account summary has no values for it" in fetched.warnings


def test_base_currency_falls_back_to_the_ledger_exchange_rate_then_usd():
    fake = FakeIB(
        accounts=["DU1", "DU2"],
        summary=[
            av("DU1", "ExchangeRate", "1.00", "CHF"),
            av("DU1", "ExchangeRate", "0.91", "USD"),
            av("DU1", "UnrealizedPnL", "50", "CHF"),
            av("DU2", "RealizedPnL", "7", "BASE"),
        ],
    )
    du1, du2 = make_broker(fake).accounts().items
    assert du1.base_currency == "CHF"
    assert du1.values.unrealized_pnl == Decimal("50")
    assert du2.base_currency == "USD"
    assert du2.values.realized_pnl == Decimal("7")


def test_accounts_summary_failure_is_an_error():
    fake = FakeIB(fail={"accountSummaryAsync": RequestError(4, 322, "Maximum number of account summary requests")})
    with pytest.raises(BrokerError, match="322"):
        make_broker(fake).accounts()


# --- positions ------------------------------------------------------------------------------------
def test_positions_normalise_avg_cost_per_unit_and_filter_the_account():
    future = Future("ES", "202612", "CME", multiplier="50", currency="USD", conId=555)
    put = Option("SPY", "20261218", 550.0, "PUT", "SMART", multiplier="100", currency="USD", conId=712345679)
    fake = FakeIB(
        accounts=["DU1", "DU2"],
        positions=[
            Position("DU1", aapl(), 100.0, 150.25),
            Position("DU1", spy_call(), -2.0, 512.40),
            Position("DU1", future, 1.0, 300012.5),
            Position("DU1", put, 3.0, 101.0),
            Position("DU2", aapl(), 7.0, 99.0),
        ],
        portfolio={
            "DU1": [
                PortfolioItem(aapl(), 100.0, 155.1, 15510.0, 150.25, 485.0, 0.0, "DU1"),
                PortfolioItem(spy_call(), -2.0, NAN, 0.0, 512.4, 0.0, 0.0, "DU1"),
                PortfolioItem(future, 1.0, UNSET, 0.0, 300012.5, 0.0, 0.0, "DU1"),
                PortfolioItem(put, 3.0, -1.0, 0.0, 101.0, 0.0, 0.0, "DU1"),
            ]
        },
    )
    fetched = make_broker(fake, account="DU1").positions("DU1")
    assert fetched.warnings == ()
    stock, call, fut, put_position = fetched.items
    assert {p.account_id for p in fetched.items} == {"DU1"}

    assert stock.instrument.symbol == "AAPL"
    assert stock.instrument.sec_type == "STK"
    assert stock.instrument.con_id == 265598
    assert stock.instrument.exchange == "NASDAQ"  # primaryExchange first
    assert stock.instrument.multiplier == Decimal(1)  # empty multiplier
    assert stock.quantity == Decimal("100")
    assert stock.average_price == Decimal("150.25")  # per share: untouched
    assert stock.market_price == Decimal("155.1")

    assert call.quantity == Decimal("-2")
    assert call.average_price == Decimal("5.124")  # 512.40 / 100
    assert call.instrument.multiplier == Decimal(100)
    assert call.instrument.expiry == date(2026, 12, 18)
    assert call.instrument.strike == Decimal("600")
    assert call.instrument.right == "C"
    assert call.instrument.exchange == "SMART"
    assert call.market_price is None  # NaN

    assert fut.average_price == Decimal("6000.25")  # 300012.5 / 50
    assert fut.instrument.expiry == date(2026, 12, 31)  # contract month: last day of the month
    assert fut.market_price is None  # 1.797e308

    assert put_position.instrument.right == "P"  # "PUT" normalised
    assert put_position.average_price == Decimal("1.01")
    assert put_position.market_price is None  # negative
    assert not fake.called("reqAccountUpdatesAsync")  # the portfolio came with the connection


def test_positions_quantities_have_no_binary_noise():
    fake = FakeIB(positions=[Position("DU1", aapl(), 0.1 + 0.2, 150.123456789123)])
    (position,) = make_broker(fake).positions("DU1").items
    assert position.quantity == Decimal("0.3")
    assert position.average_price == Decimal("150.12345679")


def test_positions_of_a_multi_account_login_request_account_updates_for_prices():
    fake = FakeIB(
        accounts=["DU1", "DU2"],
        positions=[Position("DU1", aapl(), 5.0, 100.0), Position("DU2", aapl(), 7.0, 99.0)],
        portfolio={"DU2": [PortfolioItem(aapl(), 7.0, 101.5, 710.5, 99.0, 17.5, 0.0, "DU2")]},
    )
    (position,) = make_broker(fake).positions("DU2").items
    assert position.account_id == "DU2"
    assert position.quantity == Decimal(7)
    assert position.market_price == Decimal("101.5")
    assert [c["account"] for c in fake.called("reqAccountUpdatesAsync")] == ["DU2"]


def test_positions_keep_prices_optional_when_account_updates_time_out():
    fake = FakeIB(
        accounts=["DU1", "DU2"], positions=[Position("DU2", aapl(), 7.0, 99.0)], fail={"reqAccountUpdatesAsync": "hang"}
    )
    fetched = make_broker(fake, timeout=0.05).positions("DU2")
    (position,) = fetched.items
    assert position.market_price is None
    assert fetched.warnings and "market prices unavailable" in fetched.warnings[0]


def test_malformed_position_is_skipped_with_a_warning_and_a_closed_one_is_kept():
    nameless = Contract(secType="STK", conId=42, currency="USD")
    combo = Contract(symbol="SPY", secType="BAG", conId=28812380, currency="USD")
    no_strike = Option("QQQ", "20261218", 0.0, "C", "SMART", multiplier="100", conId=43)
    fake = FakeIB(
        positions=[
            Position("DU1", nameless, 10.0, 1.0),
            Position("DU1", combo, 1.0, 1.0),
            Position("DU1", no_strike, 1.0, 1.0),
            Position("DU1", aapl(), 0.0, 0.0),  # closed today: IBKR still lists it, with quantity 0
        ]
    )
    fetched = make_broker(fake).positions("DU1")
    (closed,) = fetched.items
    assert closed.quantity == 0
    assert fetched.warnings == (
        "account DU1 position STK ? (conId 42): missing symbol; row skipped",
        "account DU1 position BAG SPY (conId 28812380): security type 'BAG' is not one the ledger models; row skipped",
        "account DU1 position OPT QQQ (conId 43): strike: must be positive, got 0.0; row skipped",
    )


# --- executions -----------------------------------------------------------------------------------
def test_executions_sides_commissions_and_account_filter():
    ny = ZoneInfo("America/New_York")
    fake = FakeIB(
        accounts=["DU1", "DU2"],
        fills=[
            fill("e1", side="BOT", report=CommissionReport(execId="e1", commission=1.0, currency="USD")),
            fill(
                "e2",
                side="SLD",
                shares=2.0,
                price=4.8,
                contract=spy_call(),
                report=CommissionReport(),
                time=datetime(2026, 11, 20, 10, 0, tzinfo=ny),
            ),
            fill("e3", side="SLD", report=CommissionReport(execId="e3", commission=UNSET, currency="USD")),
            fill("e4", account="DU2"),
        ],
    )
    fetched = make_broker(fake).executions("DU1")
    by_id = {e.exec_id: e for e in fetched.items}
    assert set(by_id) == {"e1", "e2", "e3"}
    assert fetched.warnings == ()

    e1, e2, e3 = by_id["e1"], by_id["e2"], by_id["e3"]
    assert (e1.side, e2.side, e3.side) == ("BUY", "SELL", "SELL")
    assert e1.quantity == Decimal("100")
    assert e1.price == Decimal("150.25")
    assert e1.commission == Decimal("1.0")  # the report arrived
    assert e1.commission_currency == "USD"
    assert e2.commission is None  # no report yet: not zero
    assert e3.commission is None  # max-double sentinel
    assert e1.executed_at == datetime(2026, 11, 20, 14, 32, 15, tzinfo=UTC)
    assert e2.executed_at == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    assert e2.executed_at.tzinfo is UTC
    assert e2.instrument.sec_type == "OPT"
    assert e2.price == Decimal("4.8")  # per-unit, as IBKR reports fills
    assert (e1.order_id, e1.perm_id, e1.exchange, e1.account_id) == (12, 987654, "ISLAND", "DU1")
    assert e1.raw["execId"] == "e1"
    assert e1.raw["commission"] == "1.0"
    assert all(v is None or isinstance(v, str | int) for v in e1.raw.values())  # no contract objects

    (request,) = fake.called("reqExecutionsAsync")
    assert request["execFilter"] == ExecutionFilter(acctCode="DU1", time="")


def test_executions_since_filters_exactly_and_widens_the_gateway_filter():
    since = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    fake = FakeIB(
        fills=[
            fill("old", time=since - timedelta(seconds=1)),
            fill("new", time=since + timedelta(hours=1)),
        ]
    )
    fetched = make_broker(fake).executions("DU1", since=since)
    assert [e.exec_id for e in fetched.items] == ["new"]
    (request,) = fake.called("reqExecutionsAsync")
    # Without a zone the gateway reads the time in its own zone: ask from a day earlier, cut here.
    assert request["execFilter"].time == "20261119 14:00:00"
    assert request["execFilter"].acctCode == "DU1"


def test_executions_manual_orders_have_no_order_id():
    fake = FakeIB(fills=[fill("m1", order_id=0)])
    (execution,) = make_broker(fake).executions("DU1").items
    assert execution.order_id is None


def test_commission_report_arriving_just_after_the_executions_is_picked_up():
    fake = FakeIB(
        fills=[fill("e1")],
        late_reports={"e1": (0.05, CommissionReport(execId="e1", commission=0.35, currency="USD"))},
    )
    broker = make_broker(fake)
    broker.commission_grace_seconds = 1.0
    (execution,) = broker.executions("DU1").items
    assert execution.commission == Decimal("0.35")


def test_malformed_execution_is_skipped_with_a_warning():
    fake = FakeIB(fills=[fill("x1", side="???"), fill("x2", shares=0.0), fill("ok")])
    fetched = make_broker(fake).executions("DU1")
    assert [e.exec_id for e in fetched.items] == ["ok"]
    assert len(fetched.warnings) == 2
    assert fetched.warnings[0].startswith("account DU1 execution x1 STK AAPL (conId 265598): side")


def test_executions_request_error_is_raised_not_empty():
    fake = FakeIB(fail={"reqExecutionsAsync": RequestError(3, 322, "Error processing request")})
    with pytest.raises(BrokerError):
        make_broker(fake).executions("DU1")


# --- cash flows -----------------------------------------------------------------------------------
def test_cash_flows_are_not_available_from_the_tws_api():
    def factory():
        raise AssertionError("cash_flows must not connect")

    fetched = IBKRBroker(host=HOST, port=PORT, client_id=CLIENT_ID, ib_factory=factory).cash_flows("DU1")
    assert fetched.items == ()
    assert "Flex" in fetched.warnings[0]


# --- bars -----------------------------------------------------------------------------------------
def test_daily_bars_are_decimal_and_start_at_midnight_utc():
    fake = FakeIB(
        bars=[
            BarData(
                date=date(2026, 11, 19),
                open=150.0,
                high=156.0,
                low=149.5,
                close=155.1,
                volume=48211000.0,
                average=153.0,
                barCount=1000,
            ),
            BarData(date=date(2026, 11, 20), open=155.0, high=157.0, low=154.0, close=156.0, volume=-1.0),
        ]
    )
    fetched = make_broker(fake).bars("aapl", "1d")
    first, second = fetched.items
    assert first.symbol == "AAPL"
    assert first.start == datetime(2026, 11, 19, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("150"),
        Decimal("156"),
        Decimal("149.5"),
        Decimal("155.1"),
    )
    assert first.volume == Decimal("48211000")
    assert second.volume == Decimal(0)  # IBKR's -1: no volume

    (qualify,) = fake.called("qualifyContractsAsync")
    (contract,) = qualify["contracts"]
    assert (contract.symbol, contract.secType, contract.exchange, contract.currency) == ("AAPL", "STK", "SMART", "USD")
    (request,) = fake.called("reqHistoricalDataAsync")
    assert request["barSizeSetting"] == "1 day"
    assert request["durationStr"] == "1 Y"
    assert request["whatToShow"] == "TRADES"
    assert request["useRTH"] is True
    assert request["formatDate"] == 2
    assert request["endDateTime"] == ""
    assert request["timeout"] == 0  # ib_async's own timeout would return an empty list


def test_intraday_bars_between_start_and_end():
    start = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    end = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    fake = FakeIB(
        bars=[
            BarData(date=start - timedelta(minutes=5), open=1, high=1, low=1, close=1, volume=1),
            BarData(date=start, open=150.0, high=150.5, low=149.9, close=150.2, volume=1200.0),
            BarData(date=start + timedelta(minutes=5), open=150.2, high=150.9, low=150.1, close=150.8, volume=800.0),
            BarData(date=end, open=1, high=1, low=1, close=1, volume=1),
        ]
    )
    fetched = make_broker(fake).bars("AAPL", "5m", start=start, end=end)
    assert [b.start for b in fetched.items] == [start, start + timedelta(minutes=5)]
    assert all(b.start.tzinfo is UTC for b in fetched.items)
    (request,) = fake.called("reqHistoricalDataAsync")
    assert request["barSizeSetting"] == "5 mins"
    assert request["durationStr"] == "3600 S"
    assert request["endDateTime"] == end


@pytest.mark.parametrize(("bar_size", "setting"), [("1m", "1 min"), ("1h", "1 hour")])
def test_bar_size_map(bar_size, setting):
    fake = FakeIB()
    make_broker(fake).bars(
        "AAPL", bar_size, start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 3, 1, tzinfo=UTC)
    )
    (request,) = fake.called("reqHistoricalDataAsync")
    assert request["barSizeSetting"] == setting
    assert request["durationStr"] == "59 D"


def test_unknown_bar_size_is_an_error():
    with pytest.raises(BrokerError, match="bar size"):
        make_broker(FakeIB()).bars("AAPL", "2m")


def test_pacing_violation_is_an_error():
    fake = FakeIB(
        fail={
            "reqHistoricalDataAsync": RequestError(
                5, 162, "Historical Market Data Service error message:Historical data request pacing violation"
            )
        }
    )
    with pytest.raises(BrokerError, match=r"162.*pacing violation"):
        make_broker(fake).bars("AAPL", "1m")
    assert fake.disconnects == 1


def test_no_data_for_the_range_is_empty_with_a_warning():
    fake = FakeIB(
        fail={
            "reqHistoricalDataAsync": RequestError(
                5, 162, "Historical Market Data Service error message:HMDS query returned no data: AAPL@SMART Trades"
            )
        }
    )
    fetched = make_broker(fake).bars("AAPL", "1d")
    assert fetched.items == ()
    assert "no data" in fetched.warnings[0]


def test_unknown_symbol_is_an_error():
    fake = FakeIB(fail={"qualifyContractsAsync": RequestError(4, 200, "No security definition has been found")})
    with pytest.raises(BrokerError, match="error 200"):
        make_broker(fake).bars("NOPE", "1d")
    fake = FakeIB(qualify=[None])  # what qualifyContractsAsync returns without raising
    with pytest.raises(BrokerError, match="NOPE is unknown or ambiguous"):
        make_broker(fake).quote("NOPE")


# --- quotes ---------------------------------------------------------------------------------------
def ticker(**fields) -> Ticker:
    made = Ticker(contract=aapl())
    for name, value in fields.items():  # Ticker.__post_init__ resets prices given to the constructor
        setattr(made, name, value)
    return made


def test_quote_with_nan_fields():
    at = datetime(2026, 11, 20, 20, 59, 59, tzinfo=UTC)
    fake = FakeIB(tickers=ticker(time=at, bid=155.05, ask=155.12, last=NAN))
    quote = make_broker(fake).quote("AAPL")
    assert quote.symbol == "AAPL"
    assert (quote.bid, quote.ask, quote.last) == (Decimal("155.05"), Decimal("155.12"), None)
    assert quote.at == at
    assert fake.called("reqTickersAsync")[0]["contracts"][0].symbol == "AAPL"


def test_quote_without_any_price_is_none():
    fake = FakeIB(tickers=ticker(bid=-1.0, ask=-1.0))
    assert make_broker(fake).quote("AAPL") is None
    assert make_broker(FakeIB(tickers=None)).quote("AAPL") is None


def test_quote_without_market_data_subscription_is_an_error():
    fake = FakeIB(fail={"reqTickersAsync": RequestError(6, 354, "Requested market data is not subscribed")})
    with pytest.raises(BrokerError, match="no market data subscription"):
        make_broker(fake).quote("AAPL")
    assert fake.market_data_type == 3  # delayed data was asked for before giving up


def test_quote_without_subscription_falls_back_to_delayed_data_and_says_so():
    fake = FakeIB(fail={"reqTickersAsync": RequestError(6, 354, "Requested market data is not subscribed")})
    fake.delayed_available = True
    fake.tickers = SimpleNamespace(
        bid=155.05, ask=155.12, last=155.1, time=None, bidSize=300.0, askSize=float("nan"), lastSize=-1, volume=1e6
    )

    quote = make_broker(fake).quote("AAPL")

    assert quote.delayed is True
    assert (quote.bid, quote.ask, quote.last) == (Decimal("155.05"), Decimal("155.12"), Decimal("155.1"))
    # NaN and -1 are IBKR's "no value": never stored as a size.
    assert (quote.bid_size, quote.ask_size, quote.last_size, quote.volume) == (
        Decimal("300.0"),
        None,
        None,
        Decimal("1000000.0"),
    )


# --- the real ib_async.IB over real sockets ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_real_ib_connection_refused():
    port = free_port()  # nothing listens there any more
    broker = IBKRBroker(host="127.0.0.1", port=port, client_id=5, timeout=2.0)
    with pytest.raises(BrokerUnavailable, match=rf"127\.0\.0\.1:{port} \(client id 5\).*connection refused"):
        broker.positions("DU1")


def frame(*fields) -> bytes:
    payload = b"".join(str(f).encode() + b"\0" for f in fields)
    return struct.pack(">I", len(payload)) + payload


def read_frame(conn: socket.socket) -> list[str] | None:
    head = conn.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    payload = conn.recv(struct.unpack(">I", head)[0], socket.MSG_WAITALL)
    return [field.decode() for field in payload.split(b"\0")[:-1]]


class Gateway:
    """Just enough of IB Gateway's socket protocol (server version 176) for one connection at a time."""

    def __init__(self, handlers, *, accounts="DU1", refuse_client_id=False):
        self.handlers = handlers
        self.accounts = accounts
        self.refuse_client_id = refuse_client_id
        self.requests: list[list[str]] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.stopped = threading.Event()
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.server.close()

    def serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            with conn:
                conn.recv(4, socket.MSG_WAITALL)  # "API\0"
                read_frame(conn)  # "v157..178"
                conn.sendall(frame("176", "20261120 10:00:00 UTC"))
                read_frame(conn)  # START_API
                if self.refuse_client_id:
                    conn.sendall(
                        frame(
                            4,
                            2,
                            -1,
                            326,
                            "Unable to connect as the client id is already in use. Retry with a unique client id.",
                            "",
                        )
                    )
                    continue
                conn.sendall(frame(9, 1, 1) + frame(15, 1, self.accounts))
                while (fields := read_frame(conn)) is not None:
                    self.requests.append(fields)
                    handler = self.handlers.get(fields[0])
                    if handler is not None:
                        conn.sendall(handler(fields))


def test_real_ib_client_id_in_use():
    """A gateway that already has this client id answers 326 and closes: ib_async only times out."""
    with Gateway({}, refuse_client_id=True) as gateway:
        broker = IBKRBroker(host="127.0.0.1", port=gateway.port, client_id=9, timeout=0.5)
        with pytest.raises(BrokerUnavailable, match="client id 9 is already in use"):
            broker.accounts()


EXEC_ID = "0000e0d5.6553a1b2.01.01"


def executions_answer(fields):
    req_id = fields[2]
    execution = frame(
        11,
        req_id,
        12,
        265598,
        "AAPL",
        "STK",
        "",
        "0",
        "",
        "",
        "ISLAND",
        "USD",
        "AAPL",
        "NMS",
        EXEC_ID,
        "20261120 14:32:15 UTC",
        "DU1",
        "ISLAND",
        "SLD",
        "100",
        "150.25",
        987654,
        17,
        0,
        "100",
        "150.25",
        "",
        "",
        "",
        "",
        1,
    )
    report = frame(59, 1, EXEC_ID, "1.25", "USD", "1.7976931348623157E308", "1.7976931348623157E308", "0")
    return execution + report + frame(55, 1, req_id)


REAL_HANDLERS = {
    "61": lambda f: (  # reqPositions
        frame(61, 3, "DU1", 265598, "AAPL", "STK", "", "0", "", "", "NASDAQ", "USD", "AAPL", "NMS", "100", "150.25")
        + frame(
            61,
            3,
            "DU1",
            712345678,
            "SPY",
            "OPT",
            "20261218",
            "600",
            "C",
            "100",
            "",
            "USD",
            "SPY   261218C00600000",
            "SPY",
            "-2",
            "512.4",
        )
        + frame(62, 1)
    ),
    "6": lambda f: frame(54, 1, f[3]),  # reqAccountUpdates -> accountDownloadEnd
    "76": lambda f: frame(74, 1, f[2]),  # reqAccountUpdatesMulti -> end
    "7": executions_answer,
    "62": lambda f: (  # reqAccountSummary
        frame(63, 1, f[2], "DU1", "NetLiquidation", "100000.00", "USD")
        + frame(63, 1, f[2], "DU1", "SettledCash", "1.7976931348623157E308", "USD")
        + frame(64, 1, f[2])
    ),
}


def test_real_ib_end_to_end_positions_accounts_and_commissions():
    """The real IB class: connect already fetched the executions, so the commission sits on ib.fills()."""
    with Gateway(REAL_HANDLERS) as gateway:
        broker = IBKRBroker(host="127.0.0.1", port=gateway.port, client_id=17, timeout=3.0)
        broker.commission_grace_seconds = 0

        stock, call = broker.positions("DU1").items
        assert stock.average_price == Decimal("150.25")
        assert call.average_price == Decimal("5.124")

        (execution,) = broker.executions("DU1").items
        assert (execution.exec_id, execution.side, execution.commission) == (EXEC_ID, "SELL", Decimal("1.25"))

        (account,) = broker.accounts().items
        assert account.values.net_liquidation == Decimal("100000.00")
        assert account.values.settled_cash is None
    readonly_order_requests = [r for r in gateway.requests if r[0] in ("5", "99")]  # open/completed orders
    assert readonly_order_requests == []
