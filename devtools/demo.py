"""The demo broker: a believable, deterministic state file for the simulated broker, and a tick that
walks it forward (docs: broker-state.md).

Everything comes from a seed through ``random.Random`` (never the global generator) and is computed
with Decimal, so one seed and one ``now`` always give the same file. Positions, cash and account
values are never kept apart from the fills: they are recomputed by replaying each account's
executions and cash flows, so however many ticks run they cannot drift from what the fills say.

Sessions are the NYSE's (``trading.calendars``: holidays skipped, early closes kept), from 09:30
New York time (``EXCHANGE_TIME_ZONE``); settlement follows the same calendar as the ledger.
"""

import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path

from portfolio.rules.greeks import bsm_greeks, days_to_expiry
from trading.calendars import (
    exchange_zone,
    is_nyse_session,
    previous_sessions,
    session_close,
    session_open,
    settlement_date,
)

DEFAULT_SEED = 7
MARGIN_ACCOUNT_ID = "DU1234567"
CASH_ACCOUNT_ID = "U7654321"

SESSION_OPEN = time(9, 30)
BAR_SESSIONS = 60  # daily bars the fills are priced from: about three months
HISTORY_SESSIONS = 200  # daily bars before those, for charts: a year of daily bars in all
HOURLY_SESSIONS = 60  # 1h bars of the last sessions (about three months)
FIVE_MINUTE_SESSIONS = 10  # 5m bars of the last sessions (two weeks)
TRADING_SESSIONS = 30  # fills: about six weeks before now

ZERO = Decimal(0)
CENT = Decimal("0.01")
DEMO_RATE = Decimal("0.04")  # the rate the demo broker's model Greeks assume
GREEK_PLACES = Decimal("0.0001")
AVG_COST_PLACES = Decimal("0.0001")
BUY, SELL = "BUY", "SELL"

# symbol -> (IBKR con_id, price 60 sessions ago, typical daily volume)
STOCKS: dict[str, tuple[int, str, int]] = {
    "AAPL": (265598, "228.00", 52_000_000),
    "AMD": (4391, "150.00", 45_000_000),
    "AMZN": (3691937, "195.00", 40_000_000),
    "META": (107113386, "560.00", 14_000_000),
    "MSFT": (272093, "415.00", 21_000_000),
    "NVDA": (4815747, "135.00", 240_000_000),
    "QQQ": (320227571, "495.00", 35_000_000),
    "SPY": (756733, "585.00", 60_000_000),
    "TSLA": (76792991, "250.00", 95_000_000),
}
# A stock listed in another currency than the accounts' base (USD): SAP on Xetra, in EUR. Its prices walk
# with their own random stream and its fills follow a fixed plan, so the USD history stays as it was.
FOREIGN_STOCKS: dict[str, tuple[int, str, int, str, str]] = {  # symbol -> (con_id, start, volume, currency, venue)
    "SAP": (14204, "235.00", 2_500_000, "EUR", "IBIS"),
}
# What the history's decisions (cash available) assume a euro is worth; the account's values use the
# broker's rate the state carries (`fx_rates`, set by _fx_demo).
DEMO_FX_RATES = {"EUR": Decimal("1.16")}
# (session index, side, shares) in the margin account, at 16:00 Frankfurt (10:00 New York, while both are
# open): a round trip closed in the
# history (bought in two fills, sold at once), then a position held now.
FOREIGN_FILL_PLAN = ((3, "BUY", 40), (9, "BUY", 20), (14, "SELL", 60), (20, "BUY", 50))
STOCK_VENUES = ("ISLAND", "ARCA", "NYSE", "BATS", "IEX")
DAY_TRADE_KINDS = ("long", "scale_in", "short", "scale_out")

# Cash moves (session index, account, kind, amount). The initial deposits come before the first fill.
CASH_FLOW_PLAN = (
    (0, MARGIN_ACCOUNT_ID, "DEPOSIT", Decimal("100000.00")),
    (0, CASH_ACCOUNT_ID, "DEPOSIT", Decimal("30000.00")),
    (12, MARGIN_ACCOUNT_ID, "DEPOSIT", Decimal("15000.00")),
    (22, MARGIN_ACCOUNT_ID, "WITHDRAWAL", Decimal("5000.00")),
)
OPTION_OPEN_SESSION, OPTION_OPEN_CONTRACTS = 2, 3  # sell 3 calls to open...
OPTION_TRIM_SESSION, OPTION_TRIM_CONTRACTS = 16, 1  # ...buy 1 back later: short 2 remain
# 2 SPY puts far out of the money bought here expire worthless on a Friday of the history: the broker
# drops them after that close and the position sync settles them (EXPIRED, the premium lost).
EXPIRING_PUT_SESSION, EXPIRING_PUT_CONTRACTS = 4, 2
MARGIN_GROSS_CAP = Decimal("180000")  # keeps the margin account's borrowing believable

# Execution ids look like IBKR's ("0000e0d5.6553a1b2.01.01"); ticks use a range the history never reaches.
TICK_SERIAL_BASE = 0x40000000


# --- contracts and the average-cost book ---------------------------------------------------------
@dataclass(frozen=True)
class Contract:
    symbol: str
    con_id: int | None
    sec_type: str = "STK"
    multiplier: Decimal = Decimal(1)
    expiry: date | None = None
    strike: Decimal | None = None
    right: str = ""
    currency: str = "USD"

    def fields(self) -> dict:
        """The instrument part of a position or execution row."""
        row: dict = {"symbol": self.symbol, "sec_type": self.sec_type, "con_id": self.con_id, "currency": self.currency}
        if self.sec_type != "STK":
            row.update(
                multiplier=_text(self.multiplier),
                expiry=self.expiry.isoformat(),
                strike=_text(self.strike),
                right=self.right,
            )
        return row


def _stock(symbol: str) -> Contract:
    if symbol in FOREIGN_STOCKS:
        return Contract(symbol=symbol, con_id=FOREIGN_STOCKS[symbol][0], currency=FOREIGN_STOCKS[symbol][3])
    return Contract(symbol=symbol, con_id=STOCKS[symbol][0])


def _contract_from_row(row: dict) -> Contract:
    sec_type = row.get("sec_type", "STK")
    if sec_type == "STK":
        return Contract(symbol=row["symbol"], con_id=row.get("con_id"), currency=row.get("currency", "USD"))
    return Contract(
        symbol=row["symbol"],
        con_id=row.get("con_id"),
        sec_type=sec_type,
        multiplier=Decimal(row.get("multiplier", "100")),
        expiry=date.fromisoformat(row["expiry"]),
        strike=Decimal(row["strike"]),
        right=row["right"],
    )


@dataclass
class Holding:
    quantity: Decimal = ZERO  # signed
    basis: Decimal = ZERO  # what the open quantity cost, commissions in: IBKR's avg_cost x |quantity|


@dataclass
class AverageCostBook:
    """An account rebuilt from its fills and cash flows, the way IBKR's average cost sees it."""

    account_id: str
    account_type: str
    cash: Decimal = ZERO
    holdings: dict[Contract, Holding] = field(default_factory=dict)
    realized: dict[date, Decimal] = field(default_factory=dict)  # by exchange trade date
    # The broker's rate of each foreign currency to the base (USD), and the cash the foreign fills moved,
    # in its own currency: it stays in that currency (a EUR balance), valued at the rate.
    rates: dict[str, Decimal] = field(default_factory=lambda: dict(DEMO_FX_RATES))
    foreign_cash: dict[str, Decimal] = field(default_factory=dict)

    def rate(self, currency: str) -> Decimal:
        return Decimal(1) if currency == "USD" else self.rates.get(currency, DEMO_FX_RATES.get(currency, Decimal(1)))

    sales: list[tuple[date, Decimal]] = field(default_factory=list)  # (settlement date, net proceeds)

    def cash_flow(self, kind: str, amount: Decimal) -> None:
        self.cash += amount if kind == "DEPOSIT" else -amount

    def quantity(self, contract: Contract) -> Decimal:
        holding = self.holdings.get(contract)
        return holding.quantity if holding else ZERO

    def expire(self, now: datetime) -> None:
        """Options past their expiry session's close leave the book as the broker drops them: worthless
        (the demo's expiring option is far out of the money), the premium paid or kept realized."""
        for contract, holding in list(self.holdings.items()):
            if contract.expiry is None or not holding.quantity or now < session_close(contract.expiry):
                continue
            realized = -holding.basis if holding.quantity > 0 else holding.basis
            self.realized[contract.expiry] = self.realized.get(contract.expiry, ZERO) + realized
            del self.holdings[contract]

    def unsettled(self, on: date) -> Decimal:
        """Sale proceeds that have not settled by ``on``; buying with them risks a good-faith violation."""
        return sum((amount for settles, amount in self.sales if settles > on), ZERO)

    def fill(
        self, contract: Contract, side: str, quantity: Decimal, price: Decimal, commission: Decimal, at: datetime
    ) -> None:
        # The book's cash and realized P&L are in the base currency (USD): a foreign fill's cash stays in
        # its currency (``foreign_cash``) and counts at the broker's rate; positions keep their own currency.
        rate = self.rate(contract.currency)
        gross = quantity * price * contract.multiplier * rate
        commission_base = commission * rate
        trade_date = _exchange_date(at)
        if contract.currency != "USD":
            flow = quantity * price * contract.multiplier * (-1 if side == BUY else 1) - commission
            self.foreign_cash[contract.currency] = self.foreign_cash.get(contract.currency, ZERO) + flow
        if side == BUY:
            self.cash -= gross + commission_base
        else:
            self.cash += gross - commission_base
            self.sales.append((_settlement_date(trade_date), gross - commission_base))
        realized = self._position_apply(contract, side, quantity, price * contract.multiplier, commission)
        self.realized[trade_date] = self.realized.get(trade_date, ZERO) + realized * rate

    def _position_apply(
        self, contract: Contract, side: str, quantity: Decimal, unit_value: Decimal, commission: Decimal
    ) -> Decimal:
        """Close against the open position first, then open with what is left; return realized P&L.

        Closing keeps the average cost of what stays open; commissions are shared pro rata between
        the closing and the opening part of a fill that flips the position.
        """
        holding = self.holdings.setdefault(contract, Holding())
        direction = 1 if side == BUY else -1
        closing = min(quantity, abs(holding.quantity)) if holding.quantity * direction < 0 else ZERO
        realized = ZERO
        if closing:
            fee = commission * closing / quantity
            released = holding.basis * closing / abs(holding.quantity)
            if holding.quantity > 0:
                realized = closing * unit_value - fee - released
            else:
                realized = released - closing * unit_value - fee
            holding.basis -= released
            holding.quantity += direction * closing
        opening = quantity - closing
        if opening:
            fee = commission * opening / quantity
            # A long's cost includes its commission; a short's basis is its proceeds net of commission.
            holding.basis += opening * unit_value + direction * fee
            holding.quantity += direction * opening
        if holding.quantity == 0:
            holding.basis = ZERO
        return realized


def _book_replay(account: dict, now: datetime | None = None) -> AverageCostBook:
    """Rebuild an account from its rows. Cash flows go first at equal times: a deposit funds a fill.
    With ``now``, options that have expired by then are gone, as at the broker."""
    book = AverageCostBook(account_id=account["account_id"], account_type=account.get("account_type", "MARGIN"))
    book.rates.update({currency: Decimal(rate) for currency, rate in (account.get("fx_rates") or {}).items()})
    events = [(_parse_time(f["time"]), 0, f) for f in account.get("cash_flows", [])]
    events += [(_parse_time(e["time"]), 1, e) for e in account.get("executions", [])]
    for at, is_fill, row in sorted(events, key=lambda event: (event[0], event[1])):
        if is_fill:
            book.fill(
                _contract_from_row(row),
                row["side"],
                Decimal(row["quantity"]),
                Decimal(row["price"]),
                Decimal(row.get("commission", "0")),
                at,
            )
        else:
            book.cash_flow(row["kind"], Decimal(row["amount"]))
    if now is not None:
        book.expire(now)
    return book


# --- small helpers ---------------------------------------------------------------------------------
def _text(value: Decimal | int) -> str:
    """A decimal as the file wants it: a plain string, never a float, never an exponent."""
    return f"{Decimal(value):f}"


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _exchange_date(moment: datetime) -> date:
    return moment.astimezone(exchange_zone()).date()


def _exchange_time(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=exchange_zone()).astimezone(UTC)


def _session_before(day: date) -> date:
    return previous_sessions(day - timedelta(days=1), 1)[0]


def _settlement_date(trade_date: date) -> date:
    """What decides whether a cash account may spend the proceeds yet: the ledger's own rule."""
    return settlement_date(trade_date=trade_date, sec_type="STK")


def _in_session(moment: datetime) -> bool:
    day = moment.astimezone(exchange_zone()).date()
    return is_nyse_session(day) and _exchange_time(day, SESSION_OPEN) <= moment < session_close(day)


def _latest_session(now: datetime) -> date:
    """The session whose daily bar is the newest at ``now``: today once the market has opened."""
    local = now.astimezone(exchange_zone())
    if is_nyse_session(local.date()) and local.time() >= SESSION_OPEN:
        return local.date()
    return _session_before(local.date())


def _sessions_until(now: datetime, count: int) -> list[date]:
    return previous_sessions(_latest_session(now), count)


def _third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def _commission(contract: Contract, quantity: Decimal, price: Decimal) -> Decimal:
    """IBKR Pro fixed: stocks 0.005/share (min 1.00, max 1% of value); options 0.65/contract (min 1.00)."""
    if contract.sec_type == "OPT":
        return _cents(max(Decimal("1.00"), Decimal("0.65") * quantity))
    fee = max(Decimal("1.00"), Decimal("0.005") * quantity)
    return _cents(min(fee, quantity * price / 100))


def _option_price(*, underlying: Decimal, contract: Contract, on: date) -> Decimal:
    """A rough but smooth premium: intrinsic value plus time value that fades with moneyness and time."""
    days = max((contract.expiry - on).days, 0)
    moneyness = underlying - contract.strike if contract.right == "C" else contract.strike - underlying
    intrinsic = max(moneyness, ZERO)
    spread = underlying * Decimal("0.18") * (Decimal(days) / 365).sqrt()  # one standard deviation to expiry
    time_value = ZERO
    if spread > 0:
        time_value = Decimal("0.4") * spread * (-abs(underlying - contract.strike) / spread).exp()
    return max(_cents(intrinsic + time_value), CENT)


# --- prices ----------------------------------------------------------------------------------------
@dataclass
class DayBar:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int

    def price_inside(self, rng: random.Random) -> Decimal:
        """A fill price within the day's range (a cent-rounded point between low and high stays inside)."""
        return _cents(self.low + (self.high - self.low) * rng.randint(0, 100) / 100)

    def row(self, day: date) -> dict:
        return {
            "time": f"{day.isoformat()}T00:00:00Z",
            "open": _text(self.open),
            "high": _text(self.high),
            "low": _text(self.low),
            "close": _text(self.close),
            "volume": _text(self.volume),
        }


def _bars_walk(rng: random.Random, days: list[date], stocks: dict | None = None) -> dict[str, dict[date, DayBar]]:
    """A daily random walk per symbol: an overnight gap, an intraday move, then wicks on both sides."""
    bars: dict[str, dict[date, DayBar]] = {}
    for symbol, (_con_id, start, volume, *_listing) in (STOCKS if stocks is None else stocks).items():
        close = Decimal(start)
        bars[symbol] = {}
        for day in days:
            open_ = _cents(close * (1 + Decimal(rng.randint(-50, 50)) / 10000))
            move = Decimal(rng.randint(-150, 150) + rng.randint(-150, 150)) / 10000
            close = max(_cents(open_ * (1 + move)), Decimal("1.00"))
            high = _cents(max(open_, close) * (1 + Decimal(rng.randint(0, 100)) / 10000))
            low = _cents(min(open_, close) * (1 - Decimal(rng.randint(0, 100)) / 10000))
            bars[symbol][day] = DayBar(open_, high, low, close, volume * rng.randint(60, 140) // 100)
    return bars


def _walk_step(price: Decimal, rng: random.Random) -> Decimal:
    """One 30-second step: a few basis points either way, never below a dollar."""
    return max(_cents(price * (1 + Decimal(rng.randint(-8, 8)) / 10000)), Decimal("1.00"))


def _prices_current(state: dict) -> dict[str, Decimal]:
    """The latest price per stock: the quote's last, else the newest bar's close."""
    prices: dict[str, Decimal] = {}
    for symbol in (*STOCKS, *FOREIGN_STOCKS):
        quote = (state.get("quotes") or {}).get(symbol) or {}
        bars = ((state.get("bars") or {}).get(symbol) or {}).get("1d") or []
        if quote.get("last"):
            prices[symbol] = Decimal(quote["last"])
        elif bars:
            prices[symbol] = Decimal(max(bars, key=lambda bar: bar["time"])["close"])
        else:
            prices[symbol] = Decimal({**STOCKS, **FOREIGN_STOCKS}[symbol][1])
    return prices


def _bars_touch(state: dict, prices: dict[str, Decimal], day: date, rng: random.Random) -> None:
    """Fold the new prices into ``day``'s bar, opening the bar at the current price if the day is new."""
    stamp = f"{day.isoformat()}T00:00:00Z"
    for symbol, price in prices.items():
        rows = state.setdefault("bars", {}).setdefault(symbol, {}).setdefault("1d", [])
        volume = {**STOCKS, **FOREIGN_STOCKS}[symbol][2] // 2000 * rng.randint(1, 10)
        row = next((r for r in rows if r.get("time") == stamp), None)
        if row is None:
            rows.append(DayBar(price, price, price, price, volume).row(day))
            rows.sort(key=lambda r: r["time"])
            continue
        row.update(
            high=_text(max(Decimal(row["high"]), price)),
            low=_text(min(Decimal(row["low"]), price)),
            close=_text(price),
            volume=_text(int(row["volume"]) + volume),
        )


def _marks(book: AverageCostBook, prices: dict[str, Decimal], today: date) -> dict[Contract, Decimal]:
    """Per-unit mark for each open holding; options are priced off their underlying."""
    marks: dict[Contract, Decimal] = {}
    for contract, holding in book.holdings.items():
        if holding.quantity == 0:
            continue
        if contract.sec_type == "OPT" and contract.symbol in prices:
            marks[contract] = _option_price(underlying=prices[contract.symbol], contract=contract, on=today)
        elif contract.symbol in prices:
            marks[contract] = prices[contract.symbol]
        else:  # not a demo symbol: carry it at cost rather than invent a price
            marks[contract] = holding.basis / abs(holding.quantity) / contract.multiplier
    return marks


def _bars_rows(bars: dict[str, dict[date, DayBar]], bar_days: list[date], *, now: datetime, seed: int) -> dict:
    """The state file's bars: a year of daily bars (a walk back in time before the ones the fills are
    priced from), and hourly and five-minute bars inside the recent daily bars, so the market-data
    sync and the position charts have something to show. Its own random stream: the fills stay as
    they were."""
    rng = random.Random(seed * 7_919 + 1)
    earlier = previous_sessions(_session_before(bar_days[0]), HISTORY_SESSIONS)
    rows: dict[str, dict[str, list[dict]]] = {}
    for symbol, by_day in bars.items():
        back: list[tuple[date, DayBar]] = []
        close = by_day[bar_days[0]].open
        for day in reversed(earlier):
            # Walk backwards: this day's close leads to the next day's open.
            close_ = _cents(close * (1 + Decimal(rng.randint(-50, 50)) / 10000))
            move = Decimal(rng.randint(-150, 150) + rng.randint(-150, 150)) / 10000
            open_ = max(_cents(close_ * (1 - move)), Decimal("1.00"))
            high = _cents(max(open_, close_) * (1 + Decimal(rng.randint(0, 100)) / 10000))
            low = _cents(min(open_, close_) * (1 - Decimal(rng.randint(0, 100)) / 10000))
            volume = {**STOCKS, **FOREIGN_STOCKS}[symbol][2]
            back.append((day, DayBar(open_, high, low, close_, volume * rng.randint(60, 140) // 100)))
            close = open_
        daily = [bar.row(day) for day, bar in reversed(back)] + [bar.row(day) for day, bar in by_day.items()]
        rows[symbol] = {
            "1d": daily,
            "1h": [r for day in bar_days[-HOURLY_SESSIONS:] for r in _intraday(by_day[day], day, 60, rng, now)],
            "5m": [r for day in bar_days[-FIVE_MINUTE_SESSIONS:] for r in _intraday(by_day[day], day, 5, rng, now)],
        }
    return rows


def _intraday(bar: DayBar, day: date, minutes: int, rng: random.Random, now: datetime) -> list[dict]:
    """Bars of ``minutes`` inside a daily bar: from its open to its close, touching its high and low once
    each; the first at the open, the others on the step's boundaries, none after ``now``."""
    opens, closes = session_open(day), session_close(day)
    starts, start = [], opens
    while start < closes and start <= now:
        starts.append(start)
        step = minutes * 60
        start = datetime.fromtimestamp((int(start.timestamp()) // step + 1) * step, tz=UTC)
    count = len(starts)
    if not count:
        return []
    # A bridge from open to close, kept inside [low, high].
    points = [bar.open]
    for i in range(1, count):
        drift = (bar.close - points[-1]) / (count - i + 1)
        jitter = (bar.high - bar.low) * Decimal(rng.randint(-12, 12)) / 100
        points.append(min(max(_cents(points[-1] + drift + jitter), bar.low), bar.high))
    points.append(bar.close)
    high_at, low_at = rng.randrange(count), rng.randrange(count)
    volume = bar.volume // max(count, 1)
    rows = []
    for i, moment in enumerate(starts):
        open_, close_ = points[i], points[i + 1]
        high = bar.high if i == high_at else min(bar.high, _cents(max(open_, close_) * Decimal("1.001")))
        low = bar.low if i == low_at else max(bar.low, _cents(min(open_, close_) * Decimal("0.999")))
        rows.append(
            {
                "time": _iso(moment),
                "open": _text(open_),
                "high": _text(high),
                "low": _text(low),
                "close": _text(close_),
                "volume": _text(volume * rng.randint(50, 150) // 100),
            }
        )
    return rows


# --- derived rows: positions, values, quotes ------------------------------------------------------
def _model_greeks(contract: Contract, mark: Decimal, prices: dict[str, Decimal], now: datetime) -> dict | None:
    """The demo broker's model Greeks of an option (what IBKR sends as model Greeks): Black-Scholes-Merton
    at the volatility its mark implies, as the state file's ``greeks``; None when the mark has none."""
    underlying = prices.get(contract.symbol)
    if underlying is None or contract.expiry is None:
        return None
    greeks = bsm_greeks(
        right=contract.right,
        underlying_price=underlying,
        strike=contract.strike,
        days=days_to_expiry(expiry=contract.expiry, now=now),
        option_price=mark,
        price_kind="mark",
        rate=DEMO_RATE,
    )
    if not greeks.known:
        return None
    values = {name: getattr(greeks, name) for name in ("delta", "gamma", "theta", "vega", "iv")}
    return {
        **{name: _text(value.quantize(GREEK_PLACES, ROUND_HALF_UP)) for name, value in values.items()},
        "underlying_price": _text(underlying),
    }


def _positions_rows(
    book: AverageCostBook, marks: dict[Contract, Decimal], prices: dict[str, Decimal], now: datetime
) -> list[dict]:
    rows = []
    open_holdings = [(c, h) for c, h in book.holdings.items() if h.quantity != 0]
    for contract, holding in sorted(open_holdings, key=lambda item: (item[0].sec_type, item[0].symbol)):
        rows.append(
            {
                **contract.fields(),
                "exchange": "SMART",
                "multiplier": _text(contract.multiplier),
                "quantity": _text(holding.quantity),
                "avg_cost": _text((holding.basis / abs(holding.quantity)).quantize(AVG_COST_PLACES, ROUND_HALF_UP)),
                "market_price": _text(marks[contract]),
            }
        )
        if contract.sec_type == "OPT" and (greeks := _model_greeks(contract, marks[contract], prices, now)):
            rows[-1]["greeks"] = greeks
    return rows


def _maintenance_margin(contract: Contract, quantity: Decimal, mark: Decimal, prices: dict[str, Decimal]) -> Decimal:
    """Simplified Reg T maintenance: 25% of longs, 30% of short stock, premium plus 20% for short options."""
    value = abs(quantity) * mark * contract.multiplier
    if contract.sec_type == "OPT":
        if quantity > 0:
            return ZERO
        underlying = prices.get(contract.symbol, mark)
        return value + abs(quantity) * contract.multiplier * underlying * Decimal("0.20")
    return value * (Decimal("0.25") if quantity > 0 else Decimal("0.30"))


def _account_values(
    book: AverageCostBook, marks: dict[Contract, Decimal], prices: dict[str, Decimal], today: date
) -> dict[str, str]:
    market_value = unrealized = maintenance = ZERO
    for contract, mark in marks.items():
        holding = book.holdings[contract]
        value = holding.quantity * mark * contract.multiplier  # signed: a short is a liability
        rate = book.rate(contract.currency)
        market_value += value * rate  # the account's figures are in USD (IBKR's BASE)
        # A long gains what its value exceeds its cost; a short gains what its proceeds exceed its liability.
        unrealized += (value - holding.basis if holding.quantity > 0 else value + holding.basis) * rate
        maintenance += _maintenance_margin(contract, holding.quantity, mark, prices) * rate
    net_liquidation = book.cash + market_value
    settled = book.cash - book.unsettled(today)
    if book.account_type == "CASH":
        maintenance, excess, buying_power = ZERO, book.cash, max(settled, ZERO)
    else:
        excess = net_liquidation - maintenance
        buying_power = max(4 * excess, ZERO)  # IBKR's intraday leverage for a margin account
    return {
        "NetLiquidation": _text(_cents(net_liquidation)),
        "TotalCashValue": _text(_cents(book.cash)),
        "SettledCash": _text(_cents(settled)),
        "BuyingPower": _text(_cents(buying_power)),
        "ExcessLiquidity": _text(_cents(excess)),
        "MaintMarginReq": _text(_cents(maintenance)),
        "UnrealizedPnL": _text(_cents(unrealized)),
        # As IBKR's account summary shows it: realized today (exchange date), not since inception.
        "RealizedPnL": _text(_cents(book.realized.get(today, ZERO))),
        # -1 (unlimited): the margin account's equity is far above $25,000, and the legacy pattern-day-trader
        # limit does not apply to a cash account.
        "DayTradesRemaining": "-1",
    }


def _quotes(prices: dict[str, Decimal], now: datetime) -> dict[str, dict]:
    return {
        symbol: {"bid": _text(price - CENT), "ask": _text(price + CENT), "last": _text(price), "time": _iso(now)}
        for symbol, price in prices.items()
    }


def _state_refresh(state: dict, prices: dict[str, Decimal], now: datetime) -> None:
    """Recompute everything that follows from fills and prices: positions, values and quotes."""
    today = _exchange_date(now)
    for account in state.get("accounts", []):
        book = _book_replay(account, now)
        marks = _marks(book, prices, today)
        account["positions"] = _positions_rows(book, marks, prices, now)
        account["values"] = _account_values(book, marks, prices, today)
        _cash_balances_refresh(account, book.foreign_cash)
    state["quotes"] = _quotes(prices, now)


def _execution_row(
    *,
    exec_id: str,
    serial: int,
    contract: Contract,
    side: str,
    quantity: Decimal,
    price: Decimal,
    at: datetime,
    exchange: str,
) -> dict:
    return {
        "exec_id": exec_id,
        "order_id": serial,
        "perm_id": 900_000_000 + serial,
        **contract.fields(),
        "exchange": exchange,
        "side": side,
        "quantity": _text(quantity),
        "price": _text(price),
        "commission": _text(_commission(contract, quantity, price)),
        # IBKR charges a foreign listing's commission in its currency (the book converts it like the fill).
        **({"commission_currency": contract.currency} if contract.currency != "USD" else {}),
        "time": _iso(at),
    }


# --- the history: six weeks of fills ------------------------------------------------------------
class _History:
    """Writes each account's fills session by session, applying each to a ledger as it goes so that
    every decision (what is open, what the cash account can afford) sees the fills before it."""

    def __init__(
        self,
        *,
        rng: random.Random,
        seed: int,
        bars: dict[str, dict[date, DayBar]],
        option: Contract,
        expiring_put: Contract | None = None,
    ):
        self.rng = rng
        self.seed = seed
        self.bars = bars
        self.option = option
        self.expiring_put = expiring_put
        self.serial = 0
        self.accounts = {
            MARGIN_ACCOUNT_ID: self._account_row(MARGIN_ACCOUNT_ID, "MARGIN"),
            CASH_ACCOUNT_ID: self._account_row(CASH_ACCOUNT_ID, "CASH"),
        }
        self.books = {
            a: AverageCostBook(account_id=a, account_type=row["account_type"]) for a, row in self.accounts.items()
        }
        self.slots: list[datetime] = []
        self.used: set[str] = set()  # symbols already traded this session (so swings are not day trades)

    @staticmethod
    def _account_row(account_id: str, account_type: str) -> dict:
        return {
            "account_id": account_id,
            "account_type": account_type,
            "base_currency": "USD",
            "values": {},
            "positions": [],
            "executions": [],
            "cash_flows": [],
        }

    def session(self, index: int, day: date) -> None:
        self._cash_flows(index, day)
        self._foreign_fills(index, day)
        self._margin_session(index, day)
        self._cash_session(day)

    def _foreign_fills(self, index: int, day: date) -> None:
        """The planned fills of the foreign stocks, at 10:00 New York (16:00 Frankfurt, both open), on their
        own random stream (the US fills stay as they were)."""
        rng = random.Random(self.seed * 31 + index)
        for session, side, shares in FOREIGN_FILL_PLAN:
            if session != index:
                continue
            for symbol, (*_listing, venue) in FOREIGN_STOCKS.items():
                self.serial += 1
                contract = _stock(symbol)
                row = _execution_row(
                    exec_id=f"{self.seed:08x}.{self.serial:08x}.01.01",
                    serial=self.serial,
                    contract=contract,
                    side=side,
                    quantity=Decimal(shares),
                    price=self.bars[symbol][day].price_inside(rng),
                    at=_exchange_time(day, time(10, 0)),
                    exchange=venue,
                )
                self.accounts[MARGIN_ACCOUNT_ID]["executions"].append(row)
                self.books[MARGIN_ACCOUNT_ID].fill(
                    contract,
                    side,
                    Decimal(shares),
                    Decimal(row["price"]),
                    Decimal(row["commission"]),
                    _parse_time(row["time"]),
                )

    def _slots_start(self, day: date, count: int = 24) -> None:
        """Fresh fill times for one account's session: distinct minutes, so its fills are strictly ordered
        and replaying them by time applies them in the order they were planned."""
        start = _exchange_time(day, SESSION_OPEN)
        open_minutes = int((session_close(day) - start).total_seconds() // 60)  # 390, or 210 on early closes
        minutes = sorted(self.rng.sample(range(5, open_minutes - 5), count))  # 09:35 to 5 minutes before the close
        self.slots = [start + timedelta(minutes=m, seconds=self.rng.randint(0, 59)) for m in minutes][::-1]
        self.used = set()

    def _fill(self, account_id: str, contract: Contract, side: str, quantity: int, price: Decimal) -> None:
        self.serial += 1
        at = self.slots.pop()
        exchange = "CBOE" if contract.sec_type == "OPT" else self.rng.choice(STOCK_VENUES)
        row = _execution_row(
            exec_id=f"{self.seed:08x}.{self.serial:08x}.01.01",
            serial=self.serial,
            contract=contract,
            side=side,
            quantity=Decimal(quantity),
            price=price,
            at=at,
            exchange=exchange,
        )
        self.accounts[account_id]["executions"].append(row)
        self.books[account_id].fill(contract, side, Decimal(quantity), price, Decimal(row["commission"]), at)

    def _cash_flows(self, index: int, day: date) -> None:
        for flow_index, (session, account_id, kind, amount) in enumerate(CASH_FLOW_PLAN, start=1):
            if session != index:
                continue
            # 09:00 New York: before the session's first fill, so the first deposit funds the first buy.
            # The opening deposits are dated about 400 days back: the account exists for a year before
            # the fills the demo replays, so `demo_history` can give it a year of hourly snapshots.
            at = _exchange_time(day, time(9, 0)) - (timedelta(days=400) if session == 0 else timedelta(0))
            self.accounts[account_id]["cash_flows"].append(
                {
                    "id": f"cf-{flow_index}",
                    "time": _iso(at),
                    "kind": kind,
                    "amount": _text(amount),
                }
            )
            self.books[account_id].cash_flow(kind, amount)

    def _shares_for(self, notional: int, price: Decimal, lot: int = 5) -> int:
        shares = int((Decimal(notional) / price).to_integral_value(ROUND_FLOOR))
        return max(lot, shares // lot * lot)

    # --- margin account: day trades, swing trades and a short call ---------------------------------
    def _margin_session(self, index: int, day: date) -> None:
        self._slots_start(day)
        # Cycling the first day trade's kind guarantees every pattern (incl. short/cover, partial close).
        actions = [(self._day_trade, DAY_TRADE_KINDS[index % len(DAY_TRADE_KINDS)])]
        actions += [(self._day_trade, self.rng.choice(DAY_TRADE_KINDS)) for _ in range(self.rng.randint(1, 2))]
        actions += [(self._swing, None)] * self.rng.randint(3, 5)
        if index == OPTION_OPEN_SESSION:
            actions.append((self._option_trade, SELL))
        if index == OPTION_TRIM_SESSION:
            actions.append((self._option_trade, BUY))
        self.rng.shuffle(actions)
        for action, argument in actions:
            action(day, argument)
        if index == EXPIRING_PUT_SESSION and self.expiring_put is not None:
            # After the others and without the generator: the rest of the history stays as it was.
            premium = _option_price(underlying=self.bars["SPY"][day].close, contract=self.expiring_put, on=day)
            self._fill(MARGIN_ACCOUNT_ID, self.expiring_put, BUY, EXPIRING_PUT_CONTRACTS, premium)

    def _day_trade(self, day: date, kind: str) -> None:
        book = self.books[MARGIN_ACCOUNT_ID]
        flat = [s for s in STOCKS if s not in self.used and book.quantity(_stock(s)) == 0]
        if not flat:
            return
        symbol = self.rng.choice(flat)
        self.used.add(symbol)
        bar = self.bars[symbol][day]
        shares = self._shares_for(self.rng.randint(8000, 20000), bar.close, lot=10)
        half = shares // 2
        legs = {
            "long": [(BUY, shares), (SELL, shares)],
            "scale_in": [(BUY, half), (BUY, half), (SELL, 2 * half)],
            "short": [(SELL, shares), (BUY, shares)],
            "scale_out": [(BUY, shares), (SELL, half), (SELL, shares - half)],
        }[kind]
        for side, quantity in legs:
            self._fill(MARGIN_ACCOUNT_ID, _stock(symbol), side, quantity, bar.price_inside(self.rng))

    def _swing(self, day: date, _argument: None) -> None:
        book = self.books[MARGIN_ACCOUNT_ID]
        free = [s for s in STOCKS if s not in self.used]
        if not free:
            return
        longs = [s for s in free if book.quantity(_stock(s)) > 0]
        shorts = [s for s in free if book.quantity(_stock(s)) < 0]
        flat = [s for s in free if book.quantity(_stock(s)) == 0]
        gross = sum(abs(book.quantity(_stock(s))) * self.bars[s][day].close for s in STOCKS)
        room = gross < MARGIN_GROSS_CAP
        choices = [
            ("open_long", flat and room, 5),
            ("add", longs and room, 3),
            ("trim", longs, 3),
            ("close", longs, 2),
            ("open_short", flat and room, 1),
            ("cover", shorts, 2),
        ]
        feasible = [(name, weight) for name, ok, weight in choices if ok]
        if not feasible:
            return
        move = self.rng.choices([n for n, _ in feasible], weights=[w for _, w in feasible])[0]
        pool = {"open_long": flat, "open_short": flat, "add": longs, "trim": longs, "close": longs, "cover": shorts}
        symbol = self.rng.choice(pool[move])
        self.used.add(symbol)
        bar = self.bars[symbol][day]
        held = abs(book.quantity(_stock(symbol)))
        side, quantity = {
            "open_long": (BUY, self._shares_for(self.rng.randint(10000, 20000), bar.close)),
            "add": (BUY, self._shares_for(self.rng.randint(3000, 8000), bar.close)),
            "trim": (SELL, max(int(held) // 2, 1)),  # a partial close
            "close": (SELL, int(held)),
            "open_short": (SELL, self._shares_for(self.rng.randint(5000, 10000), bar.close)),
            "cover": (BUY, int(held)),
        }[move]
        self._fill(MARGIN_ACCOUNT_ID, _stock(symbol), side, quantity, bar.price_inside(self.rng))

    def _option_trade(self, day: date, side: str) -> None:
        contracts = OPTION_OPEN_CONTRACTS if side == SELL else OPTION_TRIM_CONTRACTS
        premium = _option_price(underlying=self.bars["SPY"][day].price_inside(self.rng), contract=self.option, on=day)
        self._fill(MARGIN_ACCOUNT_ID, self.option, side, contracts, premium)

    # --- cash account: buys only with settled cash, sells only what it holds ---------------------------
    def _cash_session(self, day: date) -> None:
        self._slots_start(day)
        bought: set[str] = set()
        for _ in range(self.rng.randint(3, 5)):
            # Mostly buying, a third of the time selling; when one is not possible, the other is tried.
            first, second = (
                (self._cash_sell, self._cash_buy) if self.rng.randrange(3) == 0 else (self._cash_buy, self._cash_sell)
            )
            if not first(day, bought):
                second(day, bought)

    def _cash_buy(self, day: date, bought: set[str]) -> bool:
        book = self.books[CASH_ACCOUNT_ID]
        symbol = self.rng.choice(sorted(STOCKS))
        price = self.bars[symbol][day].price_inside(self.rng)
        settled = book.cash - book.unsettled(day)
        budget = min(settled * self.rng.randint(10, 30) / 100, Decimal(8000))
        shares = int((budget / price).to_integral_value(ROUND_FLOOR))
        if shares < 1 or shares * price + _commission(_stock(symbol), Decimal(shares), price) > settled:
            return False
        self._fill(CASH_ACCOUNT_ID, _stock(symbol), BUY, shares, price)
        bought.add(symbol)
        return True

    def _cash_sell(self, day: date, bought: set[str]) -> bool:
        book = self.books[CASH_ACCOUNT_ID]
        # Only positions carried from an earlier session: no same-day round trips in the cash account.
        held = [s for s in sorted(STOCKS) if s not in bought and book.quantity(_stock(s)) > 0]
        if not held:
            return False
        symbol = self.rng.choice(held)
        quantity = int(book.quantity(_stock(symbol)))
        shares = quantity if quantity < 4 or self.rng.randrange(2) else quantity // 2
        self._fill(CASH_ACCOUNT_ID, _stock(symbol), SELL, shares, self.bars[symbol][day].price_inside(self.rng))
        bought.add(symbol)  # and not sold twice in one session
        return True


def _expiring_put_contract(trade_days: list[date], spy_price: Decimal) -> Contract | None:
    """A SPY put 8% out of the money expiring on the first Friday at least a week after it is bought and
    a few sessions before the history ends, so the demo shows an option settled as expired."""
    fridays = [d for d in trade_days[EXPIRING_PUT_SESSION + 5 : -3] if d.weekday() == 4]
    if not fridays:
        return None
    strike = (spy_price * Decimal("0.92") / 5).to_integral_value(ROUND_HALF_UP) * 5
    return Contract(
        symbol="SPY",
        con_id=710_000_000 + int(fridays[0].strftime("%y%m%d")),
        sec_type="OPT",
        multiplier=Decimal(100),
        expiry=fridays[0],
        strike=strike,
        right="P",
    )


def _option_contract(now: datetime, spy_price: Decimal) -> Contract:
    """A SPY call about 3% out of the money, expiring months after ``now`` so the demo can run a while."""
    month = now.month + 3
    expiry = _third_friday(now.year + (month - 1) // 12, (month - 1) % 12 + 1)
    strike = (spy_price * Decimal("1.03") / 5).to_integral_value(ROUND_HALF_UP) * 5
    return Contract(
        symbol="SPY",
        con_id=700_000_000 + int(expiry.strftime("%y%m%d")),
        sec_type="OPT",
        multiplier=Decimal(100),
        expiry=expiry,
        strike=strike,
        right="C",
    )


# --- public API ------------------------------------------------------------------------------------
def demo_state_build(*, now: datetime, seed: int = DEFAULT_SEED) -> dict:
    """A complete broker state (broker-state.md) for the demo: two accounts, six weeks of fills, a year
    of daily bars, three months of hourly and two weeks of five-minute bars, all derived from ``seed``
    and ``now``."""
    now = _as_utc(now)
    rng = random.Random(seed)
    bar_days = _sessions_until(now, BAR_SESSIONS)
    bars = _bars_walk(rng, bar_days)
    bars.update(_bars_walk(random.Random(seed * 104_729 + 3), bar_days, FOREIGN_STOCKS))  # its own stream
    trade_days = [d for d in bar_days if session_close(d) <= now][-TRADING_SESSIONS:]
    option = _option_contract(now, bars["SPY"][trade_days[OPTION_OPEN_SESSION]].close)
    expiring_put = _expiring_put_contract(trade_days, bars["SPY"][trade_days[EXPIRING_PUT_SESSION]].close)
    history = _History(rng=rng, seed=seed, bars=bars, option=option, expiring_put=expiring_put)
    for index, day in enumerate(trade_days):
        history.session(index, day)
    state = {
        "connected": True,
        "accounts": list(history.accounts.values()),
        "bars": _bars_rows(bars, bar_days, now=now, seed=seed),
        "quotes": {},
        "demo": {"seed": seed, "tick": 0, "last_advanced": _iso(now)},
    }
    _fx_demo(state, start=bar_days[0], now=now, seed=seed)
    _state_refresh(state, {symbol: bars[symbol][bar_days[-1]].close for symbol in (*STOCKS, *FOREIGN_STOCKS)}, now)
    return state


# The margin account holds some euros (issue #17): a EUR cash balance, the broker's EUR rate, and the
# daily EUR/USD history the rates backfill (manage.py sync_fx_rates) stores. The USD balance is the
# ledger's cash less the euros' value, so the balances add up to TotalCashValue at the current rate.
# Enough that the SAP fills (paid in euros) leave a positive EUR balance.
DEMO_EUR_CASH = Decimal("15000.00")


def _fx_demo(state: dict, *, start: date, now: datetime, seed: int) -> None:
    rng = random.Random(seed * 7919 + 17)  # its own sequence: the rest of the demo is unchanged by it
    rate, history = Decimal("1.0850"), []
    day = start
    while day < now.date():
        if day.weekday() < 5 and (day.month, day.day) not in {(1, 1), (12, 25)}:
            rate = (rate * (1 + Decimal(rng.randint(-40, 40)) / 10_000)).quantize(Decimal("0.0001"))
            history.append({"day": day.isoformat(), "rate": _text(rate)})
        day += timedelta(days=1)
    # The walk is scaled to end at the broker's current rate of the demo (1 EUR = 1.16 USD, the example of
    # domain-rules.md), so the pages' figures can be checked by hand against it.
    if history:
        scale = DEMO_FX_RATES["EUR"] / rate
        for row in history:
            row["rate"] = _text((Decimal(row["rate"]) * scale).quantize(Decimal("0.0001")))
        rate = DEMO_FX_RATES["EUR"]
    state["fx_history"] = {"USD": {"EUR": history}}
    for account in state["accounts"]:
        if account.get("account_id") == MARGIN_ACCOUNT_ID:
            account["fx_rates"] = {"EUR": _text(rate)}
            account["cash_balances"] = {"EUR": _text(DEMO_EUR_CASH)}


def _cash_balances_refresh(account: dict, foreign_cash: dict[str, Decimal] | None = None) -> None:
    """The USD balance beside the account's other currencies: what TotalCashValue leaves once they are
    converted at the broker's rates. A foreign currency's balance is its opening balance plus what the
    fills in that currency moved (``foreign_cash``: SAP bought with euros leaves fewer euros)."""
    balances = account.get("cash_balances")
    if not isinstance(balances, dict):
        return
    for currency, moved in (foreign_cash or {}).items():
        opening = DEMO_EUR_CASH if currency == "EUR" else ZERO
        balances[currency] = _text(_cents(opening + moved))
    rates = account.get("fx_rates") or {}
    others = sum(
        (Decimal(amount) * Decimal(rates[c]) for c, amount in balances.items() if c != "USD" and c in rates), ZERO
    )
    balances["USD"] = _text(_cents(Decimal(account["values"]["TotalCashValue"]) - others))


def demo_state_write(*, path: str | Path, state: dict) -> None:
    """Write atomically: readers (the broker reads the file on every call) never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(state, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; other processes (the gateway simulator) read it
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def demo_state_advance(*, path: str | Path, now: datetime | None = None) -> dict:
    """One demo tick: prices take a random-walk step; in a session, now and then the margin account trades.

    A file that is not a demo state (no ``demo`` key: a hand-written fixture) is left alone.
    """
    path = Path(path)
    now = _as_utc(now) if now is not None else datetime.now(UTC)
    if not path.exists():
        demo_state_write(path=path, state=demo_state_build(now=now))
    state = json.loads(path.read_text(encoding="utf-8"))
    demo = state.get("demo")
    if not isinstance(demo, dict):
        return {"status": "SKIPPED", "message": f"{path} is not a demo state (no demo key)"}
    seed = int(demo.get("seed", DEFAULT_SEED))
    tick = int(demo.get("tick", 0)) + 1
    rng = random.Random(seed * 1_000_003 + tick)  # a tick's randomness depends on nothing but seed and tick
    current = _prices_current(state)
    prices = {symbol: _walk_step(current[symbol], rng) for symbol in STOCKS}
    foreign_rng = random.Random(
        seed * 1_000_033 + tick
    )  # the foreign stocks walk apart: the US ticks stay as they were
    prices.update({symbol: _walk_step(current[symbol], foreign_rng) for symbol in FOREIGN_STOCKS})
    wants_fill = rng.randrange(4) == 0
    fills = 0
    # Prices drift outside sessions too (the demo stays alive), but bars and fills only happen in one.
    if _in_session(now):
        _bars_touch(state, {s: p for s, p in prices.items() if s in STOCKS}, _exchange_date(now), rng)
        _bars_touch(state, {s: p for s, p in prices.items() if s in FOREIGN_STOCKS}, _exchange_date(now), foreign_rng)
        margin = next((a for a in state.get("accounts", []) if a.get("account_id") == MARGIN_ACCOUNT_ID), None)
        if wants_fill and margin is not None:
            fills = _tick_fill(state, margin, prices, now, rng, seed=seed, tick=tick)
    _state_refresh(state, prices, now)
    demo.update(tick=tick, last_advanced=_iso(now))
    demo_state_write(path=path, state=state)
    return {"status": "SUCCESS", "tick": tick, "fills": fills}


def _tick_fill(
    state: dict, account: dict, prices: dict[str, Decimal], now: datetime, rng: random.Random, *, seed: int, tick: int
) -> int:
    """A small fill in the margin account: take part of a position off, or open or add to one."""
    book = _book_replay(account, now)
    symbol = rng.choice(sorted(STOCKS))
    contract, price = _stock(symbol), prices[symbol]
    held = book.quantity(contract)
    quantity = max(int((Decimal(rng.randint(1000, 4000)) / price).to_integral_value(ROUND_FLOOR)), 1)
    if held and rng.randrange(2) == 0:
        side, quantity = (SELL if held > 0 else BUY), min(quantity, int(abs(held)))
    else:
        side = SELL if held < 0 else BUY  # open long, or add in the direction already held
        marks = _marks(book, prices, _exchange_date(now))
        buying_power = Decimal(_account_values(book, marks, prices, _exchange_date(now))["BuyingPower"])
        if quantity * price > buying_power:
            return 0
    serial = (
        max((int(e.get("order_id") or 0) for a in state["accounts"] for e in a.get("executions", [])), default=0) + 1
    )
    account["executions"].append(
        _execution_row(
            exec_id=f"{seed:08x}.{TICK_SERIAL_BASE + tick:08x}.01.01",
            serial=serial,
            contract=contract,
            side=side,
            quantity=Decimal(quantity),
            price=price,
            at=now,
            exchange=rng.choice(STOCK_VENUES),
        )
    )
    return 1
