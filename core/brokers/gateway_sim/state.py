"""What the gateway serves, taken from the broker state file (broker-state.md) on every request.

The rows are parsed by the simulated broker (``SimulatedBroker``): one parser for both adapters, so
a malformed row is skipped here exactly as ``BROKER=simulated`` skips it. This module only turns the
parsed, normalised rows back into what IBKR would send: avgCost as price x multiplier for options
and futures, BOT/SLD sides, string account values with BASE and per-currency ledger rows.

Fills of orders placed through the simulator are written back into the file (``fill_record``), so
the next positions and executions requests, from any client, see them.
"""

import json
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.brokers.base import (
    Bar,
    BrokerAccount,
    BrokerExecution,
    BrokerPosition,
    FxDay,
    OptionGreeks,
    OptionPrint,
    Quote,
)
from core.brokers.contracts import InstrumentSpec, SecType
from core.brokers.gateway_sim.messages import WireContract
from core.brokers.simulated import SimulatedBroker, _instrument, _load

logger = logging.getLogger(__name__)

# Account-summary tags IBKR reports without a currency.
NO_CURRENCY_TAGS = {"AccountType", "DayTradesRemaining", "DayTradesRemainingT+1", "DayTradesRemainingT+2",
                    "DayTradesRemainingT+3", "DayTradesRemainingT+4", "Cushion", "Leverage", "HighestSeverity",
                    "LookAheadNextChange", "SegmentTitle"}  # fmt: skip
# Ledger tags ($LEDGER) IBKR reports per currency and for BASE; not account-summary tags of their own.
LEDGER_TAGS = ("CashBalance", "TotalCashBalance", "ExchangeRate", "NetLiquidationByCurrency", "UnrealizedPnL",
               "RealizedPnL", "StockMarketValue", "OptionMarketValue", "FuturesPNL")  # fmt: skip
PRICED_AS_CONTRACT = {SecType.OPTION, SecType.FUTURE, SecType.FUTURE_OPTION}
MONTH_CODES = "FGHJKMNQUVXZ"
EXPIRY_ACTIONS = ("expire", "exercise", "assign")


class StateError(Exception):
    """The state file cannot be served (missing, not JSON, or ``connected`` is false)."""


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool | float):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def synthetic_con_id(key: str) -> int:
    """A stable conId for an instrument the file gives none (same key, same id, every run)."""
    return 100_000_000 + zlib.crc32(key.encode()) % 800_000_000


def wire_contract(spec: InstrumentSpec) -> WireContract:
    sec_type = str(spec.sec_type)
    last_trade = spec.expiry.strftime("%Y%m%d") if spec.expiry else ""
    multiplier = "" if sec_type == SecType.STOCK and spec.multiplier == 1 else f"{spec.multiplier.normalize():f}"
    local_symbol = spec.symbol
    if sec_type in (SecType.OPTION, SecType.FUTURE_OPTION) and spec.expiry and spec.strike is not None:
        local_symbol = f"{spec.symbol:<6}{spec.expiry:%y%m%d}{spec.right}{int(spec.strike * 1000):08d}"
    elif sec_type == SecType.FUTURE and spec.expiry:
        local_symbol = f"{spec.symbol}{MONTH_CODES[spec.expiry.month - 1]}{spec.expiry.year % 10}"
    return WireContract(
        con_id=spec.con_id or synthetic_con_id(spec.key),
        symbol=spec.symbol,
        sec_type=sec_type,
        last_trade=last_trade,
        strike=spec.strike,
        right=spec.right,
        multiplier=multiplier,
        exchange=spec.exchange or "SMART",
        currency=spec.currency,
        local_symbol=local_symbol,
        trading_class=spec.symbol,
    )


@dataclass(frozen=True, slots=True)
class WirePosition:
    account: str
    contract: WireContract
    quantity: Decimal
    avg_cost: Decimal  # IBKR's convention: per share for stocks, price x multiplier otherwise
    market_price: Decimal | None
    multiplier: Decimal
    average_price: Decimal  # per unit

    @property
    def market_value(self) -> Decimal | None:
        if self.market_price is None:
            return None
        return self.quantity * self.market_price * self.multiplier

    @property
    def unrealized_pnl(self) -> Decimal | None:
        if self.market_price is None:
            return None
        return (self.market_price - self.average_price) * self.quantity * self.multiplier


@dataclass(frozen=True, slots=True)
class OptionMarket:
    """What IBKR's market data shows for one option contract: its latest session's prints summed up."""

    volume: Decimal  # the day's volume so far
    last: Decimal | None = None
    last_size: Decimal | None = None
    last_time: datetime | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    open_interest: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OptionChain:
    symbol: str
    multiplier: Decimal
    strikes_by_expiry: dict[date, set[Decimal]]

    @property
    def expiries(self) -> list[date]:
        return sorted(self.strikes_by_expiry)

    @property
    def strikes(self) -> list[Decimal]:
        return sorted(set().union(*self.strikes_by_expiry.values())) if self.strikes_by_expiry else []


@dataclass(frozen=True, slots=True)
class WireExecution:
    account: str
    contract: WireContract
    row: BrokerExecution
    client_id: int
    commission_delay: float | None  # seconds after the execution; None: with it
    realized_pnl: Decimal | None

    @property
    def side(self) -> str:
        return "BOT" if self.row.side == "BUY" else "SLD"


class GatewayState:
    """One read of the state file. Cheap to build: the file's parse is shared while it is unchanged."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.broker = SimulatedBroker(self.path)
        try:
            self.raw: dict = _load(self.path).state
        except Exception as exc:  # BrokerUnavailable: missing, unreadable, not JSON
            raise StateError(str(exc)) from exc
        self.connected = self.raw.get("connected", True) is True
        faults = self.raw.get("faults")
        self.faults: dict = faults if isinstance(faults, dict) else {}
        self._accounts: list[BrokerAccount] | None = None
        self._prints: list[OptionPrint] | None = None
        self._chains: dict[str, OptionChain] | None = None

    def _warn(self, warnings: tuple[str, ...]) -> None:
        for warning in warnings:
            logger.warning("ibgateway_sim: %s: %s", self.path, warning)

    # --- accounts --------------------------------------------------------------------------------
    def accounts(self) -> list[BrokerAccount]:
        if self._accounts is None:
            fetched = self.broker.accounts()
            self._warn(fetched.warnings)
            seen: dict[str, BrokerAccount] = {}
            for account in fetched.items:
                seen.setdefault(account.account_id, account)
            self._accounts = list(seen.values())
        return self._accounts

    def account_ids(self) -> list[str]:
        return [a.account_id for a in self.accounts()]

    def account(self, account_id: str) -> BrokerAccount | None:
        return next((a for a in self.accounts() if a.account_id == account_id), None)

    def _raw_account(self, account_id: str) -> dict:
        for row in self.raw.get("accounts") or ():
            if isinstance(row, dict) and row.get("account_id") == account_id:
                return row
        return {}

    def _raw_values(self, account_id: str) -> dict[str, str]:
        values = self._raw_account(account_id).get("values")
        if not isinstance(values, dict):
            return {}
        return {
            tag: value for tag, value in values.items() if isinstance(value, str | int) and not isinstance(value, bool)
        }

    def summary_values(self, account_id: str) -> list[tuple[str, str, str]]:
        """(tag, value, currency) of the account's own values, as account summary and updates send them."""
        account = self.account(account_id)
        if account is None:
            return []
        base = account.base_currency
        rows = [("AccountType", account.account_type or "INDIVIDUAL", "")]
        for tag, value in self._raw_values(account_id).items():
            if tag in ("UnrealizedPnL", "RealizedPnL"):
                continue  # ledger tags: sent with the ledger rows (BASE and per currency)
            rows.append((tag, str(value), "" if tag in NO_CURRENCY_TAGS else base))
        return rows

    def ledger_values(self, account_id: str, currencies: str = "ALL") -> list[tuple[str, str, str]]:
        """$LEDGER rows: BASE (the whole account in base currency) and each currency's slice.

        ``currencies``: ``ALL`` for BASE and every currency, ``BASE`` for BASE only, or one code.
        """
        account = self.account(account_id)
        if account is None:
            return []
        base = account.base_currency
        raw = self._raw_account(account_id)
        values = self._raw_values(account_id)
        cash = (
            {c.upper(): _decimal(v) for c, v in (raw.get("cash_balances") or {}).items()}
            if isinstance(raw.get("cash_balances"), dict)
            else {}
        )
        cash = {c: v for c, v in cash.items() if v is not None}
        if not cash and _decimal(values.get("TotalCashValue")) is not None:
            cash = {base: _decimal(values["TotalCashValue"])}
        rates = (
            {c.upper(): _decimal(v) for c, v in (raw.get("fx_rates") or {}).items()}
            if isinstance(raw.get("fx_rates"), dict)
            else {}
        )
        rates = {c: v for c, v in rates.items() if v is not None}
        rates[base] = Decimal(1)
        unrealized: dict[str, Decimal] = {}
        for position in self.positions(account_id):
            pnl = position.unrealized_pnl
            if pnl is not None and position.quantity:
                currency = position.contract.currency
                unrealized[currency] = unrealized.get(currency, Decimal(0)) + pnl
        rows: list[tuple[str, str, str]] = []
        if currencies in ("ALL", "BASE"):
            base_cash = sum((amount * rates[c] for c, amount in cash.items() if c in rates), Decimal(0))
            rows += [
                ("CashBalance", _text(base_cash), "BASE"),
                ("TotalCashBalance", _text(base_cash), "BASE"),
                ("ExchangeRate", "1.00", "BASE"),
            ]
            if values.get("NetLiquidation") is not None:
                rows.append(("NetLiquidationByCurrency", str(values["NetLiquidation"]), "BASE"))
            for tag in ("UnrealizedPnL", "RealizedPnL"):
                if values.get(tag) is not None:
                    rows.append((tag, str(values[tag]), "BASE"))
        wanted = sorted(set(cash) | set(unrealized)) if currencies == "ALL" else [currencies]
        if currencies == "BASE":
            wanted = []
        for currency in wanted:
            amount = cash.get(currency, Decimal(0))
            rows += [
                ("CashBalance", _text(amount), currency),
                ("TotalCashBalance", _text(amount), currency),
            ]
            if currency in rates:
                rows.append(("ExchangeRate", _text(rates[currency]), currency))
            rows.append(("UnrealizedPnL", _text(unrealized.get(currency, Decimal(0))), currency))
            rows.append(("RealizedPnL", "0.00", currency))
        return rows

    def update_values(self, account_id: str) -> list[tuple[str, str, str]]:
        """What reqAccountUpdates sends for the account: its values and the ledger rows."""
        account = self.account(account_id)
        if account is None:
            return []
        rows = [("AccountCode", account_id, ""), ("Currency", account.base_currency, account.base_currency)]
        return rows + self.summary_values(account_id) + self.ledger_values(account_id)

    # --- positions -----------------------------------------------------------------------------
    def positions(self, account_id: str) -> list[WirePosition]:
        if self.account(account_id) is None:
            return []
        fetched = self.broker.positions(account_id)
        self._warn(fetched.warnings)
        return [self._position(account_id, p) for p in self._after_expiries(account_id, list(fetched.items))]

    def _after_expiries(self, account_id: str, items: list[BrokerPosition]) -> list[BrokerPosition]:
        """An expiry weekend, scripted: an option row with ``at_expiry`` (``expire``, ``exercise`` or
        ``assign``; ``at_expiry_contracts`` for part of it, the rest expiring) is, once its expiry day's
        16:00 New York has passed, gone from the positions, and an exercise or assignment moves the
        underlying's stock row (made if absent) by contracts x multiplier at the strike, the premium in
        its cost, as IBKR's positions show them after the weekend's processing. Without ``at_expiry`` the option stays
        listed, as while IBKR is still processing. (Early closes are not modelled here.)"""
        scripts = {}
        for row in self._raw_account(account_id).get("positions") or ():
            if isinstance(row, dict) and row.get("at_expiry") in EXPIRY_ACTIONS:
                try:
                    scripts[_instrument(row).key] = row
                except Exception:  # noqa: S112 - the parser has already warned about a malformed row
                    continue
        if not scripts:
            return items
        now = datetime.now(UTC)
        kept: list[BrokerPosition] = []
        deliveries: list[tuple[InstrumentSpec, Decimal, Decimal]] = []
        for position in items:
            spec = position.instrument
            row = scripts.get(spec.key)
            if row is None or spec.expiry is None or now < _expiry_close(spec.expiry):
                kept.append(position)
                continue
            action = row["at_expiry"]
            if action == "expire" or spec.strike is None:
                continue
            contracts = _decimal(row.get("at_expiry_contracts")) or abs(position.quantity)
            direction = (1 if spec.right == "C" else -1) * (1 if position.quantity > 0 else -1)
            # IBKR puts the premium into the delivered stock's cost: a call's adds to it, a put's takes
            # from it (a short put assigned at 50 for 2.00 shows 48.00; a long call at 50 bought for 3.00, 53.00).
            premium = position.average_price * (1 if spec.right == "C" else -1)
            deliveries.append((spec, contracts * spec.multiplier * direction, spec.strike + premium))
        for option, shares, strike in deliveries:
            key = InstrumentSpec(symbol=option.symbol, currency=option.currency).key
            index = next((i for i, p in enumerate(kept) if p.instrument.key == key), None)
            if index is None:
                spec = InstrumentSpec(symbol=option.symbol, currency=option.currency)
                kept.append(BrokerPosition(account_id, spec, shares, strike, strike))
                continue
            held = kept[index]
            quantity = held.quantity + shares
            grows = quantity and (held.quantity == 0 or (shares > 0) == (held.quantity > 0))
            average = (held.quantity * held.average_price + shares * strike) / quantity if grows else held.average_price
            kept[index] = BrokerPosition(account_id, held.instrument, quantity, average, held.market_price)
        return [p for p in kept if p.quantity]

    @staticmethod
    def _position(account_id: str, p: BrokerPosition) -> WirePosition:
        multiplier = p.instrument.multiplier
        return WirePosition(
            account=account_id,
            contract=wire_contract(p.instrument),
            quantity=p.quantity,
            avg_cost=p.average_price * multiplier,
            market_price=p.market_price,
            multiplier=multiplier,
            average_price=p.average_price,
        )

    # --- executions ----------------------------------------------------------------------------
    def executions(self, account_id: str) -> list[WireExecution]:
        if self.account(account_id) is None:
            return []
        fetched = self.broker.executions(account_id)
        self._warn(fetched.warnings)
        rows = []
        for execution in fetched.items:
            raw = execution.raw
            delay = _decimal(raw.get("commission_delay"))
            client_id = raw.get("client_id")
            rows.append(
                WireExecution(
                    account=account_id,
                    contract=wire_contract(execution.instrument),
                    row=execution,
                    client_id=client_id if isinstance(client_id, int) and not isinstance(client_id, bool) else 0,
                    commission_delay=float(delay) if delay is not None and delay > 0 else None,
                    realized_pnl=_decimal(raw.get("realized_pnl")),
                )
            )
        return rows

    # --- instruments ---------------------------------------------------------------------------
    def instruments(self) -> list[WireContract]:
        """Every contract the file mentions: positions, executions, and the symbols of bars and quotes."""
        found: dict[int, WireContract] = {}
        for account_id in self.account_ids():
            for position in self.positions(account_id):
                found.setdefault(position.contract.con_id, position.contract)
            for execution in self.executions(account_id):
                found.setdefault(execution.contract.con_id, execution.contract)
        symbols = set()
        for key in ("bars", "quotes"):
            table = self.raw.get(key)
            if isinstance(table, dict):
                symbols |= {s.upper() for s in table if isinstance(s, str) and s.strip()}
        for chain in self.option_chains().values():
            symbols.add(chain.symbol)
            for contract in self.chain_contracts(chain):
                found.setdefault(contract.con_id, contract)
        stocks = {c.symbol for c in found.values() if c.sec_type == SecType.STOCK}
        for symbol in sorted(symbols - stocks):
            contract = wire_contract(InstrumentSpec(symbol=symbol))
            found.setdefault(contract.con_id, contract)
        return list(found.values())

    def lookup(self, wanted: dict[str, str]) -> list[WireContract]:
        """The known contracts matching a request's contract fields (blank fields match anything)."""
        con_id = _int(wanted.get("conId"))
        symbol = (wanted.get("symbol") or "").upper()
        sec_type = (wanted.get("secType") or "").upper()
        currency = (wanted.get("currency") or "").upper()
        expiry = (wanted.get("lastTradeDateOrContractMonth") or "").replace("-", "")
        strike = _decimal(wanted.get("strike"))
        right = {"CALL": "C", "PUT": "P"}.get((wanted.get("right") or "").upper(), (wanted.get("right") or "").upper())
        local_symbol = wanted.get("localSymbol") or ""
        matches = []
        for contract in self.instruments():
            if con_id and contract.con_id != con_id:
                continue
            if symbol and contract.symbol != symbol:
                continue
            if sec_type and contract.sec_type != sec_type:
                continue
            if currency and contract.currency != currency:
                continue
            if expiry and not contract.last_trade.startswith(expiry):
                continue
            if strike and contract.strike != strike:
                continue
            if right and right != "?" and contract.right != right:
                continue
            if local_symbol and contract.local_symbol != local_symbol:
                continue
            if not (con_id or symbol or local_symbol):
                continue
            matches.append(contract)
        return matches

    # --- market data ---------------------------------------------------------------------------
    def bars(self, symbol: str, bar_size: str) -> list[Bar]:
        fetched = self.broker.bars(symbol, bar_size)
        self._warn(fetched.warnings)
        return list(fetched.items)

    def fx_history(self, currency: str, base: str) -> list[FxDay] | None:
        """The state file's daily rates of the cash pair ``currency.base``; None when it lists no such pair
        (the simulator then answers "no security definition", as IBKR does for a pair it does not list)."""
        history = self.raw.get("fx_history")
        listed = history.get(base) if isinstance(history, dict) else None
        if not isinstance(listed, dict) or currency not in listed:
            return None
        fetched = self.broker.fx_history(currency, base, date.min, date.max)
        self._warn(fetched.warnings)
        return list(fetched.items)

    def quote(self, symbol: str) -> Quote | None:
        """The ``quotes`` row; without one, an underlying of ``option_flow`` is priced at the
        ``underlying_price`` of its latest print (a last price, no bid or ask)."""
        quote = self.broker.quote(symbol)
        if quote is not None:
            return quote
        latest = None
        for p in self.option_prints():
            if p.underlying == symbol and p.underlying_price is not None and (latest is None or p.time >= latest.time):
                latest = p
        if latest is None:
            return None
        return Quote(symbol=symbol, bid=None, ask=None, last=latest.underlying_price, at=latest.time)

    # --- options ---------------------------------------------------------------------------------
    def option_prints(self) -> list[OptionPrint]:
        """The ``option_flow`` rows (sentiment-feed.md's ``options_flow`` shape) that have happened
        (time not after now): what the exchanges have printed so far."""
        if self._prints is None:
            fetched = self.broker.option_prints([])
            self._warn(fetched.warnings)
            now = datetime.now(UTC)
            self._prints = [p for p in fetched.items if p.time <= now]
        return self._prints

    def option_chains(self) -> dict[str, OptionChain]:
        """Each underlying's chain: the ``option_chains`` section (``{"NVDA": {"expiries": [...],
        "strikes": [...], "multiplier": "100"}}``, or ``"expiries": {"2026-12-18": [strikes]}`` for
        strikes per expiry) joined with the contracts ``option_flow`` prints."""
        if self._chains is not None:
            return self._chains
        strikes: dict[str, dict[date, set[Decimal]]] = {}
        multipliers: dict[str, Decimal] = {}
        raw = self.raw.get("option_chains")
        for symbol, row in raw.items() if isinstance(raw, dict) else ():
            if not isinstance(symbol, str) or not isinstance(row, dict):
                logger.warning("ibgateway_sim: option_chains.%s: expected an object; ignored", symbol)
                continue
            symbol = symbol.strip().upper()
            by_expiry = strikes.setdefault(symbol, {})
            multipliers[symbol] = _decimal(row.get("multiplier")) or Decimal(100)
            expiries = row.get("expiries")
            grid = {e: row.get("strikes") for e in expiries} if isinstance(expiries, list) else expiries
            for raw_expiry, listed in grid.items() if isinstance(grid, dict) else ():
                try:
                    expiry = date.fromisoformat(str(raw_expiry))
                except ValueError:
                    logger.warning("ibgateway_sim: option_chains.%s: expiry %r is not a date", symbol, raw_expiry)
                    continue
                values = {_decimal(k) for k in listed} if isinstance(listed, list) else set()
                by_expiry.setdefault(expiry, set()).update(k for k in values if k is not None and k > 0)
        for p in self.option_prints():
            strikes.setdefault(p.underlying, {}).setdefault(p.expiry, set()).add(p.strike)
            multipliers.setdefault(p.underlying, p.multiplier)
        self._chains = {s: OptionChain(s, multipliers.get(s, Decimal(100)), e) for s, e in strikes.items()}
        return self._chains

    @staticmethod
    def chain_contracts(chain: OptionChain) -> list[WireContract]:
        return [
            wire_contract(
                InstrumentSpec(
                    symbol=chain.symbol,
                    sec_type=SecType.OPTION,
                    multiplier=chain.multiplier,
                    expiry=expiry,
                    strike=strike,
                    right=right,
                )
            )
            for expiry, listed in sorted(chain.strikes_by_expiry.items())
            for strike in sorted(listed)
            for right in ("C", "P")
        ]

    def option_market(self, contract: WireContract) -> OptionMarket:
        """A contract's market: its prints of the latest session (New York date) it printed in. Day
        volume is the sum of their sizes, or the largest ``volume`` a print states if that is more
        (the feed's day volume counts trades the feed does not list); last price, size and time, bid,
        ask and open interest are the latest print's. No print: volume 0 and nothing else."""
        prints = [
            p
            for p in self.option_prints()
            if p.underlying == contract.symbol
            and p.expiry.strftime("%Y%m%d") == contract.last_trade
            and p.strike == contract.strike
            and p.right == contract.right
        ]
        if not prints:
            return OptionMarket(volume=Decimal(0))
        zone = ZoneInfo("America/New_York")
        prints.sort(key=lambda p: (p.time, p.print_id))
        latest = prints[-1]
        session = latest.time.astimezone(zone).date()
        day = [p for p in prints if p.time.astimezone(zone).date() == session]
        stated = [p.volume for p in day if p.volume is not None]
        interest = next((p.open_interest for p in reversed(day) if p.open_interest is not None), None)
        return OptionMarket(
            volume=max([sum((p.size for p in day), Decimal(0)), *stated]),
            last=latest.price,
            last_size=latest.size,
            last_time=latest.time,
            bid=latest.bid,
            ask=latest.ask,
            open_interest=interest,
        )

    def model_greeks(self, con_id: int) -> tuple[OptionGreeks, Decimal | None] | None:
        """The broker's model Greeks of an option (a position row's ``greeks``) with its market price."""
        for account_id in self.account_ids():
            for position in self.broker.positions(account_id).items:
                if position.greeks is not None and wire_contract(position.instrument).con_id == con_id:
                    return position.greeks, position.market_price
        return None


def _expiry_close(expiry: date) -> datetime:
    """16:00 New York on the expiry day (the simulator does not model early closes)."""
    return datetime.combine(expiry, time(16), tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _text(value: Decimal) -> str:
    """An amount as IBKR writes account values: at least two decimals."""
    if value.as_tuple().exponent >= -2:
        return f"{value.quantize(Decimal('0.01')):f}"
    return f"{value.normalize():f}"


# --- fills written back -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fill:
    account: str
    contract: WireContract
    exec_id: str
    order_id: int
    perm_id: int
    client_id: int
    side: str  # BUY / SELL
    quantity: Decimal
    price: Decimal
    commission: Decimal
    time: datetime
    exchange: str = "ISLAND"


def _same_contract(row: dict, contract: WireContract) -> bool:
    if _int(row.get("con_id")) and _int(row.get("con_id")) == contract.con_id:
        return True
    if str(row.get("symbol", "")).upper() != contract.symbol:
        return False
    if str(row.get("sec_type") or "STK").upper() != contract.sec_type:
        return False
    if contract.sec_type == SecType.STOCK:
        return True
    expiry = str(row.get("expiry", "")).replace("-", "")
    return expiry == contract.last_trade and str(row.get("right", "")).upper() == contract.right


def _multiplier(contract: WireContract) -> Decimal:
    return Decimal(contract.multiplier) if contract.multiplier else Decimal(1)


def _contract_row(contract: WireContract) -> dict:
    row: dict[str, Any] = {
        "symbol": contract.symbol,
        "sec_type": contract.sec_type,
        "con_id": contract.con_id,
        "currency": contract.currency,
        "exchange": contract.exchange,
        "multiplier": f"{_multiplier(contract).normalize():f}",
    }
    if contract.last_trade:
        row["expiry"] = date(
            int(contract.last_trade[:4]), int(contract.last_trade[4:6]), int(contract.last_trade[6:8])
        ).isoformat()
    if contract.strike is not None and contract.sec_type != SecType.STOCK:
        row["strike"] = f"{contract.strike.normalize():f}"
        row["right"] = contract.right
    return row


def fill_record(path: str | Path, fill: Fill) -> None:
    """Write a fill into the state file: the execution, the position it changes, the cash it moves.

    The file is read, changed and replaced atomically (a rename), so a reader sees the old file or
    the new one. Average cost follows IBKR: it moves only when a position grows (or flips).
    """
    path = Path(path)
    state = json.loads(path.read_text(encoding="utf-8"))
    account = next(
        (a for a in state.get("accounts") or () if isinstance(a, dict) and a.get("account_id") == fill.account), None
    )
    if account is None:
        raise StateError(f"account {fill.account} is not in {path}")
    multiplier = _multiplier(fill.contract)
    signed = fill.quantity if fill.side == "BUY" else -fill.quantity
    execution = {
        "exec_id": fill.exec_id,
        "order_id": fill.order_id,
        "perm_id": fill.perm_id,
        "client_id": fill.client_id,
        **_contract_row(fill.contract),
        "exchange": fill.exchange,
        "side": fill.side,
        "quantity": f"{fill.quantity.normalize():f}",
        "price": f"{fill.price.normalize():f}",
        "commission": f"{fill.commission:f}",
        "time": fill.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    account.setdefault("executions", []).append(execution)

    positions = account.setdefault("positions", [])
    row = next((p for p in positions if isinstance(p, dict) and _same_contract(p, fill.contract)), None)
    if row is None:
        row = {**_contract_row(fill.contract), "quantity": "0", "avg_cost": "0"}
        positions.append(row)
    old_quantity = _decimal(row.get("quantity")) or Decimal(0)
    old_cost = _decimal(row.get("avg_cost")) or Decimal(0)
    new_quantity = old_quantity + signed
    fill_cost = fill.price * multiplier
    if old_quantity == 0 or ((old_quantity > 0) != (new_quantity > 0) and new_quantity != 0):
        new_cost = fill_cost  # opened, or flipped through zero: the fill's price
    elif abs(new_quantity) > abs(old_quantity):
        new_cost = (old_cost * abs(old_quantity) + fill_cost * fill.quantity) / abs(new_quantity)
    else:
        new_cost = old_cost  # reduced or closed: IBKR's average cost stays
    row["quantity"] = f"{new_quantity.normalize():f}"
    row["avg_cost"] = f"{new_cost.quantize(Decimal('0.00000001')).normalize():f}"
    row.setdefault("market_price", f"{fill.price.normalize():f}")

    cash_move = -signed * fill.price * multiplier - fill.commission
    values = account.get("values")
    if isinstance(values, dict):
        for tag, change in (("TotalCashValue", cash_move), ("NetLiquidation", -fill.commission)):
            current = _decimal(values.get(tag))
            if current is not None:
                values[tag] = f"{(current + change).quantize(Decimal('0.01')):f}"
    balances = account.get("cash_balances")
    if isinstance(balances, dict) and fill.contract.currency in balances:
        current = _decimal(balances[fill.contract.currency])
        if current is not None:
            balances[fill.contract.currency] = f"{(current + cash_move).quantize(Decimal('0.01')):f}"

    handle, temporary = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(state, file, indent=2)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
