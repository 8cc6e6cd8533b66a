"""The simulated broker against every rule of docs/broker-state.md."""

import json
import logging
import os
import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core.brokers import Broker, BrokerError, BrokerUnavailable, get_broker, simulated
from core.brokers.base import AccountValues
from core.brokers.contracts import SecType
from core.brokers.simulated import SimulatedBroker
from tests.factories import (
    EXAMPLE_ACCOUNT_ID,
    AccountRowFactory,
    AccountValuesRowFactory,
    BarRowFactory,
    BrokerStateFactory,
    CashFlowRowFactory,
    ExecutionRowFactory,
    OptionPositionRowFactory,
    QuoteRowFactory,
    StockPositionRowFactory,
)

ACCOUNT = "DU7654321"

# Every call of the Broker protocol, so "every call" rules are checked on each one.
CALLS = {
    "accounts": lambda broker: broker.accounts(),
    "positions": lambda broker: broker.positions(EXAMPLE_ACCOUNT_ID),
    "executions": lambda broker: broker.executions(EXAMPLE_ACCOUNT_ID),
    "cash_flows": lambda broker: broker.cash_flows(EXAMPLE_ACCOUNT_ID),
    "bars": lambda broker: broker.bars("AAPL", "1d"),
    "quote": lambda broker: broker.quote("AAPL"),
}
every_call = pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))


def _state_with(**account_fields) -> dict:
    """A connected state with one account (``ACCOUNT``) holding the given rows."""
    return BrokerStateFactory(accounts=[AccountRowFactory(account_id=ACCOUNT, **account_fields)])


# --- the file -------------------------------------------------------------------------------------
class TestUnavailableFile:
    @every_call
    def test_missing_file(self, simulated_broker, call):
        with pytest.raises(BrokerUnavailable) as excinfo:
            call(simulated_broker)

        assert str(simulated_broker.path) in str(excinfo.value)
        assert "does not exist" in str(excinfo.value)

    @every_call
    def test_unreadable_file(self, settings, tmp_path, call):
        # Tests run as root, so chmod 000 would not stop reading; a directory cannot be read as a file.
        directory = tmp_path / "state-is-a-directory"
        directory.mkdir()
        broker = SimulatedBroker(directory)

        with pytest.raises(BrokerUnavailable) as excinfo:
            call(broker)

        assert str(directory) in str(excinfo.value)
        assert "unreadable" in str(excinfo.value)

    @every_call
    def test_file_that_is_not_utf8(self, broker_state, simulated_broker, call):
        broker_state.write_raw(b'{"connected": true, "accounts": [{"account_id": "DU\xff\xfe"}]}')

        with pytest.raises(BrokerUnavailable) as excinfo:
            call(simulated_broker)

        assert str(simulated_broker.path) in str(excinfo.value)

    @pytest.mark.parametrize("content", ["{not json", "", '{"connected": true,}', "[1, 2"], ids=repr)
    @every_call
    def test_invalid_json(self, broker_state, simulated_broker, call, content):
        broker_state.write_raw(content)

        with pytest.raises(BrokerUnavailable) as excinfo:
            call(simulated_broker)

        assert str(simulated_broker.path) in str(excinfo.value)
        assert "not valid JSON" in str(excinfo.value)

    @pytest.mark.parametrize("content", ["[]", '"connected"', "42", "null"])
    @every_call
    def test_top_level_not_an_object(self, broker_state, simulated_broker, call, content):
        broker_state.write_raw(content)

        with pytest.raises(BrokerUnavailable) as excinfo:
            call(simulated_broker)

        assert str(simulated_broker.path) in str(excinfo.value)
        assert "object" in str(excinfo.value)

    @every_call
    def test_disconnected(self, broker_state, simulated_broker, call):
        with broker_state.edit() as state:
            state["connected"] = False

        with pytest.raises(BrokerUnavailable) as excinfo:
            call(simulated_broker)

        assert "disconnected" in str(excinfo.value)
        assert str(simulated_broker.path) in str(excinfo.value)

    def test_connected_when_the_key_is_absent(self, broker_state, simulated_broker):
        with broker_state.edit() as state:
            del state["connected"]

        assert [a.account_id for a in simulated_broker.accounts().items] == [EXAMPLE_ACCOUNT_ID]


class TestFileIsReadOnEveryCall:
    def test_rewrite_between_two_calls_is_seen(self, broker_state, simulated_broker):
        first = simulated_broker.positions(EXAMPLE_ACCOUNT_ID)
        with broker_state.edit() as state:
            aapl = broker_state.account(state, EXAMPLE_ACCOUNT_ID)["positions"][0]
            aapl["quantity"] = "250"

        second = simulated_broker.positions(EXAMPLE_ACCOUNT_ID)

        assert first.items[0].quantity == Decimal("100")
        assert second.items[0].quantity == Decimal("250")

    def test_disconnect_and_reconnect(self, broker_state, simulated_broker):
        assert simulated_broker.accounts().items
        with broker_state.edit() as state:
            state["connected"] = False
        with pytest.raises(BrokerUnavailable):
            simulated_broker.accounts()
        with broker_state.edit() as state:
            state["connected"] = True

        assert [a.account_id for a in simulated_broker.accounts().items] == [EXAMPLE_ACCOUNT_ID]

    def test_file_removed_after_a_good_call(self, broker_state, simulated_broker):
        assert simulated_broker.accounts().items
        broker_state.path.unlink()

        with pytest.raises(BrokerUnavailable):
            simulated_broker.accounts()


# --- the parsed file is kept while the file is unchanged -------------------------------------------
@pytest.fixture
def parses(monkeypatch) -> list:
    """The paths the simulated broker parsed, one entry per parse (starting from an empty cache)."""
    simulated.cache_clear()
    parsed = []
    real_parse = simulated._parse_file

    def counting(content, path):
        parsed.append(path)
        return real_parse(content, path)

    monkeypatch.setattr(simulated, "_parse_file", counting)
    yield parsed
    simulated.cache_clear()


def _age(path, seconds: int = 3600) -> None:
    """Date the file back, past the window in which a same-size rewrite could keep its mtime."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - seconds * 10**9))


def _many_accounts(count: int) -> dict:
    return BrokerStateFactory(
        accounts=[
            AccountRowFactory(account_id=f"DU{n:07d}", positions=[StockPositionRowFactory(symbol=f"S{n}")])
            for n in range(count)
        ]
    )


class TestParsedFileIsKept:
    def test_one_parse_for_many_accounts_and_brokers(self, broker_state, parses):
        broker_state.write(_many_accounts(50))

        account_ids = [a.account_id for a in get_broker().accounts().items]
        positions = {account_id: get_broker().positions(account_id) for account_id in account_ids}

        assert len(account_ids) == 50
        assert [p.items[0].instrument.symbol for p in positions.values()] == [f"S{n}" for n in range(50)]
        assert len(parses) == 1

    def test_one_parse_for_an_old_file_too(self, broker_state, parses):
        broker_state.write(_many_accounts(3))
        _age(broker_state.path)

        for _ in range(3):
            for account in get_broker().accounts().items:
                get_broker().positions(account.account_id)
                get_broker().executions(account.account_id)
                get_broker().cash_flows(account.account_id)

        assert len(parses) == 1

    def test_same_size_rewrite_in_place_with_a_new_mtime(self, broker_state, simulated_broker, parses):
        _age(broker_state.path)
        assert simulated_broker.positions(EXAMPLE_ACCOUNT_ID).items[0].quantity == Decimal("100")
        before = os.stat(broker_state.path)

        with broker_state.edit() as state:
            broker_state.account(state, EXAMPLE_ACCOUNT_ID)["positions"][0]["quantity"] = "250"
        os.utime(broker_state.path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))

        after = os.stat(broker_state.path)
        assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
        assert simulated_broker.positions(EXAMPLE_ACCOUNT_ID).items[0].quantity == Decimal("250")
        assert len(parses) == 2

    def test_same_size_atomic_rename_with_the_same_mtime(self, broker_state, simulated_broker, parses):
        _age(broker_state.path)
        assert simulated_broker.positions(EXAMPLE_ACCOUNT_ID).items[0].quantity == Decimal("100")
        before = os.stat(broker_state.path)

        state = broker_state.read()
        broker_state.account(state, EXAMPLE_ACCOUNT_ID)["positions"][0]["quantity"] = "250"
        replacement = broker_state.path.with_name("state.json.new")
        replacement.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(replacement, broker_state.path)

        after = os.stat(broker_state.path)
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        assert after.st_ino != before.st_ino
        assert simulated_broker.positions(EXAMPLE_ACCOUNT_ID).items[0].quantity == Decimal("250")

    def test_rewrite_the_identity_cannot_tell_is_seen_while_recent(
        self, broker_state, simulated_broker, parses, monkeypatch
    ):
        # A coarse-timestamp file system: a same-size rewrite in the same tick keeps size, mtime and ctime.
        monkeypatch.setattr(simulated, "_identity", lambda stat: (stat.st_dev, stat.st_ino, stat.st_size, 7, 7))
        monkeypatch.setattr(simulated.time, "time_ns", lambda: 7)
        assert simulated_broker.positions(EXAMPLE_ACCOUNT_ID).items[0].quantity == Decimal("100")
        assert simulated_broker.positions(EXAMPLE_ACCOUNT_ID).items[0].quantity == Decimal("100")
        assert len(parses) == 1

        with broker_state.edit() as state:
            broker_state.account(state, EXAMPLE_ACCOUNT_ID)["positions"][0]["quantity"] = "250"

        assert simulated_broker.positions(EXAMPLE_ACCOUNT_ID).items[0].quantity == Decimal("250")
        assert len(parses) == 2

    def test_broken_file_raises_every_time_and_a_repaired_one_is_read(self, broker_state, simulated_broker, parses):
        good = broker_state.read()
        broker_state.write_raw('{"connected": true, "accounts": [')

        for _ in range(3):
            with pytest.raises(BrokerUnavailable, match="not valid JSON"):
                get_broker().positions(EXAMPLE_ACCOUNT_ID)
        assert len(parses) == 3

        broker_state.write(good)

        assert get_broker().positions(EXAMPLE_ACCOUNT_ID).items[0].quantity == Decimal("100")

    def test_broken_file_after_a_good_one_is_not_hidden_by_the_kept_parse(self, broker_state, simulated_broker):
        assert simulated_broker.accounts().items
        broker_state.write_raw("{" + " " * (broker_state.path.stat().st_size - 1))

        for _ in range(2):
            with pytest.raises(BrokerUnavailable, match="not valid JSON"):
                simulated_broker.accounts()

    def test_disconnected_file_raises_on_every_call(self, broker_state, simulated_broker, parses):
        with broker_state.edit() as state:
            state["connected"] = False

        for call in CALLS.values():
            with pytest.raises(BrokerUnavailable, match="disconnected"):
                call(simulated_broker)
        assert len(parses) == 1

    def test_malformed_row_warns_on_every_call(self, broker_state, simulated_broker, parses, caplog):
        broker_state.write(
            _state_with(
                positions=[
                    StockPositionRowFactory(symbol="AAPL"),
                    StockPositionRowFactory(symbol="BAD", quantity="ten"),
                ]
            )
        )

        with caplog.at_level(logging.WARNING, logger="trading.brokers.simulated"):
            first = simulated_broker.positions(ACCOUNT)
            caplog.clear()
            second = get_broker().positions(ACCOUNT)

        assert len(parses) == 1
        assert [p.instrument.symbol for p in second.items] == ["AAPL"]
        (warning,) = second.warnings
        assert second.warnings == first.warnings
        assert f"accounts ({ACCOUNT}).positions[1] (BAD)" in warning
        assert warning in caplog.text

    def test_callers_cannot_change_the_kept_state(self, broker_state, simulated_broker, parses):
        with broker_state.edit() as state:
            broker_state.account(state, EXAMPLE_ACCOUNT_ID)["executions"][0]["note"] = {"tags": ["a"]}

        (first,) = simulated_broker.executions(EXAMPLE_ACCOUNT_ID).items
        first.raw["note"]["tags"].append("b")
        first.raw["price"] = "1.00"
        (second,) = simulated_broker.executions(EXAMPLE_ACCOUNT_ID).items

        assert len(parses) == 1
        assert second.raw["note"] == {"tags": ["a"]}
        assert second.raw["price"] == "150.25"

    def test_kept_files_are_bounded(self, tmp_path, parses):
        paths = []
        for n in range(simulated.CACHE_PATHS + 1):
            path = tmp_path / f"state-{n}.json"
            path.write_text(json.dumps(BrokerStateFactory()), encoding="utf-8")
            paths.append(path)
            SimulatedBroker(path).accounts()

        assert len(simulated._cache) == simulated.CACHE_PATHS
        SimulatedBroker(paths[-1]).accounts()
        assert len(parses) == len(paths)
        SimulatedBroker(paths[0]).accounts()  # the oldest was forgotten
        assert len(parses) == len(paths) + 1

    def test_concurrent_calls(self, broker_state, parses):
        broker_state.write(_many_accounts(20))
        errors = []

        def sync() -> None:
            try:
                for account in get_broker().accounts().items:
                    assert get_broker().positions(account.account_id).items
            except Exception as exc:  # collected, and checked by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=sync) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        assert 1 <= len(parses) <= len(threads)


def test_unknown_keys_are_ignored(broker_state, simulated_broker):
    plain = (
        simulated_broker.accounts(),
        simulated_broker.positions(EXAMPLE_ACCOUNT_ID),
        simulated_broker.executions(EXAMPLE_ACCOUNT_ID),
        simulated_broker.cash_flows(EXAMPLE_ACCOUNT_ID),
        simulated_broker.bars("AAPL", "1d"),
        simulated_broker.quote("AAPL"),
    )
    with broker_state.edit() as state:
        state["schema_version"] = 7
        account = broker_state.account(state, EXAMPLE_ACCOUNT_ID)
        account["nickname"] = "main"
        account["values"]["SomeFutureTag"] = "12.5"
        for section in ("positions", "executions", "cash_flows"):
            for row in account[section]:
                row["note"] = {"anything": ["goes"]}
        state["bars"]["AAPL"]["1d"][0]["provider"] = "SIP"  # wap and trade_count are read since #12
        state["quotes"]["AAPL"]["exchange"] = "NASDAQ"

    extended = (
        simulated_broker.accounts(),
        simulated_broker.positions(EXAMPLE_ACCOUNT_ID),
        simulated_broker.executions(EXAMPLE_ACCOUNT_ID),
        simulated_broker.cash_flows(EXAMPLE_ACCOUNT_ID),
        simulated_broker.bars("AAPL", "1d"),
        simulated_broker.quote("AAPL"),
    )

    # Executions keep the raw row, which now carries the unknown key; everything else is identical.
    assert extended[:2] == plain[:2]
    assert extended[3:] == plain[3:]
    assert [(e.exec_id, e.quantity, e.price, e.commission) for e in extended[2].items] == [
        (e.exec_id, e.quantity, e.price, e.commission) for e in plain[2].items
    ]
    assert all(not fetched.warnings for fetched in extended[:5])


# --- accounts -------------------------------------------------------------------------------------
class TestAccounts:
    def test_all_value_tags(self, broker_state, simulated_broker):
        fetched = simulated_broker.accounts()

        assert fetched.warnings == ()
        (account,) = fetched.items
        assert account.account_id == EXAMPLE_ACCOUNT_ID
        assert (account.account_type, account.base_currency) == ("MARGIN", "USD")
        assert account.values == AccountValues(
            net_liquidation=Decimal("100000.00"),
            total_cash=Decimal("25000.00"),
            settled_cash=Decimal("24000.00"),
            buying_power=Decimal("300000.00"),
            excess_liquidity=Decimal("80000.00"),
            maint_margin_req=Decimal("20000.00"),
            unrealized_pnl=Decimal("1200.00"),
            realized_pnl=Decimal("300.00"),
            day_trades_remaining=3,
        )
        assert isinstance(account.values.net_liquidation, Decimal)

    def test_missing_tags_are_none(self, broker_state, simulated_broker):
        broker_state.write(
            BrokerStateFactory(
                accounts=[
                    AccountRowFactory(account_id="DU1", values={"NetLiquidation": "5000.00"}),
                    AccountRowFactory(account_id="DU2", values={}),
                    {"account_id": "DU3", "account_type": "CASH", "base_currency": "EUR"},
                ]
            )
        )

        fetched = simulated_broker.accounts()

        by_id = {a.account_id: a for a in fetched.items}
        assert by_id["DU1"].values == AccountValues(net_liquidation=Decimal("5000.00"))
        assert by_id["DU2"].values == AccountValues()
        # The values are in the account's base currency (they said USD for every account before #17).
        assert by_id["DU3"].values == AccountValues(currency="EUR")
        assert by_id["DU3"].values.day_trades_remaining is None
        assert (by_id["DU3"].account_type, by_id["DU3"].base_currency) == ("CASH", "EUR")
        assert fetched.warnings == ()

    def test_day_trades_remaining_unlimited(self, broker_state, simulated_broker):
        broker_state.write(_state_with(values=AccountValuesRowFactory(DayTradesRemaining="-1")))

        (account,) = simulated_broker.accounts().items

        assert account.values.day_trades_remaining == -1

    def test_float_value_is_refused_with_a_warning(self, broker_state, simulated_broker):
        broker_state.write(_state_with(values=AccountValuesRowFactory(NetLiquidation=100000.5)))

        fetched = simulated_broker.accounts()

        (account,) = fetched.items
        assert account.values.net_liquidation is None
        assert account.values.total_cash == Decimal("25000.00")
        (warning,) = fetched.warnings
        assert "NetLiquidation" in warning
        assert "float" in warning

    @pytest.mark.parametrize(
        ("row", "problem"),
        [
            ({"account_type": "MARGIN"}, "missing account_id"),
            ({"account_id": "DU9", "account_type": "IRA"}, "account_type"),
            ("DU9", "expected an object"),
        ],
        ids=["no-id", "bad-type", "not-an-object"],
    )
    def test_malformed_account_row_is_skipped(self, broker_state, simulated_broker, caplog, row, problem):
        broker_state.write(BrokerStateFactory(accounts=[AccountRowFactory(account_id="DU1"), row]))

        with caplog.at_level(logging.WARNING):
            fetched = simulated_broker.accounts()

        assert [a.account_id for a in fetched.items] == ["DU1"]
        (warning,) = fetched.warnings
        assert "accounts[1]" in warning
        assert problem in warning
        assert problem in caplog.text

    def test_lower_case_account_type_is_normalised(self, broker_state, simulated_broker):
        broker_state.write(_state_with(account_type="cash", base_currency="usd"))

        (account,) = simulated_broker.accounts().items

        assert (account.account_type, account.base_currency) == ("CASH", "USD")


# --- positions ------------------------------------------------------------------------------------
class TestPositions:
    def test_example_positions(self, broker_state, simulated_broker):
        fetched = simulated_broker.positions(EXAMPLE_ACCOUNT_ID)

        assert fetched.warnings == ()
        stock, option = fetched.items
        assert stock.account_id == EXAMPLE_ACCOUNT_ID
        assert stock.instrument.symbol == "AAPL"
        assert stock.instrument.sec_type == SecType.STOCK
        assert stock.instrument.con_id == 265598
        assert stock.quantity == Decimal("100")
        assert stock.average_price == Decimal("150.25")
        assert stock.market_price == Decimal("155.10")
        assert isinstance(stock.quantity, Decimal)

        assert option.instrument.sec_type == SecType.OPTION
        assert option.instrument.expiry == date(2026, 12, 18)
        assert option.instrument.strike == Decimal("600")
        assert option.instrument.right == "C"
        assert option.instrument.multiplier == Decimal("100")
        assert option.quantity == Decimal("-2")
        # IBKR's avgCost is per contract for options: "512.40" / "100" per unit.
        assert option.average_price == Decimal("5.124")
        assert option.market_price == Decimal("4.80")

    def test_quantity_zero_is_kept_as_closed_today(self, broker_state, simulated_broker):
        broker_state.write(_state_with(positions=[StockPositionRowFactory(symbol="MSFT", quantity="0")]))

        (position,) = simulated_broker.positions(ACCOUNT).items

        assert position.instrument.symbol == "MSFT"
        assert position.quantity == Decimal("0")

    def test_short_stock_is_negative(self, broker_state, simulated_broker):
        broker_state.write(_state_with(positions=[StockPositionRowFactory(quantity="-30", avg_cost="42.10")]))

        (position,) = simulated_broker.positions(ACCOUNT).items

        assert position.quantity == Decimal("-30")
        assert position.average_price == Decimal("42.10")

    def test_market_price_is_optional(self, broker_state, simulated_broker):
        row = StockPositionRowFactory()
        del row["market_price"]
        broker_state.write(_state_with(positions=[row]))

        fetched = simulated_broker.positions(ACCOUNT)

        (position,) = fetched.items
        assert position.market_price is None
        assert fetched.warnings == ()

    def test_future_avg_cost_is_per_contract(self, broker_state, simulated_broker):
        row = StockPositionRowFactory(
            symbol="ES", sec_type="FUT", multiplier="50", expiry="2026-12-18", quantity="1", avg_cost="301250.00"
        )
        broker_state.write(_state_with(positions=[row]))

        (position,) = simulated_broker.positions(ACCOUNT).items

        assert position.average_price == Decimal("6025")
        assert position.instrument.expiry == date(2026, 12, 18)

    def test_put_option(self, broker_state, simulated_broker):
        broker_state.write(_state_with(positions=[OptionPositionRowFactory(right="P", strike="550.5")]))

        (position,) = simulated_broker.positions(ACCOUNT).items

        assert position.instrument.right == "P"
        assert position.instrument.strike == Decimal("550.5")

    @pytest.mark.parametrize(
        ("bad_row", "problem"),
        [
            (StockPositionRowFactory.build(symbol="BAD", quantity="ten"), "quantity"),
            (StockPositionRowFactory.build(symbol="BAD", quantity=12.5), "float"),
            (StockPositionRowFactory.build(symbol="BAD", avg_cost="NaN"), "avg_cost"),
            (StockPositionRowFactory.build(symbol="BAD", avg_cost="-1.00"), "avg_cost"),
            (StockPositionRowFactory.build(symbol="BAD", market_price="-0.01"), "market_price"),
            (StockPositionRowFactory.build(symbol="BAD", multiplier="0"), "multiplier"),
            (StockPositionRowFactory.build(symbol="BAD", sec_type="XYZ"), "sec_type"),
            (StockPositionRowFactory.build(symbol="BAD", con_id="abc"), "con_id"),
            (StockPositionRowFactory.build(symbol=None), "missing symbol"),
            (StockPositionRowFactory.build(symbol="   "), "missing symbol"),
            ({k: v for k, v in StockPositionRowFactory.build(symbol="BAD").items() if k != "quantity"}, "quantity"),
            ({k: v for k, v in OptionPositionRowFactory.build(symbol="BAD").items() if k != "strike"}, "strike"),
            ({k: v for k, v in OptionPositionRowFactory.build(symbol="BAD").items() if k != "expiry"}, "expiry"),
            ({k: v for k, v in OptionPositionRowFactory.build(symbol="BAD").items() if k != "right"}, "right"),
            (OptionPositionRowFactory.build(symbol="BAD", right="X"), "right"),
            (OptionPositionRowFactory.build(symbol="BAD", expiry="2026-13-40"), "expiry"),
            (OptionPositionRowFactory.build(symbol="BAD", strike="0"), "strike"),
            ("AAPL 100", "expected an object"),
        ],
        ids=[
            "bad-number",
            "float",
            "nan",
            "negative-avg-cost",
            "negative-market-price",
            "zero-multiplier",
            "bad-sec-type",
            "bad-con-id",
            "no-symbol",
            "blank-symbol",
            "no-quantity",
            "option-no-strike",
            "option-no-expiry",
            "option-no-right",
            "option-bad-right",
            "option-bad-expiry",
            "option-zero-strike",
            "not-an-object",
        ],
    )
    def test_malformed_row_is_skipped_and_named(self, broker_state, simulated_broker, caplog, bad_row, problem):
        good_before = StockPositionRowFactory(symbol="AAPL")
        good_after = OptionPositionRowFactory(symbol="QQQ")
        broker_state.write(_state_with(positions=[good_before, bad_row, good_after]))

        with caplog.at_level(logging.WARNING, logger="core.brokers.simulated"):
            fetched = simulated_broker.positions(ACCOUNT)

        assert [p.instrument.symbol for p in fetched.items] == ["AAPL", "QQQ"]
        (warning,) = fetched.warnings
        assert f"accounts ({ACCOUNT}).positions[1]" in warning
        assert problem in warning
        assert warning in caplog.text

    def test_unknown_account(self, broker_state, simulated_broker):
        with pytest.raises(BrokerError, match="DU0000000"):
            simulated_broker.positions("DU0000000")

    def test_account_without_positions(self, broker_state, simulated_broker):
        broker_state.write(BrokerStateFactory(accounts=[{"account_id": ACCOUNT}]))

        fetched = simulated_broker.positions(ACCOUNT)

        assert fetched.items == ()
        assert fetched.warnings == ()


# --- executions -----------------------------------------------------------------------------------
class TestExecutions:
    def test_example_execution(self, broker_state, simulated_broker):
        fetched = simulated_broker.executions(EXAMPLE_ACCOUNT_ID)

        (execution,) = fetched.items
        assert fetched.warnings == ()
        assert execution.account_id == EXAMPLE_ACCOUNT_ID
        assert execution.exec_id == "0000e0d5.6553a1b2.01.01"
        assert execution.order_id == 12
        assert execution.perm_id == 987654
        assert execution.instrument.symbol == "AAPL"
        assert execution.instrument.con_id == 265598
        assert execution.side == "BUY"
        assert execution.quantity == Decimal("100")
        assert execution.price == Decimal("150.25")
        assert execution.commission == Decimal("1.00")
        assert execution.executed_at == datetime(2026, 11, 20, 14, 32, 15, tzinfo=UTC)
        assert execution.executed_at.utcoffset().total_seconds() == 0
        assert execution.exchange == "ISLAND"

    def test_buy_and_sell(self, broker_state, simulated_broker):
        rows = [ExecutionRowFactory(exec_id="e1", side="BUY"), ExecutionRowFactory(exec_id="e2", side="SELL")]
        broker_state.write(_state_with(executions=rows))

        fetched = simulated_broker.executions(ACCOUNT)

        assert [(e.exec_id, e.side) for e in fetched.items] == [("e1", "BUY"), ("e2", "SELL")]

    @pytest.mark.parametrize("side", ["BOT", "SLD", "SHORT", "", None])
    def test_other_sides_are_refused(self, broker_state, simulated_broker, side):
        broker_state.write(
            _state_with(executions=[ExecutionRowFactory(exec_id="good"), ExecutionRowFactory(exec_id="bad", side=side)])
        )

        fetched = simulated_broker.executions(ACCOUNT)

        assert [e.exec_id for e in fetched.items] == ["good"]
        (warning,) = fetched.warnings
        assert "executions[1] (bad)" in warning
        assert "side" in warning

    def test_commission_is_optional_and_arrives_later(self, broker_state, simulated_broker):
        row = ExecutionRowFactory(exec_id="late-commission")
        del row["commission"]
        broker_state.write(_state_with(executions=[row]))

        (before,) = simulated_broker.executions(ACCOUNT).items
        with broker_state.edit() as state:
            broker_state.account(state, ACCOUNT)["executions"][0]["commission"] = "0.35"
        (after,) = simulated_broker.executions(ACCOUNT).items

        assert before.commission is None
        assert after.exec_id == before.exec_id == "late-commission"
        assert after.commission == Decimal("0.35")

    def test_time_with_an_offset_becomes_utc(self, broker_state, simulated_broker):
        broker_state.write(_state_with(executions=[ExecutionRowFactory(time="2026-11-20T09:32:15-05:00")]))

        (execution,) = simulated_broker.executions(ACCOUNT).items

        assert execution.executed_at == datetime(2026, 11, 20, 14, 32, 15, tzinfo=UTC)
        assert execution.executed_at.tzinfo == UTC

    @pytest.mark.parametrize(
        ("time", "problem"),
        [("2026-11-20T14:32:15", "no zone"), ("20 Nov 2026", "ISO 8601"), (None, "missing time")],
        ids=["naive", "not-iso", "missing"],
    )
    def test_time_without_a_zone_is_refused(self, broker_state, simulated_broker, time, problem):
        broker_state.write(
            _state_with(executions=[ExecutionRowFactory(exec_id="bad", time=time), ExecutionRowFactory(exec_id="good")])
        )

        fetched = simulated_broker.executions(ACCOUNT)

        assert [e.exec_id for e in fetched.items] == ["good"]
        (warning,) = fetched.warnings
        assert "executions[0] (bad)" in warning
        assert problem in warning

    @pytest.mark.parametrize(
        ("overrides", "problem"),
        [
            ({"exec_id": None}, "missing exec_id"),
            ({"quantity": "-100"}, "quantity"),
            ({"quantity": "0"}, "quantity"),
            ({"price": "-1"}, "price"),
            ({"price": 150.25}, "float"),
            ({"commission": "one dollar"}, "commission"),
            ({"symbol": None}, "missing symbol"),
        ],
        ids=[
            "no-exec-id",
            "negative-quantity",
            "zero-quantity",
            "negative-price",
            "float-price",
            "bad-commission",
            "no-symbol",
        ],
    )
    def test_malformed_execution_is_skipped(self, broker_state, simulated_broker, overrides, problem):
        broker_state.write(
            _state_with(executions=[ExecutionRowFactory(exec_id="good"), ExecutionRowFactory(**overrides)])
        )

        fetched = simulated_broker.executions(ACCOUNT)

        assert [e.exec_id for e in fetched.items] == ["good"]
        (warning,) = fetched.warnings
        assert "executions[1]" in warning
        assert problem in warning

    def test_since_filters_by_execution_time(self, broker_state, simulated_broker):
        broker_state.write(
            _state_with(
                executions=[
                    ExecutionRowFactory(exec_id="old", time="2026-11-19T15:00:00Z"),
                    ExecutionRowFactory(exec_id="edge", time="2026-11-20T15:00:00Z"),
                    ExecutionRowFactory(exec_id="new", time="2026-11-20T16:00:00Z"),
                ]
            )
        )

        fetched = simulated_broker.executions(ACCOUNT, since=datetime(2026, 11, 20, 15, tzinfo=UTC))

        assert [e.exec_id for e in fetched.items] == ["edge", "new"]

    def test_unknown_account(self, broker_state, simulated_broker):
        with pytest.raises(BrokerError, match="DU0000000"):
            simulated_broker.executions("DU0000000")


# --- cash flows -----------------------------------------------------------------------------------
class TestCashFlows:
    def test_deposits_and_withdrawals_have_positive_amounts(self, broker_state, simulated_broker):
        broker_state.write(
            _state_with(
                cash_flows=[
                    CashFlowRowFactory(id="cf-1", kind="DEPOSIT", amount="5000.00", time="2026-11-02T15:00:00Z"),
                    CashFlowRowFactory(id="cf-2", kind="WITHDRAWAL", amount="1200.50", time="2026-11-09T15:00:00Z"),
                ]
            )
        )

        fetched = simulated_broker.cash_flows(ACCOUNT)

        assert fetched.warnings == ()
        assert [(c.flow_id, c.kind, c.amount, c.at) for c in fetched.items] == [
            ("cf-1", "DEPOSIT", Decimal("5000.00"), datetime(2026, 11, 2, 15, tzinfo=UTC)),
            ("cf-2", "WITHDRAWAL", Decimal("1200.50"), datetime(2026, 11, 9, 15, tzinfo=UTC)),
        ]
        assert {c.account_id for c in fetched.items} == {ACCOUNT}

    @pytest.mark.parametrize(
        ("overrides", "problem"),
        [
            ({"amount": "-500.00"}, "amount"),
            ({"amount": "0"}, "amount"),
            ({"kind": "TRANSFER"}, "kind"),
            ({"id": None}, "missing id"),
            ({"time": "2026-11-02"}, "no zone"),
            ({"amount": 500.0}, "float"),
        ],
        ids=["negative", "zero", "bad-kind", "no-id", "naive-time", "float"],
    )
    def test_malformed_cash_flow_is_skipped(self, broker_state, simulated_broker, overrides, problem):
        broker_state.write(_state_with(cash_flows=[CashFlowRowFactory(**overrides), CashFlowRowFactory(id="good")]))

        fetched = simulated_broker.cash_flows(ACCOUNT)

        assert [c.flow_id for c in fetched.items] == ["good"]
        (warning,) = fetched.warnings
        assert "cash_flows[0]" in warning
        assert problem in warning

    def test_unknown_account(self, broker_state, simulated_broker):
        with pytest.raises(BrokerError, match="DU0000000"):
            simulated_broker.cash_flows("DU0000000")


# --- bars -----------------------------------------------------------------------------------------
def _bars_state() -> dict:
    return BrokerStateFactory(
        bars={
            "AAPL": {
                "1h": [
                    BarRowFactory(time="2026-11-19T16:00:00Z", close="152"),
                    BarRowFactory(time="2026-11-19T14:00:00Z", close="150"),
                    BarRowFactory(time="2026-11-19T15:00:00Z", close="151"),
                ],
                "1d": [BarRowFactory(time="2026-11-19T00:00:00Z", close="155.10")],
            },
            "MSFT": {
                "1h": [BarRowFactory(time="2026-11-19T14:00:00Z", open="409", high="411", low="408", close="410")]
            },
        }
    )


class TestBars:
    def test_example_bar(self, broker_state, simulated_broker):
        fetched = simulated_broker.bars("AAPL", "1d")

        (bar,) = fetched.items
        assert (bar.symbol, bar.bar_size) == ("AAPL", "1d")
        assert bar.start == datetime(2026, 11, 19, tzinfo=UTC)
        assert (bar.open, bar.high, bar.low, bar.close) == (
            Decimal("150.00"),
            Decimal("156.00"),
            Decimal("149.50"),
            Decimal("155.10"),
        )
        assert bar.volume == Decimal("48211000")

    def test_by_symbol_and_bar_size_sorted_by_time(self, broker_state, simulated_broker):
        broker_state.write(_bars_state())

        fetched = simulated_broker.bars("AAPL", "1h")

        assert [b.close for b in fetched.items] == [Decimal("150"), Decimal("151"), Decimal("152")]
        assert {(b.symbol, b.bar_size) for b in fetched.items} == {("AAPL", "1h")}
        assert [b.close for b in simulated_broker.bars("MSFT", "1h").items] == [Decimal("410")]

    def test_symbol_is_case_insensitive(self, broker_state, simulated_broker):
        broker_state.write(_bars_state())

        assert len(simulated_broker.bars("aapl", "1h").items) == 3

    def test_start_inclusive_end_exclusive(self, broker_state, simulated_broker):
        broker_state.write(_bars_state())

        fetched = simulated_broker.bars(
            "AAPL", "1h", start=datetime(2026, 11, 19, 15, tzinfo=UTC), end=datetime(2026, 11, 19, 16, tzinfo=UTC)
        )

        assert [b.start for b in fetched.items] == [datetime(2026, 11, 19, 15, tzinfo=UTC)]

    def test_start_only_and_end_only(self, broker_state, simulated_broker):
        broker_state.write(_bars_state())

        after = simulated_broker.bars("AAPL", "1h", start=datetime(2026, 11, 19, 15, tzinfo=UTC))
        before = simulated_broker.bars("AAPL", "1h", end=datetime(2026, 11, 19, 15, tzinfo=UTC))

        assert [b.close for b in after.items] == [Decimal("151"), Decimal("152")]
        assert [b.close for b in before.items] == [Decimal("150")]

    @pytest.mark.parametrize("bar_size", ["2h", "1D", "day", ""])
    def test_invalid_bar_size(self, broker_state, simulated_broker, bar_size):
        with pytest.raises(BrokerError, match="bar size"):
            simulated_broker.bars("AAPL", bar_size)

    @pytest.mark.parametrize("bar_size", ["1m", "5m", "1h", "1d"])
    def test_every_valid_bar_size(self, broker_state, simulated_broker, bar_size):
        broker_state.write(BrokerStateFactory(bars={"AAPL": {bar_size: [BarRowFactory()]}}))

        (bar,) = simulated_broker.bars("AAPL", bar_size).items

        assert bar.bar_size == bar_size

    @pytest.mark.parametrize(
        ("overrides", "problem"),
        [
            ({"high": "149.00", "low": "149.50"}, "below low"),
            ({"close": "-1"}, "close"),
            ({"volume": "lots"}, "volume"),
            ({"open": 150.0}, "float"),
            ({"time": "2026-11-19T15:00:00"}, "no zone"),
        ],
        ids=["high-below-low", "negative-close", "bad-volume", "float", "naive-time"],
    )
    def test_malformed_bar_is_skipped(self, broker_state, simulated_broker, overrides, problem):
        broker_state.write(
            BrokerStateFactory(
                bars={"AAPL": {"1h": [BarRowFactory(time="2026-11-19T14:00:00Z"), BarRowFactory(**overrides)]}}
            )
        )

        fetched = simulated_broker.bars("AAPL", "1h")

        assert [b.start for b in fetched.items] == [datetime(2026, 11, 19, 14, tzinfo=UTC)]
        (warning,) = fetched.warnings
        assert "bars.AAPL.1h[1]" in warning
        assert problem in warning

    def test_unknown_symbol_has_no_bars(self, broker_state, simulated_broker):
        fetched = simulated_broker.bars("ZZZZ", "1d")

        assert fetched.items == ()
        assert fetched.warnings == ()

    @pytest.mark.parametrize("section", ["bars", "quotes"])
    def test_malformed_section_does_not_crash_the_adapter(self, broker_state, simulated_broker, section):
        # Only the two documented exceptions may leave the boundary; a bad section is not an AttributeError.
        with broker_state.edit() as state:
            state[section] = [{"symbol": "AAPL"}]

        try:
            result = simulated_broker.bars("AAPL", "1d") if section == "bars" else simulated_broker.quote("AAPL")
        except (BrokerError, BrokerUnavailable):
            return
        assert not (result.items if section == "bars" else result)


# --- quotes ---------------------------------------------------------------------------------------
class TestQuotes:
    def test_example_quote(self, broker_state, simulated_broker):
        quote = simulated_broker.quote("AAPL")

        assert quote.symbol == "AAPL"
        assert (quote.bid, quote.ask, quote.last) == (Decimal("155.05"), Decimal("155.12"), Decimal("155.10"))
        assert quote.at == datetime(2026, 11, 20, 20, 59, 59, tzinfo=UTC)

    def test_unknown_symbol_has_no_quote(self, broker_state, simulated_broker):
        assert simulated_broker.quote("ZZZZ") is None

    def test_symbol_is_case_insensitive(self, broker_state, simulated_broker):
        assert simulated_broker.quote("aapl").last == Decimal("155.10")

    def test_partial_quote(self, broker_state, simulated_broker):
        broker_state.write(BrokerStateFactory(quotes={"MSFT": {"last": "410.00"}}))

        quote = simulated_broker.quote("MSFT")

        assert (quote.bid, quote.ask, quote.last, quote.at) == (None, None, Decimal("410.00"), None)

    @pytest.mark.parametrize(
        "overrides",
        [{"bid": 155.05}, {"ask": "-1"}, {"last": "n/a"}, {"time": "2026-11-20T20:59:59"}],
        ids=["float", "negative", "garbage", "naive-time"],
    )
    def test_malformed_quote_is_skipped_with_a_warning(self, broker_state, simulated_broker, caplog, overrides):
        broker_state.write(BrokerStateFactory(quotes={"AAPL": QuoteRowFactory(**overrides)}))

        with caplog.at_level(logging.WARNING, logger="core.brokers.simulated"):
            quote = simulated_broker.quote("AAPL")

        assert quote is None
        assert "quotes.AAPL" in caplog.text


# --- choosing the broker --------------------------------------------------------------------------
class TestGetBroker:
    def test_simulated_by_default(self, settings):
        broker = get_broker()

        assert isinstance(broker, SimulatedBroker)
        assert isinstance(broker, Broker)
        assert broker.name == "simulated"
        assert str(broker.path) == settings.BROKER_STATE_FILE

    def test_reads_the_configured_state_file(self, broker_state):
        assert [a.account_id for a in get_broker().accounts().items] == [EXAMPLE_ACCOUNT_ID]

    def test_setting_is_case_insensitive(self, settings):
        settings.BROKER = "Simulated"

        assert isinstance(get_broker(), SimulatedBroker)

    @pytest.mark.parametrize("value", ["alpaca", "ib", "paper"])
    def test_unknown_broker_is_refused(self, settings, value):
        settings.BROKER = value

        with pytest.raises(ValueError, match="BROKER="):
            get_broker()
