"""The Flex parser of the broker boundary: IBKR's Flex quirks normalised into boundary types.

What the import writes is tested in tests/trading/test_flex_import.py.
"""

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum

import pytest
from ibflex import parser

from core.brokers.base import BrokerCashFlow, BrokerExecution
from core.brokers.contracts import InstrumentSpec
from core.brokers.flex import FlexReportError, flex_parse
from tests.flex_reports import (
    ACCOUNT,
    ACTIVITY,
    BUY_1,
    BUY_2,
    CALL,
    FIXTURES,
    PUT_EXPIRY,
    PUT_SALE,
    SELL,
    flex_xml,
    trade_row,
)


def test_parse_converts_trades_to_the_api_conventions():
    data = flex_parse(path_or_bytes=ACTIVITY)
    rows = data.accounts[ACCOUNT]
    by_id = {e.exec_id: e for e in rows.executions}
    assert [e.exec_id for e in rows.executions] == [BUY_1, PUT_SALE, BUY_2, CALL, SELL, PUT_EXPIRY]  # time order

    sell = by_id[SELL]
    assert (sell.side, sell.quantity, sell.price) == ("SELL", Decimal("80"), Decimal("25"))
    assert sell.commission == Decimal("1")  # Flex says -1: money paid; the API's convention is positive
    assert sell.executed_at == datetime(2025, 10, 10, 18, 45, 12, tzinfo=UTC)  # 14:45:12 New York (EDT)
    assert sell.settlement_date == "2025-10-15"
    assert sell.perm_id == 4102345603 and sell.order_id is None  # ibOrderID is the API's permId
    assert sell.instrument.con_id == 443286233 and sell.instrument.key == "STK:SOFI:USD"
    assert sell.raw["tradeID"] == "7012345603" and sell.raw["quantity"] == "-80" and sell.raw["buySell"] == "SELL"
    json.dumps(sell.raw)  # stored in a JSONField as it is

    call = by_id[CALL].instrument
    assert (call.symbol, call.sec_type, call.multiplier) == ("SPY", "OPT", Decimal("100"))
    assert (call.expiry, call.strike, call.right) == (date(2025, 12, 19), Decimal("670"), "C")
    assert by_id[CALL].settlement_date is None  # no settleDateTarget: the calendar decides


def test_parse_skips_what_is_not_a_fill_and_counts_it():
    rows = flex_parse(path_or_bytes=ACTIVITY).accounts[ACCOUNT]
    assert rows.skipped_trades == 0 and rows.warnings == []
    assert rows.summary_rows == 1  # the <Order> row
    assert rows.ignored_cash_transactions == {"Dividends": 1, "Withholding Tax": 1}
    assert [(f.flow_id, f.kind, f.amount) for f in rows.cash_flows] == [
        ("flex-29876543201", "DEPOSIT", Decimal("10000")),
        ("flex-29876543202", "WITHDRAWAL", Decimal("2500")),
    ]


def test_an_expired_option_is_a_fill_at_zero_keyed_as_the_sync_keys_it():
    """IBKR reports an expiry only as a Flex book entry (no ibExecID, notes "Ep"); the API never does."""
    expiry = {e.exec_id: e for e in flex_parse(path_or_bytes=ACTIVITY).executions}[PUT_EXPIRY]
    assert (expiry.side, expiry.quantity, expiry.price, expiry.commission) == ("BUY", Decimal(1), Decimal(0), 0)
    assert expiry.executed_at == datetime(2025, 10, 17, 20, 20, tzinfo=UTC)  # 16:20 New York
    assert expiry.perm_id is None and expiry.instrument.key == "OPT:SPY:USD:20251017:640:P:100"


def test_book_entries_that_are_no_settlement_are_skipped_with_a_reason():
    unpaired = trade_row(ibExecID="", transactionType="BookTrade", notes="A", tradeID="7000000002")
    other = trade_row(ibExecID="", transactionType="BookTrade", notes="", tradeID="7000000003")
    stock_expiry = trade_row(ibExecID="", notes="Ep", tradeID="", transactionID="")
    rows = flex_parse(path_or_bytes=flex_xml(unpaired, other, stock_expiry)).accounts[ACCOUNT]
    assert rows.executions == [] and rows.skipped_trades == 3
    assert "no ibExecID" in rows.warnings[0]
    assert "assigned delivery with no option row" in rows.warnings[1]
    assert "not a derivative" in rows.warnings[2]


def test_option_without_multiplier_is_100_and_cancellations_are_not_applied():
    option = trade_row(
        assetCategory="OPT",
        symbol="SPY   251219P00600000",
        underlyingSymbol="SPY",
        conid="812345600",
        multiplier="",
        strike="600",
        expiry="20251219",
        putCall="P",
    )
    cancel = trade_row(buySell="BUY (Ca.)", transactionType="TradeCancel", ibExecID="0000e1a7.00000009.01.01")
    rows = flex_parse(path_or_bytes=flex_xml(option, cancel)).accounts[ACCOUNT]
    (execution,) = rows.executions
    assert execution.instrument.multiplier == Decimal(100) and execution.instrument.right == "P"
    assert rows.skipped_trades == 1
    assert "cancels execution 0000e1a7.00000009.01.01; not applied" in rows.warnings[0]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("20250115;093000", datetime(2025, 1, 15, 14, 30, tzinfo=UTC)),  # EST, UTC-5
        ("20250715;093000", datetime(2025, 7, 15, 13, 30, tzinfo=UTC)),  # EDT, UTC-4
    ],
)
def test_naive_flex_times_are_read_in_the_exchange_time_zone(when, expected):
    (execution,) = flex_parse(path_or_bytes=flex_xml(trade_row(dateTime=when))).executions
    assert execution.executed_at == expected


def test_overlapping_statements_give_each_fill_once():
    data = flex_parse(path_or_bytes=flex_xml(trade_row(), statements=2))
    assert len(data.executions) == 1 and data.accounts[ACCOUNT].warnings == []


def test_attributes_ibflex_does_not_know_are_reported_once():
    data = flex_parse(path_or_bytes=flex_xml(trade_row(), trade_row(ibExecID="x.2", someNewField="1")))
    assert data.warnings == ["ibflex: Trade has no attribute 'someNewField'; skipping"]
    assert len(data.executions) == 2


def test_a_section_the_import_does_not_use_cannot_fail_it():
    position = b'<OpenPositions><OpenPosition accountId="DU1234567" currency="ZZZ" markPrice="n/a" /></OpenPositions>'
    xml = flex_xml(trade_row()).replace(b"<Trades>", position + b"<Trades>")
    with pytest.raises(parser.FlexParserError):
        parser.parse(xml)  # ibflex alone refuses the whole file
    assert len(flex_parse(path_or_bytes=xml).executions) == 1


def _values(value) -> Iterator:
    """Every value in what the parser returns, dataclasses and containers opened."""
    yield value
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _values(getattr(value, f.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _values(key)
            yield from _values(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _values(item)


def test_only_boundary_types_leave_the_parser():
    data = flex_parse(path_or_bytes=ACTIVITY)
    values = list(_values(data))
    assert not [v for v in values if type(v).__module__.startswith("ibflex")]
    assert not [v for v in values if isinstance(v, Enum) and not isinstance(v, str)]  # SecType, OptionRight are str
    rows = data.accounts[ACCOUNT]
    assert all(type(e) is BrokerExecution and type(e.instrument) is InstrumentSpec for e in rows.executions)
    assert all(type(f) is BrokerCashFlow for f in rows.cash_flows)
    assert {type(e.side) for e in rows.executions} == {str} and {type(f.kind) for f in rows.cash_flows} == {str}


# --- what is refused ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("flex_not_xml.xml", "not an XML file"),
        ("flex_web_service_error.xml", "a Flex web service response, not a report: 1019 Statement generation"),
        ("flex_bad_number.xml", "<Trade accountId=DU1234567, tradeID=7012345602"),
        ("flex_bad_number.xml", "Trade.tradePrice - Can't convert '24.O0'"),
        ("no_such_file.xml", "cannot read the file: No such file or directory"),
    ],
)
def test_a_bad_file_raises(name, problem):
    path = FIXTURES / name
    with pytest.raises(FlexReportError) as error:
        flex_parse(path_or_bytes=path)
    assert str(error.value).startswith(f"{path}: ")
    assert problem in str(error.value)


def test_xml_that_is_not_a_flex_report_is_refused():
    xml = b'<?xml version="1.0"?><TradeLog><Trade symbol="SOFI"/></TradeLog>'
    with pytest.raises(FlexReportError, match=r"^<bytes>: not a Flex report: the root element is <TradeLog>"):
        flex_parse(path_or_bytes=xml)
