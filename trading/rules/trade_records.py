"""The 27-field trade record (the seed's names, in the seed's order), built from a round trip and its orders.

Pure: no database. ``trading.selectors.trade_records_iter`` feeds it; the API and
``export_trade_records`` write it. Decimals are strings, times ISO 8601 UTC with ``Z``.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

TRADE_RECORD_FIELDS = (
    "timestamp",
    "symbol",
    "action",
    "quantity",
    "price",
    "total_value",
    "order_id",
    "execution_mode",
    "account_id",
    "strategy_name",
    "entry_type",
    "stop_loss",
    "target",
    "decision_reasoning",
    "indicators_used",
    "risk_reward_ratio",
    "outcome",
    "profit_loss",
    "hold_duration_seconds",
    "exit_timestamp",
    "exit_reasoning",
    "slippage",
    "commission",
    "net_profit_loss",
    "session_id",
    "bot_version",
    "config_hash",
)


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def config_hash(settings_in_force: dict) -> str:
    """The first 16 hex digits of the SHA-256 of the risk and strategy settings as sorted JSON."""
    text = json.dumps(settings_in_force, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class TradeRecordInput:
    opened_at: datetime
    closed_at: datetime | None
    symbol: str
    direction: str  # LONG or SHORT
    quantity: Decimal
    average_entry: Decimal
    multiplier: Decimal
    account_id: str
    mode: str
    outcome: str  # WIN, LOSS, BREAKEVEN, or "" while open
    realized_pnl: Decimal | None  # net of commissions
    commissions: Decimal
    holding_seconds: int | None
    session_id: str | None
    bot_version: str | None
    config_hash: str | None
    entry_order: object | None = None  # trading.models.Order, or None for a fill placed outside the product
    exit_order: object | None = None


def trade_record(data: TradeRecordInput) -> dict:
    """One record: exactly ``TRADE_RECORD_FIELDS``; a fill without an order of ours has empty decision fields."""
    entry = data.entry_order
    exit_ = data.exit_order
    indicators = (entry.indicators or {}).get("used", []) if entry is not None else []
    net = data.realized_pnl
    return {
        "timestamp": iso_utc(data.opened_at),
        "symbol": data.symbol,
        "action": "BUY" if data.direction == "LONG" else "SELL",
        "quantity": decimal_text(data.quantity),
        "price": decimal_text(data.average_entry),
        "total_value": decimal_text((data.quantity * data.average_entry * data.multiplier).quantize(Decimal("0.01"))),
        "order_id": str(entry.client_order_id) if entry is not None else None,
        "execution_mode": data.mode,
        "account_id": data.account_id,
        "strategy_name": entry.strategy or None if entry is not None else None,
        "entry_type": entry.entry_type or None if entry is not None else None,
        "stop_loss": decimal_text(entry.stop_loss) if entry is not None else None,
        "target": decimal_text(entry.target) if entry is not None else None,
        "decision_reasoning": entry.reasoning or None if entry is not None else None,
        "indicators_used": list(indicators) if isinstance(indicators, list) else [],
        "risk_reward_ratio": decimal_text(entry.risk_reward) if entry is not None else None,
        "outcome": data.outcome.lower() if data.outcome else "open",
        "profit_loss": decimal_text(net + data.commissions) if net is not None else None,
        "hold_duration_seconds": data.holding_seconds,
        "exit_timestamp": iso_utc(data.closed_at),
        "exit_reasoning": (exit_.reasoning or None) if exit_ is not None else None,
        "slippage": decimal_text(entry.slippage) if entry is not None else None,
        "commission": decimal_text(data.commissions),
        "net_profit_loss": decimal_text(net),
        "session_id": data.session_id,
        "bot_version": data.bot_version,
        "config_hash": data.config_hash,
    }


# The seed's validation: a stock symbol is 1-5 uppercase letters or digits (a share class such as BRK.B
# allowed, as the order checks allow it), 0 < quantity <= 10,000, price > 0, times ISO 8601 UTC.
STOCK_SYMBOL = re.compile(r"[A-Z0-9]{1,5}(\.[A-Z])?")
UTC_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
MAX_RECORD_QUANTITY = Decimal(10_000)


def trade_record_problems(record: dict, *, sec_type: str = "STK") -> list[str]:
    """What is wrong with a record by the seed's rules (empty: valid), each naming its field."""
    problems = []
    symbol = record.get("symbol") or ""
    if sec_type == "STK" and not STOCK_SYMBOL.fullmatch(symbol):
        problems.append(f"symbol {symbol!r} is not 1-5 uppercase letters or digits")
    quantity = Decimal(record["quantity"]) if record.get("quantity") is not None else None
    if quantity is None or not (0 < quantity <= MAX_RECORD_QUANTITY):
        problems.append(f"quantity {record.get('quantity')} is not > 0 and <= 10,000")
    price = Decimal(record["price"]) if record.get("price") is not None else None
    if price is None or price <= 0:
        problems.append(f"price {record.get('price')} is not > 0")
    for name in ("timestamp", "exit_timestamp"):
        value = record.get(name)
        if (value is not None or name == "timestamp") and not UTC_TIME.fullmatch(value or ""):
            problems.append(f"{name} {value!r} is not an ISO 8601 UTC time")
    return problems
