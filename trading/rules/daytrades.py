"""Day trades, trade frequency and the pattern-day-trader test, derived from one account's fills.

Pure functions (no database). The rules are docs/domain-rules.md, "Day trades and the
pattern-day-trader rule"; where that text leaves a choice, the choice is written down here.

Matching (both counting methods):

- Fills are replayed per instrument in ``fill_order`` with the running position from the first fill
  given, so pass every fill of the account from its first one: a position before the first fill is
  taken to be flat.
- On each trade date, quantity opened that day and still open is kept as a FIFO queue of opening
  transactions. A transaction is an order (fills sharing an ``order_ref``, queued at its first fill)
  or a fill without ``order_ref``. An order that fills on two trade dates is a transaction on each.
- A closing fill is matched against that day's opened quantity first, FIFO, and only the rest
  against the quantity carried overnight. So a sale after a same-day purchase is a day trade up to
  the quantity opened that day (as FINRA and brokers count it, even when a position was carried),
  and closing carried quantity before any opening trade that day is not a day trade. FIFO among the
  day's openings is the conservative choice: a close touches the oldest openings first, so it
  counts at least as many of them as any other order would.
- A fill that crosses zero closes the whole position and opens the rest on the other side; the
  opened part is an opening transaction of that day like any other.

Counting (setting ``DAY_TRADE_COUNTING``):

- ``opening`` (default): one day trade per opening transaction that is closed, at least partly, the
  same day. Its ``DayTradeResult`` pairs the transaction's first opening fill with the first fill
  that closed part of it (the one that made it a day trade); ``quantity`` is all of the
  transaction's quantity closed that day.
- ``direction``: one day trade per run of same-side fills (per instrument and day) that closes
  quantity opened that day. Its result pairs the first opening fill the run closed (FIFO, so the
  first fill of the opening run in the plain case) with the run's first fill that closed same-day
  quantity (the one that completed the day trade); ``quantity`` is all same-day quantity the run
  closed.

Day trades are found in any account; a cash account's are recorded too, and only ``pdt_status``
looks at the account type.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from trading.calendars import previous_sessions
from trading.rules.types import LedgerFill, fill_order

# The values of trading.models.compliance.DayTradeCounting, kept here so this module needs no Django.
OPENING = "opening"
DIRECTION = "direction"
COUNTING_METHODS = (OPENING, DIRECTION)

LEGACY_RULE_END = date(2026, 6, 4)  # trades before this date are under FINRA 4210's legacy PDT rule
LEGACY_PHASE_IN_END = date(2027, 10, 20)  # the last day a broker may still apply the legacy rule
LEGACY = "LEGACY"
INTRADAY_MARGIN_2026 = "INTRADAY_MARGIN_2026"

PDT_WINDOW_SESSIONS = 5
PDT_MIN_DAY_TRADES = 4
PDT_MIN_SHARE_PERCENT = 6  # day trades must be MORE than this percent of the window's trades
PDT_MIN_EQUITY = Decimal(25000)
UNLIMITED = -1  # IBKR's DayTradesRemaining for "no limit"


@dataclass(frozen=True, slots=True)
class DayTradeResult:
    instrument_id: int
    trade_date: date
    quantity: Decimal  # positive: the quantity opened and closed that day by this pair
    opening_fill_id: int
    closing_fill_id: int


@dataclass(slots=True)
class _OpenLot:
    """Quantity one opening transaction opened on the current trade date and is still open."""

    first_fill_id: int
    remaining: Decimal = Decimal(0)
    result: "_Pending | None" = None  # the transaction's day trade once one of its units is closed


@dataclass(slots=True)
class _Pending:
    """A day trade being built: its quantity grows while later fills close more of it."""

    sort_key: tuple
    instrument_id: int
    trade_date: date
    opening_fill_id: int
    closing_fill_id: int
    quantity: Decimal = Decimal(0)

    def result(self) -> DayTradeResult:
        return DayTradeResult(
            instrument_id=self.instrument_id,
            trade_date=self.trade_date,
            quantity=self.quantity,
            opening_fill_id=self.opening_fill_id,
            closing_fill_id=self.closing_fill_id,
        )


@dataclass(slots=True)
class _InstrumentDay:
    """The replay state of one instrument on its current trade date."""

    trade_date: date | None = None
    lots: list[_OpenLot] = field(default_factory=list)  # FIFO; every lot has remaining > 0
    lots_by_transaction: dict[tuple, _OpenLot] = field(default_factory=dict)
    run_side: str | None = None  # direction counting: the side of the current run of fills
    run_result: _Pending | None = None  # direction counting: the run's day trade, once it has one

    def start(self, trade_date: date) -> None:
        # What was opened earlier is now carried overnight: it can no longer make a day trade.
        self.trade_date = trade_date
        self.lots.clear()
        self.lots_by_transaction.clear()
        self.run_side = None
        self.run_result = None


def _transaction_key(fill: LedgerFill) -> tuple:
    # Partial fills of one order are one transaction; a fill without an order is its own.
    return ("order", fill.order_ref) if fill.order_ref else ("fill", fill.id)


def day_trades_find(fills: Iterable[LedgerFill], *, counting: str = OPENING) -> list[DayTradeResult]:
    """The day trades in one account's fills, counted by ``counting`` ("opening" or "direction").

    Results come in the order they were completed (the closing fill's ``fill_order``).
    """
    if counting not in COUNTING_METHODS:
        raise ValueError(f"unknown day-trade counting {counting!r}: expected one of {COUNTING_METHODS}")

    positions: dict[int, Decimal] = defaultdict(Decimal)
    days: dict[int, _InstrumentDay] = defaultdict(_InstrumentDay)
    pending: list[_Pending] = []

    for fill in sorted(fills, key=fill_order):
        if fill.quantity <= 0:
            continue
        day = days[fill.instrument_id]
        if day.trade_date != fill.trade_date:
            day.start(fill.trade_date)
        if day.run_side != fill.side:
            day.run_side = fill.side
            day.run_result = None

        position = positions[fill.instrument_id]
        signed = fill.signed_quantity
        closing = min(fill.quantity, abs(position)) if position * signed < 0 else Decimal(0)

        # Close the day's openings first (FIFO); what is left of ``closing`` was carried overnight.
        to_match = closing
        while to_match > 0 and day.lots:
            lot = day.lots[0]
            matched = min(to_match, lot.remaining)
            lot.remaining -= matched
            to_match -= matched
            if not lot.remaining:
                day.lots.pop(0)
            pending_trade = lot.result if counting == OPENING else day.run_result
            if pending_trade is None:
                pending_trade = _Pending(
                    sort_key=fill_order(fill),
                    instrument_id=fill.instrument_id,
                    trade_date=fill.trade_date,
                    opening_fill_id=lot.first_fill_id,
                    closing_fill_id=fill.id,
                )
                pending.append(pending_trade)
                if counting == OPENING:
                    lot.result = pending_trade
                else:
                    day.run_result = pending_trade
            pending_trade.quantity += matched

        opening = fill.quantity - closing
        if opening:
            key = _transaction_key(fill)
            lot = day.lots_by_transaction.get(key)
            if lot is None:
                lot = day.lots_by_transaction[key] = _OpenLot(first_fill_id=fill.id)
            if not lot.remaining:
                day.lots.append(lot)  # new, or an order that opens again after being closed
            lot.remaining += opening

        positions[fill.instrument_id] = position + signed

    pending.sort(key=lambda trade: trade.sort_key)
    return [trade.result() for trade in pending]


def day_trade_count_by_date(results: Iterable[DayTradeResult]) -> dict[date, int]:
    """How many day trades were made on each trade date (dates without any are absent)."""
    return dict(sorted(Counter(result.trade_date for result in results).items()))


def trades_by_date(fills: Iterable[LedgerFill]) -> dict[date, int]:
    """Trades per trade date: distinct orders (``order_ref``), a fill without one being its own trade.

    An order is counted once per date across instruments (a combo order's legs share it), and once on
    each date it filled on.
    """
    transactions: dict[date, set[tuple]] = defaultdict(set)
    for fill in fills:
        transactions[fill.trade_date].add(_transaction_key(fill))
    return {trade_date: len(keys) for trade_date, keys in sorted(transactions.items())}


@dataclass(frozen=True, slots=True)
class FrequencyRow:
    period: str  # "DAY" or "WEEK" (trading.models.compliance.FrequencyPeriod)
    period_start: date  # the trade date, or the Monday of its ISO week
    trades: int
    day_trades: int


def _iso_week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def trade_frequency(fills: Iterable[LedgerFill], day_trades: Iterable[DayTradeResult]) -> list[FrequencyRow]:
    """Trades and day trades per trade date and per ISO week: DAY rows by date, then WEEK rows by date.

    A week's figures are the sums of its days, so an order that filled on two days of a week counts
    twice there, as it does in the PDT window. Only periods with a trade or a day trade get a row.
    """
    trades = trades_by_date(fills)
    day_trade_counts = day_trade_count_by_date(day_trades)

    daily = [
        FrequencyRow(period="DAY", period_start=day, trades=trades.get(day, 0), day_trades=day_trade_counts.get(day, 0))
        for day in sorted(trades.keys() | day_trade_counts.keys())
    ]
    weekly_trades: Counter[date] = Counter()
    weekly_day_trades: Counter[date] = Counter()
    for row in daily:
        week = _iso_week_start(row.period_start)
        weekly_trades[week] += row.trades
        weekly_day_trades[week] += row.day_trades
    weekly = [
        FrequencyRow(period="WEEK", period_start=week, trades=weekly_trades[week], day_trades=weekly_day_trades[week])
        for week in sorted(weekly_trades.keys() | weekly_day_trades.keys())
    ]
    return daily + weekly


@dataclass(frozen=True, slots=True)
class PdtStatus:
    rule: str  # "LEGACY" or "INTRADAY_MARGIN_2026"
    window_start: date  # the 5 NYSE sessions ending at as_of (at the last session before it if it is none)
    window_end: date
    day_trades: int
    trades: int
    is_pattern_day_trader: bool | None  # legacy rule only; None under the 2026 rule
    day_trades_remaining: int | None  # -1 = unlimited; None when neither the broker nor the legacy rule gives one


def pdt_rule(*, as_of: date, pinned_legacy: bool) -> str:
    """The rule an account is under on ``as_of``: legacy before 2026-06-04, or while staff pin it.

    A pin holds only through the phase-in (2027-10-20): after it no broker applies the legacy rule.
    """
    if as_of < LEGACY_RULE_END or (pinned_legacy and as_of <= LEGACY_PHASE_IN_END):
        return LEGACY
    return INTRADAY_MARGIN_2026


def pdt_status(
    *,
    as_of: date,
    pinned_legacy: bool,
    is_margin: bool,
    day_trades_by_date: dict[date, int],
    trades_by_date: dict[date, int],
    broker_day_trades_remaining: int | None = None,
    equity: Decimal | None = None,
) -> PdtStatus:
    """Where an account stands against the pattern-day-trader rule over the 5 sessions ending ``as_of``.

    - ``is_pattern_day_trader`` (legacy rule only): 4 or more day trades in the window that are more
      than 6% of its trades. It says whether the window shows the pattern; the broker's designation,
      once made, outlasts the window and is not modelled here. Equity does not change it (it decides
      what a pattern day trader must hold). A cash account is never one: the rule is a margin rule
      (cash accounts are bound by settled cash instead); its day trades are still counted.
    - ``day_trades_remaining``: the broker's figure whenever it gives one, under either rule, since it
      is what the broker enforces (an unpinned account the broker still limits shows it here).
      Otherwise, under the legacy rule: unlimited (-1) for a cash account and for a margin account with
      $25,000 or more equity; else (equity below or unknown, the conservative reading)
      ``max(0, 3 - day_trades)`` for the window ending ``as_of``, as brokers count, without the 6%
      test. Under the 2026 rule: None.
    """
    rule = pdt_rule(as_of=as_of, pinned_legacy=pinned_legacy)
    sessions = previous_sessions(as_of, PDT_WINDOW_SESSIONS)
    window_start, window_end = sessions[0], sessions[-1]
    # A date range rather than the session set, so that a fill dated on a non-session is not lost.
    day_trades = sum(count for day, count in day_trades_by_date.items() if window_start <= day <= window_end)
    trades = sum(count for day, count in trades_by_date.items() if window_start <= day <= window_end)

    is_pattern_day_trader = None
    remaining = broker_day_trades_remaining
    if rule == LEGACY:
        is_pattern_day_trader = (
            is_margin
            and day_trades >= PDT_MIN_DAY_TRADES
            and day_trades * 100 > PDT_MIN_SHARE_PERCENT * trades  # integers: no float at the 6% edge
        )
        if remaining is None:
            if not is_margin or (equity is not None and equity >= PDT_MIN_EQUITY):
                remaining = UNLIMITED
            else:
                remaining = max(0, PDT_MIN_DAY_TRADES - 1 - day_trades)

    return PdtStatus(
        rule=rule,
        window_start=window_start,
        window_end=window_end,
        day_trades=day_trades,
        trades=trades,
        is_pattern_day_trader=is_pattern_day_trader,
        day_trades_remaining=remaining,
    )
