"""Issue #16 at the broker boundary: what the adapters hand out fits where it is written, or is refused there.

- A section of the wrong type (a string, a number or an object where a list belongs) is a failed
  request (BrokerError), never "nothing": read as empty, it would close every open position.
- A row that cannot be parsed at all (a time that overflows, ...) or whose values would not fit the
  column they are written to is skipped with a warning naming the row and the field; the rest of the
  answer is used.

The simulated adapter, the IBKR adapter and the Flex parser all go through core/brokers/validation.py.
What the services then write is tested in tests/trading/test_bad_broker_rows.py and
tests/portfolio/test_position_sync_bad_rows.py.
"""

import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from ib_async import AccountValue, Position, Stock

from core.brokers.base import BrokerError
from tests.core.test_ibkr_broker import FakeIB, aapl, fill, make_broker, spy_call
from tests.factories import (
    EXAMPLE_ACCOUNT_ID,
    AccountRowFactory,
    BarRowFactory,
    BrokerStateFactory,
    CashFlowRowFactory,
    ExecutionRowFactory,
    QuoteRowFactory,
    StockPositionRowFactory,
)
from tests.flex_reports import ACCOUNT as FLEX_ACCOUNT
from tests.flex_reports import flex_xml, trade_row

ACCOUNT = "DU7654321"
WRONG_TYPES = {"string": "oops", "object": {"symbol": "AAPL", "quantity": "100"}, "number": 7}


def _state_with(**account_fields) -> dict:
    return BrokerStateFactory(accounts=[AccountRowFactory(account_id=ACCOUNT, **account_fields)])


# --- sections of the wrong type: a failed request -------------------------------------------------
SECTION_CALLS = {
    "positions": lambda broker: broker.positions(EXAMPLE_ACCOUNT_ID),
    "executions": lambda broker: broker.executions(EXAMPLE_ACCOUNT_ID),
    "cash_flows": lambda broker: broker.cash_flows(EXAMPLE_ACCOUNT_ID),
}


class TestSimulatedSectionsOfTheWrongType:
    @pytest.mark.parametrize("value", list(WRONG_TYPES.values()), ids=list(WRONG_TYPES))
    @pytest.mark.parametrize("section", list(SECTION_CALLS))
    def test_an_account_section_of_the_wrong_type_is_a_failed_request(
        self, broker_state, simulated_broker, section, value
    ):
        with broker_state.edit() as state:
            broker_state.account(state, EXAMPLE_ACCOUNT_ID)[section] = value

        with pytest.raises(BrokerError) as caught:
            SECTION_CALLS[section](simulated_broker)

        message = str(caught.value)
        assert f"accounts ({EXAMPLE_ACCOUNT_ID}).{section}" in message
        assert f"a {type(value).__name__}, not a list" in message
        assert str(simulated_broker.path) in message

    @pytest.mark.parametrize("section", list(SECTION_CALLS))
    def test_an_absent_or_null_section_is_still_empty(self, broker_state, simulated_broker, section):
        with broker_state.edit() as state:
            broker_state.account(state, EXAMPLE_ACCOUNT_ID)[section] = None

        fetched = SECTION_CALLS[section](simulated_broker)

        assert fetched.items == () and fetched.warnings == ()

    @pytest.mark.parametrize("value", list(WRONG_TYPES.values()), ids=list(WRONG_TYPES))
    def test_accounts_of_the_wrong_type_fail_every_account_call(self, broker_state, simulated_broker, value):
        with broker_state.edit() as state:
            state["accounts"] = value

        for call in (lambda b: b.accounts(), *SECTION_CALLS.values()):
            with pytest.raises(BrokerError, match=rf"accounts: a {type(value).__name__}, not a list"):
                call(simulated_broker)

    @pytest.mark.parametrize("value", ["oops", ["NetLiquidation", "100000.00"], 7], ids=["string", "list", "number"])
    def test_values_of_the_wrong_type_are_a_failed_request(self, broker_state, simulated_broker, value):
        # Read as "no values", they would overwrite the account's figures with nothing.
        with broker_state.edit() as state:
            broker_state.account(state, EXAMPLE_ACCOUNT_ID)["values"] = value

        with pytest.raises(BrokerError, match=rf"accounts \({EXAMPLE_ACCOUNT_ID}\)\.values: a {type(value).__name__}"):
            simulated_broker.accounts()

    @pytest.mark.parametrize(
        ("bars", "where"),
        [
            (["AAPL"], "bars: a list, not an object"),
            ({"AAPL": "oops"}, "bars.AAPL: a str, not an object"),
            ({"AAPL": {"1d": {"time": "2026-11-19T00:00:00Z"}}}, "bars.AAPL.1d: a dict, not a list"),
        ],
        ids=["bars", "symbol", "bar-size"],
    )
    def test_bars_of_the_wrong_type_are_a_failed_request(self, broker_state, simulated_broker, bars, where):
        with broker_state.edit() as state:
            state["bars"] = bars

        with pytest.raises(BrokerError, match=where.replace(".", r"\.")):
            simulated_broker.bars("AAPL", "1d")

    @pytest.mark.parametrize("value", ["oops", [{"symbol": "AAPL"}]], ids=["string", "list"])
    def test_quotes_of_the_wrong_type_are_a_failed_request(self, broker_state, simulated_broker, value):
        with broker_state.edit() as state:
            state["quotes"] = value

        with pytest.raises(BrokerError, match=rf"quotes: a {type(value).__name__}, not an object"):
            simulated_broker.quote("AAPL")


# --- rows that do not fit: skipped with a warning naming the row and the field ----------------------
# One bad value each, with the field the warning must name.
BAD_EXECUTIONS = {
    "time-overflows-utc": ({"time": "0001-01-01T00:00:00+14:00"}, "time"),
    "time-overflows-year-9999": ({"time": "9999-12-31T23:00:00-10:00"}, "time"),
    "time-before-the-nyse-calendar": ({"time": "1980-01-02T15:00:00Z"}, "executed_at"),
    "time-in-the-future": ({"time": "2099-01-02T15:00:00Z"}, "executed_at"),
    "symbol-of-10000-characters": ({"symbol": "A" * 10_000}, "symbol"),
    "symbol-with-nul": ({"symbol": "AA\x00PL"}, "symbol"),
    "symbol-with-lone-surrogate": ({"symbol": "AA\ud800"}, "symbol"),
    "con-id-beyond-64-bit": ({"con_id": 2**63}, "con_id"),
    "perm-id-beyond-64-bit": ({"perm_id": 2**64}, "perm_id"),
    "order-id-beyond-64-bit": ({"order_id": "99999999999999999999"}, "order_id"),
    "currency-too-long": ({"currency": "USDT"}, "currency"),
    "commission-currency-too-long": ({"commission_currency": "DOLLARS"}, "commission_currency"),
    "exchange-too-long": ({"exchange": "E" * 17}, "exchange"),
    "exec-id-too-long": ({"exec_id": "x" * 65}, "exec_id"),
    "quantity-x-price-beyond-money": ({"quantity": "9999999999999", "price": "9999999999999"}, "quantity x price"),
    "multiplier-rounds-to-zero": ({"multiplier": "1e-9"}, "multiplier"),
    "quantity-rounds-to-zero": ({"quantity": "0.000000001"}, "quantity"),
    "instrument-key-too-long": (  # 28 significant digits twice, after the point: a key of 127 characters
        {
            "symbol": "S" * 32,
            "sec_type": "OPT",
            "expiry": "2026-12-18",
            "right": "C",
            **dict.fromkeys(("strike", "multiplier"), "0.00000001234567890123456789012345678"),
        },
        "key",
    ),
    "nul-in-an-unknown-key": ({"note": "a\x00b"}, "note"),
}


class TestSimulatedRowsThatDoNotFit:
    @pytest.mark.parametrize(("overrides", "field"), list(BAD_EXECUTIONS.values()), ids=list(BAD_EXECUTIONS))
    def test_execution(self, broker_state, simulated_broker, caplog, overrides, field):
        rows = [
            ExecutionRowFactory(exec_id="good-1"),
            ExecutionRowFactory(**{"exec_id": "bad", **overrides}),
            ExecutionRowFactory(exec_id="good-2"),
        ]
        broker_state.write(_state_with(executions=rows))

        with caplog.at_level(logging.WARNING, logger="core.brokers.simulated"):
            fetched = simulated_broker.executions(ACCOUNT)

        assert [e.exec_id for e in fetched.items] == ["good-1", "good-2"]
        (warning,) = fetched.warnings
        assert f"accounts ({ACCOUNT}).executions[1]" in warning
        assert f"{field}" in warning and "row skipped" in warning
        assert warning[:200] in caplog.text

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"symbol": "S" * 33}, "symbol"),
            ({"symbol": "AA\x00PL"}, "symbol"),
            ({"con_id": 2**64}, "con_id"),
            ({"exchange": "E" * 17}, "exchange"),
            ({"currency": "EURO"}, "currency"),
            ({"multiplier": "1e-9"}, "multiplier"),
            ({"quantity": "9999999999999", "avg_cost": "9999999999999"}, "quantity x price"),
            ({"quantity": "9999999999999", "avg_cost": "1", "market_price": "9999999999999"}, "quantity x price"),
        ],
        ids=[
            "symbol-too-long",
            "symbol-with-nul",
            "con-id-beyond-64-bit",
            "exchange-too-long",
            "currency-too-long",
            "multiplier-rounds-to-zero",
            "cost-beyond-money",
            "market-value-beyond-money",
        ],
    )
    def test_position(self, broker_state, simulated_broker, overrides, field):
        rows = [StockPositionRowFactory(symbol="GOOD"), StockPositionRowFactory(**{"symbol": "BAD", **overrides})]
        broker_state.write(_state_with(positions=rows))

        fetched = simulated_broker.positions(ACCOUNT)

        assert [p.instrument.symbol for p in fetched.items] == ["GOOD"]
        (warning,) = fetched.warnings
        assert f"accounts ({ACCOUNT}).positions[1]" in warning and field in warning

    def test_a_position_quantity_that_rounds_to_zero_is_zero_with_a_warning(self, broker_state, simulated_broker):
        """0.000000001 is 0 in an 8-place column: a position the broker reports as closed, never an
        OPEN position of 0E-8."""
        broker_state.write(_state_with(positions=[StockPositionRowFactory(symbol="DUST", quantity="0.000000001")]))

        fetched = simulated_broker.positions(ACCOUNT)

        (position,) = fetched.items
        assert position.quantity == 0
        (warning,) = fetched.warnings
        assert f"accounts ({ACCOUNT}).positions[0] (DUST)" in warning
        assert "quantity 0.000000001 rounds to 0" in warning

    @pytest.mark.parametrize("multiplier", ["0.00000001", "1e-8", "0.000000006"])
    def test_the_smallest_multiplier_the_column_holds_is_kept(self, broker_state, simulated_broker, multiplier):
        """8 places: 1e-8 is stored as it is (0.000000006 as 1e-8); only what rounds to 0 is refused."""
        broker_state.write(_state_with(executions=[ExecutionRowFactory(multiplier=multiplier)]))

        fetched = simulated_broker.executions(ACCOUNT)

        assert fetched.warnings == ()
        assert fetched.items[0].instrument.multiplier == Decimal(multiplier)

    def test_a_quantity_is_given_at_the_precision_it_is_stored_with(self, broker_state, simulated_broker):
        broker_state.write(_state_with(positions=[StockPositionRowFactory(quantity="10.000000006")]))

        (position,) = simulated_broker.positions(ACCOUNT).items

        assert position.quantity == Decimal("10.00000001")

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"id": "x" * 65}, "flow_id"),
            ({"id": "cf\x00"}, "flow_id"),
            ({"amount": "0.00001"}, "amount"),
            ({"time": "0001-01-01T00:00:00+14:00"}, "time"),
            ({"time": "1969-07-20T20:17:00Z"}, "at"),
            ({"currency": "DOLLARS"}, "currency"),
        ],
        ids=["id-too-long", "id-with-nul", "amount-rounds-to-zero", "time-overflows", "time-too-early", "currency"],
    )
    def test_cash_flow(self, broker_state, simulated_broker, overrides, field):
        broker_state.write(_state_with(cash_flows=[CashFlowRowFactory(**overrides), CashFlowRowFactory(id="good")]))

        fetched = simulated_broker.cash_flows(ACCOUNT)

        assert [c.flow_id for c in fetched.items] == ["good"]
        (warning,) = fetched.warnings
        assert f"accounts ({ACCOUNT}).cash_flows[0]" in warning and field in warning

    @pytest.mark.parametrize(
        ("account_id", "field"),
        [("D" * 100, "account_id"), ("DU\x001", "account_id")],
        ids=["100-characters", "nul"],
    )
    def test_account_whose_id_does_not_fit(self, broker_state, simulated_broker, account_id, field):
        broker_state.write(
            BrokerStateFactory(accounts=[AccountRowFactory(account_id="DU1"), AccountRowFactory(account_id=account_id)])
        )

        fetched = simulated_broker.accounts()

        assert [a.account_id for a in fetched.items] == ["DU1"]
        (warning,) = fetched.warnings
        assert "accounts[1]" in warning and field in warning

    def test_account_whose_base_currency_does_not_fit(self, broker_state, simulated_broker):
        broker_state.write(BrokerStateFactory(accounts=[AccountRowFactory(account_id="DU1", base_currency="DOLLAR")]))

        fetched = simulated_broker.accounts()

        assert fetched.items == ()
        assert "base_currency" in fetched.warnings[0]

    @pytest.mark.parametrize("value", ["99999999999", "-2147483649", "2.5"], ids=["too-big", "too-small", "fraction"])
    def test_day_trades_remaining_that_does_not_fit_is_ignored_with_a_warning(
        self, broker_state, simulated_broker, value
    ):
        with broker_state.edit() as state:
            broker_state.account(state, EXAMPLE_ACCOUNT_ID)["values"]["DayTradesRemaining"] = value

        fetched = simulated_broker.accounts()

        (account,) = fetched.items
        assert account.values.day_trades_remaining is None
        assert account.values.net_liquidation == Decimal("100000.00")  # the other values are kept
        (warning,) = fetched.warnings
        assert f"accounts ({EXAMPLE_ACCOUNT_ID}).values.DayTradesRemaining" in warning

    def test_bar_whose_time_overflows(self, broker_state, simulated_broker):
        bars = [BarRowFactory(time="0001-01-01T00:00:00+14:00"), BarRowFactory(time="2026-11-19T00:00:00Z")]
        broker_state.write(BrokerStateFactory(bars={"AAPL": {"1d": bars}}))

        fetched = simulated_broker.bars("AAPL", "1d")

        assert [b.start for b in fetched.items] == [datetime(2026, 11, 19, tzinfo=UTC)]
        (warning,) = fetched.warnings
        assert "bars.AAPL.1d[0]" in warning and "time" in warning

    def test_quote_whose_time_overflows(self, broker_state, simulated_broker, caplog):
        broker_state.write(BrokerStateFactory(quotes={"AAPL": QuoteRowFactory(time="0001-01-01T00:00:00+14:00")}))

        with caplog.at_level(logging.WARNING, logger="core.brokers.simulated"):
            assert simulated_broker.quote("AAPL") is None

        assert "quotes.AAPL" in caplog.text and "time" in caplog.text


# --- the IBKR adapter --------------------------------------------------------------------------------
def av(tag, value, account="DU1", currency="USD"):
    return AccountValue(account, tag, value, currency, "")


IBKR_REQUESTS = {
    "positions": ("reqPositionsAsync", lambda b: b.positions("DU1"), "positions"),
    "account-summary": ("accountSummaryAsync", lambda b: b.accounts(), "account summary"),
    "executions": ("reqExecutionsAsync", lambda b: b.executions("DU1"), "executions"),
    "bars": ("reqHistoricalDataAsync", lambda b: b.bars("AAPL", "1d"), "historical 1d bars for AAPL"),
}


class TestIBKRAnswersOfTheWrongType:
    @pytest.mark.parametrize("request_name", list(IBKR_REQUESTS))
    @pytest.mark.parametrize("answer", [None, "oops", {"DU1": []}], ids=["none", "string", "object"])
    def test_an_answer_that_is_not_a_list_is_a_failed_request(self, request_name, answer):
        method, call, what = IBKR_REQUESTS[request_name]
        fake = FakeIB()

        async def answers(*args, **kwargs):
            return answer

        setattr(fake, method, answers)
        with pytest.raises(BrokerError, match=rf"{what}: a {type(answer).__name__}, not a list"):
            call(make_broker(fake))
        assert fake.disconnects == 1

    def test_managed_accounts_that_are_not_a_list_are_a_failed_request(self):
        fake = FakeIB()
        fake.managedAccounts = lambda: None
        with pytest.raises(BrokerError, match=r"managed accounts: a NoneType, not a list"):
            make_broker(fake).positions("DU1")


class TestIBKRRowsThatDoNotFit:
    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"time": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))}, "time"),
            ({"time": datetime(1985, 1, 2, 15, tzinfo=UTC)}, "executed_at"),
            ({"perm_id": 2**64}, "perm_id"),
            ({"order_id": 2**63}, "order_id"),
            ({"shares": 1e13, "price": 1e13}, "quantity x price"),
            ({"shares": 1e-9}, "quantity"),
            ({"contract": Stock("A" * 300, "SMART", "USD", conId=1)}, "symbol"),
            ({"contract": Stock("AA\x00PL", "SMART", "USD", conId=1)}, "symbol"),
            ({"contract": Stock("AAPL", "SMART", "USD", conId=2**64)}, "con_id"),
        ],
        ids=[
            "time-overflows",
            "time-before-the-nyse-calendar",
            "perm-id-beyond-64-bit",
            "order-id-beyond-64-bit",
            "quantity-x-price-beyond-money",
            "quantity-rounds-to-zero",
            "symbol-of-300-characters",
            "symbol-with-nul",
            "con-id-beyond-64-bit",
        ],
    )
    def test_execution(self, changes, field):
        fake = FakeIB(fills=[fill("good"), fill("bad", **changes)])

        fetched = make_broker(fake).executions("DU1")

        assert [e.exec_id for e in fetched.items] == ["good"]
        (warning,) = fetched.warnings
        assert "execution bad" in warning and field in warning and "row skipped" in warning

    def test_position_quantity_that_rounds_to_zero_is_zero_with_a_warning(self):
        fake = FakeIB(positions=[Position("DU1", aapl(), 1e-9, 150.25)])

        fetched = make_broker(fake).positions("DU1")

        (position,) = fetched.items
        assert position.quantity == 0
        assert "AAPL" in fetched.warnings[0] and "rounds to 0" in fetched.warnings[0]

    def test_position_beyond_the_money_columns_is_skipped(self):
        fake = FakeIB(positions=[Position("DU1", aapl(), 1e13, 1e13), Position("DU1", spy_call(), -2.0, 512.4)])

        fetched = make_broker(fake).positions("DU1")

        assert [p.instrument.symbol for p in fetched.items] == ["SPY"]
        assert "AAPL" in fetched.warnings[0] and "quantity x price" in fetched.warnings[0]

    @pytest.mark.parametrize(
        ("tag", "value"),
        [("DayTradesRemaining", "99999999999"), ("NetLiquidation", "1e30"), ("BuyingPower", "-1e21")],
        ids=["day-trades-beyond-integer", "net-liquidation-beyond-money", "buying-power-beyond-money"],
    )
    def test_account_value_that_does_not_fit_is_ignored_with_a_warning(self, tag, value):
        fake = FakeIB(summary=[av("TotalCashValue", "25000.00"), av(tag, value)])

        fetched = make_broker(fake).accounts()

        (account,) = fetched.items
        assert account.values.total_cash == Decimal("25000.00")
        attribute = {"DayTradesRemaining": "day_trades_remaining", "NetLiquidation": "net_liquidation"}
        assert getattr(account.values, attribute.get(tag, "buying_power")) is None
        assert any(f"account DU1: {tag}" in w for w in fetched.warnings)

    def test_managed_account_whose_id_does_not_fit_is_skipped(self):
        long_id = "U" * 100
        fake = FakeIB(accounts=["DU1", long_id], summary=[av("NetLiquidation", "1.00")])

        fetched = make_broker(fake).accounts()

        assert [a.account_id for a in fetched.items] == ["DU1"]
        assert any("account_id" in w and "100 characters" in w for w in fetched.warnings)


# --- the Flex parser ---------------------------------------------------------------------------------
BAD_FLEX_TRADES = {
    "symbol-of-300-characters": ({"symbol": "S" * 300}, "symbol"),
    "exec-id-of-300-characters": ({"ibExecID": "E" * 300}, "exec_id"),
    "quantity-beyond-the-columns": ({"quantity": "99999999999999999999"}, "quantity"),
    "quantity-x-price-beyond-money": ({"quantity": "9999999999999", "tradePrice": "9999999999999"}, "quantity x price"),
    "commission-beyond-money": ({"ibCommission": "-123456789012345678901"}, "commission"),
    "con-id-beyond-64-bit": ({"conid": "99999999999999999999"}, "con_id"),
    "order-id-beyond-64-bit": ({"ibOrderID": "99999999999999999999"}, "perm_id"),
    "time-overflows": ({"dateTime": "99991231;230000"}, "dateTime"),
    "time-before-the-nyse-calendar": ({"dateTime": "19850102;100000", "tradeDate": "19850102"}, "executed_at"),
    "exchange-too-long": ({"exchange": "E" * 17}, "exchange"),
    "multiplier-rounds-to-zero": ({"multiplier": "0.000000001"}, "multiplier"),
}


class TestFlexRowsThatDoNotFit:
    """(ibflex itself refuses a currency it does not know: the whole file, as FlexReportError.)"""

    @pytest.mark.parametrize(("attrs", "field"), list(BAD_FLEX_TRADES.values()), ids=list(BAD_FLEX_TRADES))
    def test_trade(self, attrs, field):
        good = trade_row(tradeID="1", ibExecID="good.1")
        bad = trade_row(**{"tradeID": "2", "ibExecID": "bad.2", "transactionID": "32", **attrs})

        rows = flex_parse_rows(good, bad)

        assert [e.exec_id for e in rows.executions] == ["good.1"]
        assert rows.skipped_trades == 1
        (warning,) = rows.warnings
        assert warning.startswith("trade 2 ") and field in warning and warning.endswith("skipped")

    @pytest.mark.parametrize(
        ("attrs", "field"),
        [
            ({"transactionID": "9" * 60}, "flow_id"),
            ({"amount": "0.00001"}, "amount"),
            ({"amount": "123456789012345678901"}, "amount"),
            ({"dateTime": "99991231;230000"}, "dateTime"),
        ],
        ids=["id-too-long", "amount-rounds-to-zero", "amount-beyond-money", "time-overflows"],
    )
    def test_cash_transaction(self, attrs, field):
        cash = cash_row(transactionID="1") + cash_row(**{"transactionID": "2", **attrs})

        rows = flex_parse_rows(cash=cash)

        assert [f.flow_id for f in rows.cash_flows] == ["flex-1"]
        (warning,) = rows.warnings
        assert "cash transaction " in warning and field in warning and warning.endswith("skipped")


def flex_parse_rows(*trades: str, cash: str = ""):
    from core.brokers.flex import flex_parse

    return flex_parse(path_or_bytes=flex_xml(*trades, cash=cash)).accounts[FLEX_ACCOUNT]


def cash_row(**attrs) -> str:
    values = {
        "accountId": FLEX_ACCOUNT,
        "currency": "USD",
        "dateTime": "20251002;120000",
        "amount": "1000",
        "type": "Deposits/Withdrawals",
        "transactionID": "1",
        "description": "CASH RECEIPTS",
        "levelOfDetail": "DETAIL",
    } | attrs
    return "<CashTransaction " + " ".join(f'{k}="{v}"' for k, v in values.items()) + " />"
