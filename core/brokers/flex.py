"""The broker boundary's Flex parser: an IBKR Flex report (XML, parsed by ibflex) into fills and
deposits/withdrawals in boundary types.

``reqExecutions`` reaches only recent days; an Activity Flex query with the Trades (executions) and
Cash Transactions sections reaches the whole history. Flex ``Trade.ibExecID`` is the API's
``execId``, so a fill seen by both is one fill (namespace ``ibkr``), and Flex adds what the API
lacks: the broker's settlement date (``settleDateTarget``), which the ledger prefers.

Reading the file is all or nothing: a file that is missing, not XML, not a Flex report, or has a trade
or deposit ibflex cannot convert raises ``FlexReportError``. A row ibflex did convert but that cannot be
used (a book entry, a time that overflows) or would not fit where it is stored (a 300-character symbol,
a quantity beyond the columns: core/brokers/validation.py) is skipped with a warning naming the row and
the field; the rest of the file is used.

What IBKR writes, and what crosses the broker boundary instead:

- Times have no zone. IBKR writes them in the report's zone, US/Eastern unless the query says
  otherwise (ibflex also drops any offset it finds), so a naive time is read in
  ``settings.EXCHANGE_TIME_ZONE`` and given in UTC.
- ``ibCommission`` is negative (money paid); it is given positive, as the API's CommissionReport
  has it. A sell's ``quantity`` is negative; the side says the direction.
- ``ibOrderID`` is IBKR's account-wide order id, the API's ``permId``; the API's ``orderId`` is
  the placing client's own number, which Flex does not know.
- Derivatives are named by ``underlyingSymbol`` (``SPY``, as the API's ``Contract.symbol``), not by
  the OCC or local symbol (``SPY   251219C00670000``), so both sources give one instrument.
- An option's expiry (notes ``Ep``), assignment (``A``) and exercise (``Ex``, ``AEx``, ``MEx``) are
  book entries without ``ibExecID``: the option closed at 0 and, for an assignment or exercise, a stock
  row at the strike. They are given the keys the position sync gives the same event when it infers it
  (``core/brokers/expiries.py``), the stock row paired with its option (same account, underlying, code
  and trade date; price the strike; quantity the contracts x multiplier). Other book entries are
  skipped with a warning.

Nothing ibflex returns leaves this module: callers get ``BrokerExecution``, ``BrokerCashFlow`` (with
``InstrumentSpec``), counts and warnings. ``BrokerExecution.raw`` is the row as IBKR sent it, in JSON
primitives, as the API adapter's is.
"""

import dataclasses
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from ibflex import Types, enums, parser

from core.brokers import validation
from core.brokers.base import BrokerCashFlow, BrokerExecution
from core.brokers.contracts import InstrumentSpec, OptionRight, SecType
from core.brokers.expiries import SettlementLeg, settlement_exec_id
from core.brokers.validation import ROW_ERRORS, RowRejected, shown

EXERCISES = frozenset({enums.Code.EXERCISE, enums.Code.AUTOEXERCISE, enums.Code.MANUALEXERCISE})
IMPORTED_SECTIONS = frozenset({"Trades", "CashTransactions"})
# "Deposits/Withdrawals" is today's spelling; ibflex's enum still has the older one.
DEPOSIT_TYPES = frozenset({"Deposits/Withdrawals", enums.CashAction.DEPOSITWITHDRAW.value})
SEC_TYPES = {
    enums.AssetClass.STOCK: SecType.STOCK,
    enums.AssetClass.OPTION: SecType.OPTION,
    enums.AssetClass.FUTURE: SecType.FUTURE,
    enums.AssetClass.FUTUREOPTION: SecType.FUTURE_OPTION,
    enums.AssetClass.CASH: SecType.CASH,
    enums.AssetClass.BOND: SecType.BOND,
    enums.AssetClass.BILL: SecType.BOND,
    enums.AssetClass.CFD: SecType.CFD,
    enums.AssetClass.FOREXCFD: SecType.CFD,
    enums.AssetClass.WARRANT: SecType.WARRANT,
    enums.AssetClass.MUTUALFUND: SecType.FUND,
}
OPTIONS = frozenset({SecType.OPTION, SecType.FUTURE_OPTION})
DERIVATIVES = OPTIONS | {SecType.FUTURE}
SIDES = {enums.BuySell.BUY: "BUY", enums.BuySell.SELL: "SELL"}
CANCELLATIONS = frozenset({enums.BuySell.CANCELBUY, enums.BuySell.CANCELSELL})
RIGHTS = {enums.PutCall.CALL: OptionRight.CALL, enums.PutCall.PUT: OptionRight.PUT}
DEFAULT_OPTION_MULTIPLIER = Decimal(100)


class FlexReportError(ValueError):
    """The file is not a Flex report this parser can read (unreadable, not XML, not a Flex report, a bad field)."""


class _SkipRow(RowRejected):  # control flow: the row is skipped with this warning
    pass


@dataclass
class FlexAccountRows:
    """What the file holds for one account, already in broker-boundary types."""

    account_id: str
    executions: list[BrokerExecution] = field(default_factory=list)
    cash_flows: list[BrokerCashFlow] = field(default_factory=list)
    skipped_trades: int = 0  # trade rows skipped with a warning
    summary_rows: int = 0  # order, closed-lot and summary rows: not fills
    ignored_cash_transactions: Counter[str] = field(default_factory=Counter)  # by type: dividends, interest, fees
    warnings: list[str] = field(default_factory=list)
    exec_ids: dict[str, BrokerExecution] = field(default_factory=dict, repr=False)
    flow_ids: set[str] = field(default_factory=set, repr=False)


@dataclass
class FlexStatementData:
    source: str
    accounts: dict[str, FlexAccountRows]  # by account id, sorted
    warnings: list[str] = field(default_factory=list)  # about the file, not one account

    @property
    def executions(self) -> list[BrokerExecution]:
        return [row for rows in self.accounts.values() for row in rows.executions]

    @property
    def cash_flows(self) -> list[BrokerCashFlow]:
        return [row for rows in self.accounts.values() for row in rows.cash_flows]


# --- parsing ------------------------------------------------------------------------------------
def flex_parse(*, path_or_bytes: str | Path | bytes) -> FlexStatementData:
    """Parse a Flex report into executions and cash flows per account; raise FlexReportError when it is bad.

    Only the Trades and Cash Transactions sections are given to ibflex: a section the parser does
    not use cannot fail it. Rows that are not fills (orders, closed lots, summaries) and cash
    transactions other than deposits and withdrawals are counted, not parsed.
    """
    source, content = _read(path_or_bytes)
    root = _xml_root(source, content)
    data = FlexStatementData(source=source, accounts={})
    _prune(root, data)
    response = _ibflex_parse(source, root, data)
    zone = ZoneInfo(settings.EXCHANGE_TIME_ZONE)
    settlements: list[tuple[Types.Trade, str, SettlementLeg]] = []
    for statement in response.FlexStatements:
        if statement.accountId:
            _rows_of(data, statement.accountId)
        for trade in statement.Trades:
            if isinstance(trade, Types.Trade):
                leg = _settlement_leg(trade)
                if leg is not None:
                    settlements.append((trade, trade.accountId or statement.accountId, leg))
                else:
                    _add_trade(data, trade, statement.accountId, zone)
        for cash in statement.CashTransactions:
            _add_cash_transaction(data, cash, statement.accountId, zone)
    _add_settlements(data, settlements, zone)
    data.accounts = dict(sorted(data.accounts.items()))
    for rows in data.accounts.values():
        rows.executions.sort(key=lambda e: (e.executed_at, e.exec_id))
    return data


def _read(path_or_bytes: str | Path | bytes) -> tuple[str, bytes]:
    if isinstance(path_or_bytes, bytes):
        return "<bytes>", path_or_bytes
    source = str(path_or_bytes)
    try:
        return source, Path(path_or_bytes).read_bytes()
    except OSError as exc:
        raise FlexReportError(f"{source}: cannot read the file: {exc.strerror or exc}") from exc


def _xml_root(source: str, content: bytes) -> ET.Element:
    try:
        # A report staff chose to import; expat (>= 2.4.1) refuses entity-expansion bombs and
        # ElementTree resolves no external entities.
        root = ET.fromstring(content)  # noqa: S314
    except ET.ParseError as exc:
        raise FlexReportError(f"{source}: not an XML file ({exc})") from exc
    if root.tag == "FlexStatementResponse":  # the web service's answer to a request, or its error
        error = " ".join(filter(None, (root.findtext("ErrorCode"), root.findtext("ErrorMessage"))))
        raise FlexReportError(f"{source}: a Flex web service response, not a report" + (f": {error}" if error else ""))
    if root.tag != "FlexQueryResponse":
        raise FlexReportError(f"{source}: not a Flex report: the root element is <{root.tag}>, not <FlexQueryResponse>")
    return root


def _prune(root: ET.Element, data: FlexStatementData) -> None:
    """Drop what the parser does not use before ibflex sees it, counting the rows dropped."""
    for statement in root.iter("FlexStatement"):
        statement_account = statement.get("accountId") or ""
        if statement.find("TradeConfirms") is not None and statement.find("Trades") is None:
            data.warnings.append(
                f"statement of {statement_account}: a Trade Confirmation report; fills are imported from "
                "the Trades (executions) section of an Activity Flex query"
            )
        for section in list(statement):
            if section.tag not in IMPORTED_SECTIONS:
                statement.remove(section)
                continue
            for row in list(section):
                account_id = row.get("accountId") or statement_account
                if section.tag == "Trades":
                    detail = (row.get("levelOfDetail") or "EXECUTION").upper()
                    if row.tag != "Trade" or detail != "EXECUTION":
                        section.remove(row)
                        _rows_of(data, account_id).summary_rows += 1
                elif row.tag != "CashTransaction" or (row.get("levelOfDetail") or "").upper() == "SUMMARY":
                    section.remove(row)
                    _rows_of(data, account_id).summary_rows += 1
                elif (row.get("type") or "") not in DEPOSIT_TYPES:
                    section.remove(row)
                    _rows_of(data, account_id).ignored_cash_transactions[row.get("type") or "(no type)"] += 1


def _ibflex_parse(source: str, root: ET.Element, data: FlexStatementData) -> Types.FlexQueryResponse:
    # ibflex reports attributes and elements it does not know with warnings.warn, and goes on.
    # catch_warnings is process-wide state: fine in a command or a worker task, not in threads.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            response = parser.parse(ET.tostring(root))
        except Exception as exc:
            raise FlexReportError(f"{source}: not a valid Flex report: {_failing_row(root)}{exc}") from exc
    for warning in caught:
        message = f"ibflex: {warning.message}"
        if "ibflex" in warning.filename and message not in data.warnings:
            data.warnings.append(message)
    return response


def _failing_row(root: ET.Element) -> str:
    """Name the row ibflex could not convert: its own message names only the field."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sections = (section for statement in root.iter("FlexStatement") for section in statement)
        for section in sections:
            for row in section:
                try:
                    parser.parse_data_element(row)
                except Exception:
                    keys = ("accountId", "tradeID", "transactionID", "ibExecID", "symbol", "dateTime")
                    label = ", ".join(f"{k}={row.get(k)}" for k in keys if row.get(k))
                    return f"<{row.tag} {label}>: "
    return ""


def _rows_of(data: FlexStatementData, account_id: str) -> FlexAccountRows:
    rows = data.accounts.get(account_id)
    if rows is None:
        rows = data.accounts[account_id] = FlexAccountRows(account_id=account_id)
    return rows


def _add_trade(data: FlexStatementData, trade: Types.Trade, statement_account: str, zone: ZoneInfo) -> None:
    rows = _rows_of(data, trade.accountId or statement_account)
    try:
        execution = validation.checked_execution(_execution(trade, rows.account_id, zone))
    except ROW_ERRORS as exc:
        rows.skipped_trades += 1
        rows.warnings.append(f"{_trade_label(trade)}: {validation.problem(exc)}; skipped")
        return
    _keep(rows, execution, trade)


def _keep(rows: FlexAccountRows, execution: BrokerExecution, trade: Types.Trade) -> None:
    known = rows.exec_ids.get(execution.exec_id)
    if known is None:
        rows.exec_ids[execution.exec_id] = execution
        rows.executions.append(execution)
    elif dataclasses.replace(known, raw={}) != dataclasses.replace(execution, raw={}):
        # Overlapping statements repeat a fill as it was; a repeat that differs is worth a look.
        rows.warnings.append(
            f"{_trade_label(trade)}: execution {execution.exec_id} reported twice with different values; "
            "the first row kept"
        )


def _trade_label(trade: Types.Trade) -> str:
    when = trade.dateTime or trade.tradeDate
    parts = [f"trade {trade.tradeID or '(no tradeID)'}", trade.symbol or "", when.isoformat() if when else ""]
    return " ".join(" ".join(shown(p).split()) for p in parts if p)


def _exec_id(trade: Types.Trade) -> str:
    """The fill's key: Flex ibExecID is the API's execId. An option's expiry is a book entry with no
    ibExecID, and no API execution ever reports it: it closes the position at 0, so it is kept as a fill
    under a key of its own (the same on every import of the statement)."""
    exec_id = (trade.ibExecID or "").strip()
    if exec_id:
        return exec_id
    raise _SkipRow("no ibExecID (a cancellation, correction or other book entry)")


def _settlement_leg(trade: Types.Trade) -> SettlementLeg | None:
    """The leg of an option's end of life a trade row is, from its notes; None for any other row."""
    notes = set(trade.notes or ())
    if enums.Code.ASSIGNMENT in notes:
        return SettlementLeg.ASSIGNED
    if notes & EXERCISES:
        return SettlementLeg.EXERCISED
    if enums.Code.EXPIRED in notes:
        return SettlementLeg.EXPIRED
    return None


def _add_settlements(
    data: FlexStatementData, settlements: list[tuple[Types.Trade, str, SettlementLeg]], zone: ZoneInfo
) -> None:
    """Expiries, assignments and exercises under the keys the position sync gives them: the option rows
    first, then each delivered stock row under the key of the option it pairs with."""
    deliveries = []
    pending: list[tuple[str, Types.Trade, InstrumentSpec, SettlementLeg]] = []  # options that deliver
    for trade, account_id, leg in settlements:
        rows = _rows_of(data, account_id)
        sec_type = SEC_TYPES.get(trade.assetCategory)
        if sec_type not in DERIVATIVES:
            deliveries.append((trade, account_id, leg))
            continue
        try:
            spec = _instrument(trade)
            exec_id = settlement_exec_id(account_id=account_id, option_key=spec.key, leg=leg)
            execution = validation.checked_execution(_execution(trade, account_id, zone, exec_id=exec_id))
        except ROW_ERRORS as exc:
            rows.skipped_trades += 1
            rows.warnings.append(f"{_trade_label(trade)}: {validation.problem(exc)}; skipped")
            continue
        _keep(rows, execution, trade)
        if leg != SettlementLeg.EXPIRED and sec_type in OPTIONS:
            pending.append((account_id, trade, spec, leg))
    for trade, account_id, leg in deliveries:
        rows = _rows_of(data, account_id)
        try:
            if leg == SettlementLeg.EXPIRED:
                raise _SkipRow("an expiry of something that is not a derivative")
            paired = _paired_option(trade, account_id, leg, pending)
            if paired is None:
                raise _SkipRow(
                    f"a {leg.label.lower()} delivery with no option row of the same account, underlying, trade "
                    "date, strike and size in the file"
                )
            pending.remove(paired)
            exec_id = settlement_exec_id(account_id=account_id, option_key=paired[2].key, leg=SettlementLeg.DELIVERY)
            execution = validation.checked_execution(_execution(trade, account_id, zone, exec_id=exec_id))
        except ROW_ERRORS as exc:
            rows.skipped_trades += 1
            rows.warnings.append(f"{_trade_label(trade)}: {validation.problem(exc)}; skipped")
            continue
        _keep(rows, execution, trade)


def _paired_option(trade: Types.Trade, account_id: str, leg: SettlementLeg, pending: list) -> tuple | None:
    symbol = (trade.symbol or "").strip().upper()
    for candidate in pending:
        other_account, option, spec, option_leg = candidate
        if (other_account, option_leg, spec.symbol) != (account_id, leg, symbol):
            continue
        if option.tradeDate != trade.tradeDate or trade.tradePrice != spec.strike:
            continue
        if abs(option.quantity or 0) * spec.multiplier != abs(trade.quantity or 0):
            continue
        return candidate
    return None


def _execution(trade: Types.Trade, account_id: str, zone: ZoneInfo, *, exec_id: str | None = None) -> BrokerExecution:
    exec_id = exec_id or _exec_id(trade)
    if trade.buySell in CANCELLATIONS:
        raise _SkipRow(f"cancels execution {exec_id}; not applied: check that fill and correct it in the admin")
    side = SIDES.get(trade.buySell)
    if side is None:
        raise _SkipRow(f"buySell is {_text(trade.buySell)!r}, not BUY or SELL")
    if not trade.quantity:
        raise _SkipRow("no quantity")
    if trade.tradePrice is None or trade.tradePrice < 0:
        raise _SkipRow(f"tradePrice is {_text(trade.tradePrice)!r}")
    day = trade.tradeDate if trade.tradeTime is not None else None  # a date alone cannot order fills
    executed_at = _aware_utc(trade.dateTime, day, trade.tradeTime, zone, field="dateTime")
    if executed_at is None:
        raise _SkipRow("no dateTime (nor tradeDate and tradeTime)")
    return BrokerExecution(
        account_id=account_id,
        exec_id=exec_id,
        instrument=_instrument(trade),
        side=side,
        quantity=abs(trade.quantity),
        price=trade.tradePrice,
        executed_at=executed_at,
        commission=abs(trade.ibCommission) if trade.ibCommission is not None else None,
        commission_currency=(trade.ibCommissionCurrency or trade.currency or "USD").upper(),
        perm_id=_int(trade.ibOrderID),
        exchange=(trade.exchange or "").strip(),
        settlement_date=trade.settleDateTarget.isoformat() if trade.settleDateTarget else None,
        raw=_primitives(trade),
    )


def _instrument(trade: Types.Trade) -> InstrumentSpec:
    sec_type = SEC_TYPES.get(trade.assetCategory)
    if sec_type is None:
        raise _SkipRow(f"asset category {_text(trade.assetCategory)!r} is not one the ledger models")
    symbol = (trade.symbol or "").strip()
    if sec_type in DERIVATIVES:
        symbol = (trade.underlyingSymbol or "").strip() or symbol.split(" ")[0]
    elif sec_type == SecType.CASH:
        symbol = symbol.split(".")[0]  # EUR.USD: the API's Contract.symbol is EUR, currency USD
    if not symbol:
        raise _SkipRow("no symbol")
    multiplier = trade.multiplier if trade.multiplier and trade.multiplier > 0 else None
    if multiplier is None:
        multiplier = DEFAULT_OPTION_MULTIPLIER if sec_type == SecType.OPTION else Decimal(1)
    expiry, strike, right = None, None, ""
    if sec_type in DERIVATIVES:
        if trade.expiry is None:
            raise _SkipRow("a derivative without expiry")
        expiry = trade.expiry
    if sec_type in OPTIONS:
        if trade.strike is None or trade.strike <= 0 or trade.putCall not in RIGHTS:
            raise _SkipRow(f"an option without strike or putCall ({_text(trade.strike)}, {_text(trade.putCall)})")
        strike, right = trade.strike, RIGHTS[trade.putCall]
    return InstrumentSpec(
        symbol=symbol.upper(),
        sec_type=sec_type,
        currency=(trade.currency or "USD").upper(),
        con_id=_int(trade.conid),
        exchange=(trade.listingExchange or "").strip() or "SMART",
        multiplier=multiplier,
        expiry=expiry,
        strike=strike,
        right=right,
    )


def _add_cash_transaction(
    data: FlexStatementData, cash: Types.CashTransaction, statement_account: str, zone: ZoneInfo
) -> None:
    rows = _rows_of(data, cash.accountId or statement_account)
    label = " ".join(
        f"cash transaction {cash.transactionID or '(no transactionID)'} "
        f"({cash.description or 'deposit/withdrawal'})".split()
    )
    try:
        flow = validation.checked_cash_flow(_cash_flow(cash, rows.account_id, zone))
    except ROW_ERRORS as exc:
        rows.warnings.append(f"{shown(label, 120)}: {validation.problem(exc)}; skipped")
        return
    if flow.flow_id not in rows.flow_ids:
        rows.flow_ids.add(flow.flow_id)
        rows.cash_flows.append(flow)


def _cash_flow(cash: Types.CashTransaction, account_id: str, zone: ZoneInfo) -> BrokerCashFlow:
    if not cash.transactionID:
        raise _SkipRow("no transactionID to recognise it by on the next import")
    if not cash.amount:
        raise _SkipRow(f"amount is {_text(cash.amount)!r}")
    at = _aware_utc(cash.dateTime, cash.reportDate or cash.settleDate, None, zone, field="dateTime")
    if at is None:
        raise _SkipRow("no dateTime")
    return BrokerCashFlow(
        account_id=account_id,
        flow_id=f"flex-{cash.transactionID}",
        kind="DEPOSIT" if cash.amount > 0 else "WITHDRAWAL",
        amount=abs(cash.amount),
        at=at,
        currency=(cash.currency or "USD").upper(),
    )


def _aware_utc(
    when: datetime | None, day: date | None, at: time | None, zone: ZoneInfo, *, field: str
) -> datetime | None:
    """Flex times carry no zone: read a naive one in the report's zone (see the module docstring)."""
    if when is None and day is not None:
        when = datetime.combine(day, at or time(0))
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 9999-12-31 23:00 New York is after year 9999 in UTC
        raise _SkipRow(f"{field}: {when.isoformat()} is out of range once in UTC") from None


def _int(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _text(value) -> str:
    return value.value if isinstance(value, Enum) else str(value) if value is not None else ""


def _primitive(value):
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date | time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return [_primitive(v) for v in value]
    return value


def _primitives(element: Types.FlexElement) -> dict:
    """The row as IBKR sent it (fields present only), JSON-ready, for ``BrokerExecution.raw``."""
    values = ((f.name, getattr(element, f.name)) for f in dataclasses.fields(element))
    return {name: _primitive(value) for name, value in values if value not in (None, "", ())}
