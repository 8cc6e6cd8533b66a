"""The TWS API socket protocol, seen from the gateway's side: framing, field text, message ids.

Framing: every message is a 4-byte big-endian length followed by that many bytes of UTF-8 fields,
each ended by a NUL. The connection opens with the client's ``API\\0`` and one framed version range
(``v157..178``); the gateway answers one frame ``[serverVersion, connectionTime]``, then the client
sends START_API and the gateway NEXT_VALID_ID and MANAGED_ACCTS. The message layouts below follow
what ib_async 2.1.0's ``client.py`` sends and its ``decoder.py`` reads.
"""

import asyncio
import math
import struct
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

# The server versions ib_async 2.1.0 accepts (Client.MinClientVersion .. MaxClientVersion).
MIN_SERVER_VERSION = 157
MAX_SERVER_VERSION = 178
# IBKR's "unset" double and integer as they appear on the wire.
UNSET_DOUBLE = "1.7976931348623157E308"
UNSET_INTEGER = str(2**31 - 1)
# A frame longer than this is not a TWS message (real ones are a few kilobytes at most).
MAX_FRAME = 16 * 1024 * 1024


class In:
    """Ids of the messages a client sends (ib_async ``Client`` methods)."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_HISTORICAL_DATA = 20
    CANCEL_HISTORICAL_DATA = 25
    REQ_CURRENT_TIME = 49
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_SEC_DEF_OPT_PARAMS = 78
    REQ_COMPLETED_ORDERS = 99


class Out:
    """Ids of the messages the gateway sends (ib_async ``Decoder.handlers``)."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    TICK_STRING = 46
    TICK_OPTION_COMPUTATION = 21
    CURRENT_TIME = 49
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    SECURITY_DEFINITION_OPTION_PARAMETER = 75
    SECURITY_DEFINITION_OPTION_PARAMETER_END = 76
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


class ProtocolError(Exception):
    """The peer sent something that is not the TWS API protocol."""


def text(value: Any) -> str:
    """One field's text: Decimals without exponent, bools as 1/0, None and NaN as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        if not value.is_finite():
            return ""
        return f"{value.normalize():f}" if value == value.to_integral_value() else f"{value:f}"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(value)
    return str(value)


def frame(fields: Iterable[Any]) -> bytes:
    """One message: the length prefix and each field's text ended by NUL."""
    payload = b"".join(text(field).encode() + b"\0" for field in fields)
    return struct.pack(">I", len(payload)) + payload


def split_fields(payload: bytes) -> list[str]:
    parts = payload.decode(errors="backslashreplace").split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


async def read_frame(reader: asyncio.StreamReader) -> list[str]:
    """The next message's fields; IncompleteReadError when the peer has closed."""
    head = await reader.readexactly(4)
    (length,) = struct.unpack(">I", head)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes")
    return split_fields(await reader.readexactly(length))


def parse_version_range(fields: list[str]) -> tuple[int, int]:
    """``v157..178`` (optionally followed by connect options) as (min, max)."""
    if not fields:
        raise ProtocolError("no version range after API")
    spec = fields[0].split(" ")[0]
    if not spec.startswith("v"):
        raise ProtocolError(f"not a version range: {fields[0]!r}")
    low, _, high = spec[1:].partition("..")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise ProtocolError(f"not a version range: {fields[0]!r}") from None


def negotiate(client_min: int, client_max: int, server_max: int) -> int | None:
    """The server version to speak: the highest both sides know; None when the ranges do not meet."""
    version = min(client_max, server_max)
    if version < client_min or version < MIN_SERVER_VERSION:
        return None
    return version


class Fields:
    """Reads a client message field by field."""

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        self.at = 0

    def next(self, default: str = "") -> str:
        if self.at >= len(self.fields):
            self.at += 1
            return default
        value = self.fields[self.at]
        self.at += 1
        return value

    def skip(self, count: int = 1) -> None:
        self.at += count

    def int(self, default: int = 0) -> int:
        value = self.next()
        try:
            return int(value) if value else default
        except ValueError:
            return int(float(value))

    def decimal(self) -> Decimal | None:
        value = self.next()
        if not value:
            return None
        try:
            number = Decimal(value)
        except ArithmeticError:
            return None
        return number if number.is_finite() and abs(number) < Decimal("1.79e308") else None

    def contract(self) -> dict[str, str]:
        """The 12 fields ib_async sends for a Contract."""
        keys = (
            "conId",
            "symbol",
            "secType",
            "lastTradeDateOrContractMonth",
            "strike",
            "right",
            "multiplier",
            "exchange",
            "primaryExchange",
            "currency",
            "localSymbol",
            "tradingClass",
        )
        return {key: self.next() for key in keys}
