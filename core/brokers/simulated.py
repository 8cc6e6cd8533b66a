"""The simulated broker: every call answered from one JSON state file (docs: broker-state.md).

The file is read afresh on every call, so whoever rewrites it (a test, the demo, a person) changes
what "the broker" says for the next call. A file that is missing, unreadable or not JSON makes
every call raise BrokerUnavailable naming the file and the problem. A section of the wrong type (a
string or an object where the positions list belongs) makes the calls that read it raise BrokerError:
a failed request, never "no positions", which would close every open position. A malformed row, or
one that would not fit the columns it is written to (core/brokers/validation.py), is skipped with a
warning that names it and the field, and the rest of the file is used. Absent sections are empty.

"Afresh" does not mean "parsed again": the parsed JSON is kept per file (module level, so it outlives
the SimulatedBroker that ``get_broker()`` builds per call) and reused while the file's identity
(device, inode, size, mtime and ctime in nanoseconds) is unchanged. A rewrite changes that identity
(an atomic rename gives a new inode, an in-place write a new mtime or size), except a same-size
rewrite within the file system's timestamp granularity: so while the file's mtime is too recent to
trust, a cache hit also compares the file's bytes with the parsed ones. Only files that parsed are
kept; the rows are validated on every call, so their warnings come with every answer.
"""

import copy
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from core.brokers import validation
from core.brokers.base import (
    BAR_SIZES,
    AccountValues,
    Bar,
    BrokerAccount,
    BrokerCashFlow,
    BrokerError,
    BrokerExecution,
    BrokerPosition,
    BrokerUnavailable,
    Fetched,
    FxDay,
    OptionGreeks,
    OptionPrint,
    OptionVolumeKey,
    OrderAck,
    OrderRequest,
    Quote,
)
from core.brokers.contracts import InstrumentSpec, SecType
from core.brokers.validation import ROW_ERRORS, RowRejected, shown
from core.fields import parse_decimal

logger = logging.getLogger(__name__)
T = TypeVar("T")

ACCOUNT_TYPES = {"MARGIN", "CASH"}
# IBKR account-summary tags and the AccountValues field each fills.
VALUE_TAGS = {
    "NetLiquidation": "net_liquidation",
    "TotalCashValue": "total_cash",
    "SettledCash": "settled_cash",
    "BuyingPower": "buying_power",
    "ExcessLiquidity": "excess_liquidity",
    "MaintMarginReq": "maint_margin_req",
    "UnrealizedPnL": "unrealized_pnl",
    "RealizedPnL": "realized_pnl",
}
DERIVATIVES = {SecType.OPTION, SecType.FUTURE_OPTION}
CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


# --- the parsed file, kept while the file is unchanged ------------------------------------------------
# Files whose parse is kept (one entry per path, the last one parsed); tests use a file each.
CACHE_PATHS = 8
# How recent an mtime is not trusted to differ from that of a rewrite (same size, same timestamp tick):
# file system timestamps are as coarse as a jiffy on Linux and 2 s on FAT.
RACY_WINDOW_NS = 2_000_000_000

FileIdentity = tuple[int, int, int, int, int]


def _identity(stat: os.stat_result) -> FileIdentity:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _racy(identity: FileIdentity, now_ns: int) -> bool:
    """Whether a rewrite could still leave the identity as it is (its last change is too recent)."""
    return max(identity[3], identity[4]) >= now_ns - RACY_WINDOW_NS


@dataclass(frozen=True, slots=True)
class _ParsedFile:
    """One parse of the state file. ``state`` and ``accounts`` are shared by every caller and must
    never be mutated or handed out (executions copy their raw row)."""

    identity: FileIdentity
    state: dict
    accounts: dict[str, dict]  # account_id -> its (first) row
    content: bytes | None  # the bytes parsed, kept only while the identity is too recent to trust


_cache: OrderedDict[str, _ParsedFile] = OrderedDict()
_cache_lock = threading.Lock()


def cache_clear() -> None:
    """Forget every parsed file (the next call of each broker parses its file again)."""
    with _cache_lock:
        _cache.clear()


def _cached(key: str) -> _ParsedFile | None:
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
        return entry


def _remember(key: str, entry: _ParsedFile) -> None:
    with _cache_lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > CACHE_PATHS:
            _cache.popitem(last=False)


def _parse_file(content: bytes, path: Path) -> dict:
    """The state of a file's bytes; BrokerUnavailable when they are not UTF-8 JSON holding an object."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BrokerUnavailable(f"broker state file {path} is unreadable: {exc}") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BrokerUnavailable(f"broker state file {path} is not valid JSON: {exc}") from None
    if not isinstance(state, dict):
        raise BrokerUnavailable(f"broker state file {path}: top level must be an object")
    return state


def _accounts_index(state: dict) -> dict[str, dict]:
    rows = state.get("accounts")
    index: dict[str, dict] = {}
    for row in rows if isinstance(rows, list) else ():
        if isinstance(row, dict) and isinstance(row.get("account_id"), str):
            index.setdefault(row["account_id"], row)
    return index


def _load(path: Path) -> _ParsedFile:
    """The parsed state file at ``path``: the kept parse while the file is unchanged, else a new one."""
    key = os.path.realpath(path)
    try:
        with open(path, "rb") as file:
            now = time.time_ns()
            identity = _identity(os.fstat(file.fileno()))
            entry = _cached(key)
            if entry is not None and entry.identity == identity:
                if entry.content is None:
                    return entry
                content = file.read()
                if content == entry.content:
                    if not _racy(identity, now):
                        # Old enough: any later write gets a newer mtime, the identity alone will tell.
                        entry = replace(entry, content=None)
                        _remember(key, entry)
                    return entry
            else:
                content = file.read()
            unchanged_while_read = _identity(os.fstat(file.fileno())) == identity
    except FileNotFoundError:
        raise BrokerUnavailable(f"broker state file {path} does not exist") from None
    except OSError as exc:
        raise BrokerUnavailable(f"broker state file {path} is unreadable: {exc}") from None
    state = _parse_file(content, path)  # raises before anything is kept: a bad file is parsed every time
    entry = _ParsedFile(
        identity=identity,
        state=state,
        accounts=_accounts_index(state),
        content=content if _racy(identity, now) else None,
    )
    if unchanged_while_read:
        _remember(key, entry)
    return entry


class MalformedRow(RowRejected):
    pass


def _text(row: dict, key: str, *, required: bool = True) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MalformedRow(f"missing {key}")
        return ""
    if not isinstance(value, str):
        raise MalformedRow(f"{key}: expected a string, got {type(value).__name__}")
    return value.strip()


def _decimal(
    row: dict, key: str, *, required: bool = True, minimum: Decimal | None = None, strictly_positive: bool = False
) -> Decimal | None:
    if row.get(key) is None:
        if required:
            raise MalformedRow(f"missing {key}")
        return None
    try:
        value = parse_decimal(row[key], field=key)
    except ValueError as exc:
        raise MalformedRow(str(exc)) from None
    if strictly_positive and value <= 0:
        raise MalformedRow(f"{key}: must be positive, got {value}")
    if minimum is not None and value < minimum:
        raise MalformedRow(f"{key}: must not be negative, got {value}")
    return value


def _int(row: dict, key: str) -> int | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedRow(f"{key}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise MalformedRow(f"{key}: expected an integer, got {value!r}") from None


def _time(row: dict, key: str) -> datetime:
    value = _text(row, key)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedRow(f"{key}: not an ISO 8601 time: {shown(value)!r}") from None
    if parsed.tzinfo is None:
        raise MalformedRow(f"{key}: time has no zone: {shown(value)!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is a time before year 1 in UTC
        raise MalformedRow(f"{key}: {value!r} is out of range once in UTC") from None


def _instrument(row: dict) -> InstrumentSpec:
    symbol = _text(row, "symbol").upper()
    sec_type = (_text(row, "sec_type", required=False) or SecType.STOCK).upper()
    if sec_type not in SecType.values:
        raise MalformedRow(f"sec_type: unknown {sec_type!r}")
    default_multiplier = "100" if sec_type in DERIVATIVES else "1"
    multiplier = _decimal(
        {"multiplier": row.get("multiplier", default_multiplier)}, "multiplier", strictly_positive=True
    )
    expiry = None
    strike = None
    right = ""
    if sec_type in DERIVATIVES or sec_type == SecType.FUTURE:
        raw_expiry = _text(row, "expiry")
        try:
            expiry = date.fromisoformat(raw_expiry)
        except ValueError:
            raise MalformedRow(f"expiry: not an ISO date: {raw_expiry!r}") from None
    if sec_type in DERIVATIVES:
        strike = _decimal(row, "strike", strictly_positive=True)
        right = _text(row, "right").upper()
        if right not in {"C", "P"}:
            raise MalformedRow(f"right: expected C or P, got {right!r}")
    return InstrumentSpec(
        symbol=symbol,
        sec_type=sec_type,
        currency=(_text(row, "currency", required=False) or "USD").upper(),
        con_id=_int(row, "con_id"),
        exchange=_text(row, "exchange", required=False) or "SMART",
        multiplier=multiplier,
        expiry=expiry,
        strike=strike,
        right=right,
    )


GREEK_KEYS = ("delta", "gamma", "theta", "vega", "iv", "underlying_price")


def _greeks(row: dict, instrument: InstrumentSpec, notes: list[str]) -> OptionGreeks | None:
    """An option row's ``greeks``: the broker's model values. A malformed set is dropped with a note
    (the position is kept, its Greeks are then computed); a missing value is None."""
    raw = row.get("greeks")
    if raw is None or instrument.sec_type not in DERIVATIVES:
        return None
    try:
        if not isinstance(raw, dict):
            raise MalformedRow(f"expected an object, got {type(raw).__name__}")
        values = {key: _decimal(raw, key, required=False) for key in GREEK_KEYS}
        for key in ("iv", "underlying_price"):
            if values[key] is not None and values[key] <= 0:
                raise MalformedRow(f"{key}: must be positive, got {values[key]}")
        if values["gamma"] is not None and values["gamma"] < 0:
            raise MalformedRow(f"gamma: must not be negative, got {values['gamma']}")
        if values["delta"] is not None and abs(values["delta"]) > 1:
            raise MalformedRow(f"delta: must lie between -1 and 1, got {values['delta']}")
    except MalformedRow as exc:
        notes.append(f"greeks.{exc}; the broker's Greeks ignored (they are computed instead)")
        return None
    return OptionGreeks(**values)


def _label(where: str, index: int, row: Any) -> str:
    if isinstance(row, dict):
        name = row.get("exec_id") or row.get("id") or row.get("symbol") or row.get("account_id")
        if name:
            return f"{where}[{index}] ({shown(name)})"
    return f"{where}[{index}]"


def _parse_rows(
    rows: list, where: str, parse: Callable[[dict], T], warnings: list[str], notes: list[str] | None = None
) -> list[T]:
    """Each row parsed, or skipped with a warning that names it and the field. ``notes`` is where
    ``parse`` leaves remarks about a row it kept; they become warnings naming the row."""
    parsed: list[T] = []
    for index, row in enumerate(rows):
        label = _label(where, index, row)
        try:
            if not isinstance(row, dict):
                raise MalformedRow(f"expected an object, got {type(row).__name__}")
            parsed.append(parse(row))
        except ROW_ERRORS as exc:
            message = f"{label}: {validation.problem(exc)}; row skipped"
            logger.warning("simulated broker: %s", message)
            warnings.append(message)
        for note in notes or ():
            message = f"{label}: {note}"
            logger.warning("simulated broker: %s", message)
            warnings.append(message)
        if notes:
            notes.clear()
    return parsed


class SimulatedBroker:
    """Answers the Broker protocol from the state file at ``path``."""

    name = "simulated"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # --- the file -----------------------------------------------------------------------------
    # The parsed file is shared (see _load): read it, never change it or hand out its dicts and lists.
    def _file(self) -> _ParsedFile:
        parsed = _load(self.path)
        if parsed.state.get("connected", True) is not True:
            raise BrokerUnavailable(f"broker is disconnected (connected is false in {self.path})")
        return parsed

    def _state(self) -> dict:
        return self._file().state

    def _account_row(self, account_id: str) -> dict:
        parsed = self._file()
        self._list(parsed.state.get("accounts"), "accounts")
        row = parsed.accounts.get(account_id)
        if row is None:
            raise BrokerError(f"account {account_id} is not known to the broker")
        return row

    # A section of the wrong type is a failed request, never "nothing": read as "no positions", a
    # positions section that is a string would close every open position. Absent (or null) is empty.
    def _wrong_type(self, where: str, value: Any, expected: str) -> BrokerError:
        return BrokerError(f"broker state file {self.path}: {where}: a {type(value).__name__}, not {expected}")

    def _list(self, value: Any, where: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong_type(where, value, "a list")
        return value

    def _object(self, value: Any, where: str, expected: str = "an object") -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._wrong_type(where, value, expected)
        return value

    # --- accounts -----------------------------------------------------------------------------
    def _values(self, raw: Any, where: str, warnings: list[str]) -> AccountValues:
        raw = self._object(raw, f"{where}.values")
        parsed: dict[str, Any] = {}
        for tag, attr in VALUE_TAGS.items():
            if raw.get(tag) is None:
                continue
            try:
                parsed[attr] = parse_decimal(raw[tag], field=tag)  # within every money column
            except ValueError as exc:
                warnings.append(f"{where}.values.{tag}: {exc}; value ignored")
        if raw.get("DayTradesRemaining") is not None:
            try:
                parsed["day_trades_remaining"] = validation.integer(
                    parse_decimal(raw["DayTradesRemaining"], field="DayTradesRemaining"), field="DayTradesRemaining"
                )
            except ValueError as exc:
                warnings.append(f"{where}.values.DayTradesRemaining: {exc}; value ignored")
        return AccountValues(**parsed)

    def _per_currency(
        self, raw: Any, where: str, warnings: list[str], *, base: str, positive: bool
    ) -> dict[str, Decimal]:
        """An object of currency code -> amount (``cash_balances``, ``fx_rates``); a malformed entry is
        skipped with a warning naming it. ``positive``: a rate must be above 0 (a balance may be negative)."""
        parsed: dict[str, Decimal] = {}
        if raw is not None and not isinstance(raw, dict):
            message = f"{where}: a {type(raw).__name__}, not an object keyed by currency; ignored"
            logger.warning("simulated broker: %s", message)
            warnings.append(message)
            return parsed
        for key, value in (raw or {}).items():
            currency = str(key).strip().upper()
            try:
                if not CURRENCY_CODE.match(currency):
                    raise MalformedRow(f"{shown(key)!r} is not a currency code")
                if positive and currency == base:
                    continue  # the base currency's rate is 1 by definition
                amount = parse_decimal(value, field=currency)
                if positive and amount <= 0:
                    raise MalformedRow(f"must be positive, got {amount}")
            except (MalformedRow, ValueError) as exc:
                message = f"{where}.{shown(key)}: {exc}; entry skipped"
                logger.warning("simulated broker: %s", message)
                warnings.append(message)
                continue
            parsed[currency] = amount
        return parsed

    def accounts(self) -> Fetched[BrokerAccount]:
        warnings: list[str] = []

        def parse(row: dict) -> BrokerAccount:
            account_id = _text(row, "account_id")
            account_type = (_text(row, "account_type", required=False) or "MARGIN").upper()
            if account_type not in ACCOUNT_TYPES:
                raise MalformedRow(f"account_type: expected MARGIN or CASH, got {shown(account_type)!r}")
            base_currency = (_text(row, "base_currency", required=False) or "USD").upper()
            account = BrokerAccount(account_id=account_id, account_type=account_type, base_currency=base_currency)
            validation.checked_account(account)  # before its values: their warnings name it
            where = f"accounts ({account_id})"
            values = replace(
                self._values(row.get("values"), where, warnings),
                currency=base_currency,
                cash_balances=self._per_currency(
                    row.get("cash_balances"), f"{where}.cash_balances", warnings, base=base_currency, positive=False
                ),
                fx_rates=self._per_currency(
                    row.get("fx_rates"), f"{where}.fx_rates", warnings, base=base_currency, positive=True
                ),
            )
            return replace(account, values=values)

        rows = self._list(self._state().get("accounts"), "accounts")
        items = _parse_rows(rows, "accounts", parse, warnings)
        return Fetched(items=tuple(items), warnings=tuple(warnings))

    # --- positions ----------------------------------------------------------------------------
    def positions(self, account_id: str) -> Fetched[BrokerPosition]:
        warnings: list[str] = []
        where = f"accounts ({account_id}).positions"

        def parse(row: dict) -> BrokerPosition:
            instrument = _instrument(row)
            quantity = _decimal(row, "quantity")
            avg_cost = _decimal(row, "avg_cost", minimum=Decimal(0))
            market_price = _decimal(row, "market_price", required=False, minimum=Decimal(0))
            return validation.checked_position(
                BrokerPosition(
                    account_id=account_id,
                    instrument=instrument,
                    quantity=quantity,
                    average_price=avg_cost / instrument.multiplier,
                    market_price=market_price,
                    greeks=_greeks(row, instrument, notes),
                ),
                notes,
            )

        notes: list[str] = []
        rows = self._list(self._account_row(account_id).get("positions"), where)
        items = _parse_rows(rows, where, parse, warnings, notes)
        return Fetched(items=tuple(items), warnings=tuple(warnings))

    # --- executions ---------------------------------------------------------------------------
    def executions(self, account_id: str, since: datetime | None = None) -> Fetched[BrokerExecution]:
        warnings: list[str] = []
        where = f"accounts ({account_id}).executions"

        def parse(row: dict) -> BrokerExecution:
            exec_id = _text(row, "exec_id")
            side = _text(row, "side").upper()
            if side not in {"BUY", "SELL"}:
                raise MalformedRow(f"side: expected BUY or SELL, got {shown(side)!r}")
            settle = row.get("settlement_date")
            return validation.checked_execution(
                BrokerExecution(
                    account_id=account_id,
                    exec_id=exec_id,
                    instrument=_instrument(row),
                    side=side,
                    quantity=_decimal(row, "quantity", strictly_positive=True),
                    price=_decimal(row, "price", minimum=Decimal(0)),
                    executed_at=_time(row, "time"),
                    commission=_decimal(row, "commission", required=False),
                    commission_currency=(_text(row, "commission_currency", required=False) or "USD"),
                    order_id=_int(row, "order_id"),
                    perm_id=_int(row, "perm_id"),
                    exchange=_text(row, "exchange", required=False),
                    settlement_date=settle if isinstance(settle, str) else None,
                    raw=copy.deepcopy(row),  # the row belongs to the shared parsed file
                )
            )

        rows = self._list(self._account_row(account_id).get("executions"), where)
        items = _parse_rows(rows, where, parse, warnings)
        if since is not None:
            items = [e for e in items if e.executed_at >= since]
        return Fetched(items=tuple(items), warnings=tuple(warnings))

    # --- cash flows ---------------------------------------------------------------------------
    def cash_flows(self, account_id: str) -> Fetched[BrokerCashFlow]:
        warnings: list[str] = []
        where = f"accounts ({account_id}).cash_flows"

        def parse(row: dict) -> BrokerCashFlow:
            kind = _text(row, "kind").upper()
            if kind not in {"DEPOSIT", "WITHDRAWAL"}:
                raise MalformedRow(f"kind: expected DEPOSIT or WITHDRAWAL, got {shown(kind)!r}")
            return validation.checked_cash_flow(
                BrokerCashFlow(
                    account_id=account_id,
                    flow_id=_text(row, "id"),
                    kind=kind,
                    amount=_decimal(row, "amount", strictly_positive=True),
                    at=_time(row, "time"),
                    currency=(_text(row, "currency", required=False) or "USD").upper(),
                )
            )

        rows = self._list(self._account_row(account_id).get("cash_flows"), where)
        items = _parse_rows(rows, where, parse, warnings)
        return Fetched(items=tuple(items), warnings=tuple(warnings))

    # --- market data --------------------------------------------------------------------------
    def bars(
        self, symbol: str, bar_size: str, start: datetime | None = None, end: datetime | None = None
    ) -> Fetched[Bar]:
        if bar_size not in BAR_SIZES:
            raise BrokerError(f"bar size {bar_size!r} is not one of {', '.join(BAR_SIZES)}")
        warnings: list[str] = []
        symbol = symbol.upper()

        def parse(row: dict) -> Bar:
            low = _decimal(row, "low", minimum=Decimal(0))
            high = _decimal(row, "high", minimum=Decimal(0))
            if high < low:
                raise MalformedRow(f"high {high} is below low {low}")
            return validation.checked_bar(
                Bar(
                    symbol=symbol,
                    bar_size=bar_size,
                    start=_time(row, "time"),
                    open=_decimal(row, "open", minimum=Decimal(0)),
                    high=high,
                    low=low,
                    close=_decimal(row, "close", minimum=Decimal(0)),
                    volume=_decimal(row, "volume", minimum=Decimal(0)),
                    wap=_decimal(row, "wap", required=False, minimum=Decimal(0)),
                    trade_count=_int(row, "trade_count"),
                )
            )

        all_bars = self._object(self._state().get("bars"), "bars", "an object keyed by symbol")
        by_size = self._object(all_bars.get(symbol), f"bars.{symbol}", "an object keyed by bar size")
        where = f"bars.{symbol}.{bar_size}"
        items = _parse_rows(self._list(by_size.get(bar_size), where), where, parse, warnings)
        items = [b for b in items if (start is None or b.start >= start) and (end is None or b.start < end)]
        items.sort(key=lambda b: b.start)
        return Fetched(items=tuple(items), warnings=tuple(warnings))

    def fx_history(self, currency: str, base: str, start: date, end: date) -> Fetched[FxDay]:
        """The state file's ``fx_history`` rates of ``currency`` in ``base`` for days in [start, end].

        Shape: ``{"fx_history": {"USD": {"EUR": [{"day": "2026-11-02", "rate": "1.15"}, ...]}}}``, keyed by
        the base currency, then the currency. A malformed row is skipped with a warning naming it.
        """
        warnings: list[str] = []
        currency, base = currency.upper(), base.upper()

        def parse(row: dict) -> FxDay:
            raw_day = _text(row, "day")
            try:
                day = date.fromisoformat(raw_day)
            except ValueError:
                raise MalformedRow(f"day: not an ISO date: {shown(raw_day)!r}") from None
            return FxDay(currency=currency, base=base, day=day, rate=_decimal(row, "rate", strictly_positive=True))

        history = self._object(self._state().get("fx_history"), "fx_history", "an object keyed by base currency")
        by_currency = self._object(history.get(base), f"fx_history.{base}", "an object keyed by currency")
        where = f"fx_history.{base}.{currency}"
        items = _parse_rows(self._list(by_currency.get(currency), where), where, parse, warnings)
        days = {item.day: item for item in items if start <= item.day <= end}  # a repeated day: the last row
        return Fetched(items=tuple(days[d] for d in sorted(days)), warnings=tuple(warnings))

    def option_prints(
        self, underlyings: list[str], known_volumes: Mapping[OptionVolumeKey, Decimal] | None = None
    ) -> Fetched[OptionPrint]:
        """The state file's ``option_flow`` rows of these underlyings (rows as in sentiment-feed.md's
        ``options_flow``); not part of the Broker protocol: a broker without it gives no options flow.
        The rows are prints already, each with its own id: ``known_volumes`` is not needed here."""
        warnings: list[str] = []
        wanted = {u.upper() for u in underlyings}

        def parse(row: dict) -> OptionPrint:
            right = _text(row, "right").upper()
            if right not in {"C", "P"}:
                raise MalformedRow(f"right: expected C or P, got {right!r}")
            raw_expiry = _text(row, "expiry")
            try:
                expiry = date.fromisoformat(raw_expiry)
            except ValueError:
                raise MalformedRow(f"expiry: not an ISO date: {raw_expiry!r}") from None
            return OptionPrint(
                print_id=_text(row, "id"),
                time=_time(row, "time"),
                underlying=_text(row, "underlying").upper(),
                expiry=expiry,
                strike=_decimal(row, "strike", strictly_positive=True),
                right=right,
                size=_decimal(row, "size", strictly_positive=True),
                price=_decimal(row, "price", minimum=Decimal(0)),
                bid=_decimal(row, "bid", required=False, minimum=Decimal(0)),
                ask=_decimal(row, "ask", required=False, minimum=Decimal(0)),
                underlying_price=_decimal(row, "underlying_price", required=False, minimum=Decimal(0)),
                open_interest=_decimal(row, "open_interest", required=False, minimum=Decimal(0)),
                volume=_decimal(row, "volume", required=False, minimum=Decimal(0)),
                exchanges=_int(row, "exchanges"),
                kind=_text(row, "kind", required=False).upper(),
                multiplier=_decimal(row, "multiplier", required=False, strictly_positive=True) or Decimal(100),
                delayed=row.get("delayed") is True,
            )

        rows = _parse_rows(self._list(self._state().get("option_flow"), "option_flow"), "option_flow", parse, warnings)
        return Fetched(items=tuple(r for r in rows if not wanted or r.underlying in wanted), warnings=tuple(warnings))

    def quote(self, symbol: str) -> Quote | None:
        symbol = symbol.upper()
        row = self._object(self._state().get("quotes"), "quotes", "an object keyed by symbol").get(symbol)
        if row is None:
            return None
        try:
            if not isinstance(row, dict):
                raise MalformedRow("expected an object")
            return validation.checked_quote(
                Quote(
                    symbol=symbol,
                    bid=_decimal(row, "bid", required=False, minimum=Decimal(0)),
                    ask=_decimal(row, "ask", required=False, minimum=Decimal(0)),
                    last=_decimal(row, "last", required=False, minimum=Decimal(0)),
                    at=_time(row, "time") if row.get("time") else None,
                    bid_size=_decimal(row, "bid_size", required=False, minimum=Decimal(0)),
                    ask_size=_decimal(row, "ask_size", required=False, minimum=Decimal(0)),
                    last_size=_decimal(row, "last_size", required=False, minimum=Decimal(0)),
                    volume=_decimal(row, "volume", required=False, minimum=Decimal(0)),
                    delayed=row.get("delayed") is True,
                )
            )
        except ROW_ERRORS as exc:
            logger.warning("simulated broker: quotes.%s: %s; quote skipped", symbol, validation.problem(exc))
            return None

    # The state file describes an account; it takes no orders. Orders of LIVE accounts go to IBKR (or the
    # gateway simulator); the product's own simulated fills are the paper engine's, for PAPER accounts.
    _NO_ORDERS = (
        "the simulated broker takes no orders: use a PAPER account (the paper engine fills its orders) "
        "or BROKER=ibkr for live orders"
    )

    def place_order(self, request: OrderRequest) -> OrderAck:
        raise BrokerError(self._NO_ORDERS)

    def cancel_order(self, account_id: str, order_id: int) -> OrderAck:
        raise BrokerError(self._NO_ORDERS)

    def orders(self, account_id: str) -> Fetched[OrderAck]:
        return Fetched(items=())
