"""Cash-account rules over fills: settled cash day by day, good-faith violations and free-riding.

Pure (no database). Two books are kept side by side:

- The balances (what IBKR reports): settled cash is the opening cash plus deposits and withdrawals
  (settled at once) plus every fill's signed amount from its settlement date on. Unsettled cash is
  the signed sum of the fills not yet settled (pending sale proceeds positive, pending purchase
  debits negative).
- The funding of each purchase: which money paid for it, decided when it is bought. Settled cash not
  already committed to earlier purchases pays first; then unused proceeds of earlier sales, those
  settling first first, and only proceeds that settle by the purchase's own settlement date (later
  money cannot pay for it in time). Whatever remains is unpaid. A later deposit pays unpaid parts
  of purchases still held (and a debt left by a purchase that settled unpaid) before it becomes free
  settled cash; proceeds of a later sale pay unpaid parts too, except those of the purchase that sale
  itself sold. A later deposit does not turn a purchase paid with unsettled proceeds into one paid
  with settled cash: the funds used for it are the ones used when it was bought.

Purchases are held per instrument as FIFO lots, so a sale is tied to the purchases it sells. For
each (purchase, sale) pair, on the sale's trade date:

- FREE_RIDING when part of the purchase is still unpaid and the purchase has not settled: the
  account bought and sold without paying for the purchase with funds other than that sale's
  proceeds (Regulation T 220.8(c)). The amount is the unpaid part of what was sold.
- otherwise GOOD_FAITH when part of the purchase was paid with sale proceeds that settle after the
  sale's trade date: it sold a purchase before the funds used for it settled. The amount is that
  unsettled part. Selling on the day those proceeds settle is not a violation.

One violation per (purchase, sale) pair; free-riding takes precedence when both apply. Amounts of a
partly sold purchase are pro-rated by quantity.

Money settles at the start of its settlement date. Events of a day are replayed in time order,
fills in ``fill_order``; a deposit at the same instant as a fill comes first. Sales of more than the
held quantity (a position from before the first fill passed in, a short option) open no lot and are
never a violation; a later purchase first covers such a short and only the rest becomes a lot.

``violations_12m`` counts the sale orders (fills sharing ``order_ref`` on one trade date are one
order) that completed at least one violation of either kind in the 12 months ending that day: the
rolling count brokers use to restrict an account for 90 days.
"""

from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from core.fields import quantize_money
from trading.calendars import trade_date_of
from trading.rules.types import LedgerFill, fill_order

GOOD_FAITH = "GOOD_FAITH"
FREE_RIDING = "FREE_RIDING"
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class CashFill:
    """A fill with its cash consequence."""

    fill: LedgerFill
    settlement_date: date
    amount: Decimal  # signed: -(qty x price x multiplier + commission) for a buy, +(... - commission) for a sell


@dataclass(frozen=True, slots=True)
class CashMovement:
    """A deposit (+) or withdrawal (-), settled immediately."""

    at: datetime  # aware
    amount: Decimal


@dataclass(frozen=True, slots=True)
class DayCash:
    """The balances at the end of a calendar day."""

    date: date
    settled_cash: Decimal
    unsettled_cash: Decimal  # pending sale proceeds (+) and purchase debits (-) not yet settled
    violations_12m: int


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str  # GOOD_FAITH or FREE_RIDING
    trade_date: date  # of the sale that completed it
    buy_fill_id: int
    sell_fill_id: int
    amount: Decimal  # the unsettled (good faith) or unpaid (free-riding) money in the part sold, >= 0
    detail: str


@dataclass(frozen=True, slots=True)
class CashReplay:
    days: tuple[DayCash, ...]  # one per calendar day, start to end inclusive
    violations: tuple[Violation, ...]  # every violation up to end, in the order they happened


_SETTLED, _PROCEEDS, _UNPAID = "settled cash", "sale proceeds", "unpaid"


@dataclass(slots=True)
class _Tranche:
    """Part of a purchase's cost and the money that paid for it."""

    amount: Decimal
    source: str
    settles_on: date | None  # when that money is settled; None while unpaid


@dataclass(slots=True)
class _Lot:
    buy: CashFill
    quantity: Decimal
    tranches: list[_Tranche]

    def unpaid(self) -> Decimal:
        return sum((t.amount for t in self.tranches if t.source == _UNPAID), ZERO)


@dataclass(slots=True)
class _Pot:
    """Proceeds of one sale not yet settled and not yet used for a purchase."""

    sale: CashFill
    remaining: Decimal
    sold_buy_ids: frozenset[int]  # purchases this sale sold: its proceeds never pay for them


@dataclass(slots=True)
class _Book:
    settled: Decimal  # the balance
    free: Decimal  # settled cash not committed to a purchase; negative when a purchase settled unpaid
    pending: dict[date, Decimal] = field(default_factory=dict)  # balance items by settlement date
    pots: list[_Pot] = field(default_factory=list)
    lots: dict[int, deque[_Lot]] = field(default_factory=lambda: defaultdict(deque))
    short: dict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    owing: list[_Lot] = field(default_factory=list)  # lots that may still have an unpaid part, bought first first
    violations: list[Violation] = field(default_factory=list)

    def settle(self, day: date) -> None:
        for due in [d for d in self.pending if d <= day]:
            self.settled += self.pending.pop(due)
        for pot in [p for p in self.pots if p.sale.settlement_date <= day]:
            self.free += pot.remaining
            self.pots.remove(pot)
        for lot in self._unpaid_lots():
            if lot.buy.settlement_date <= day:
                # Settled without being paid: a debt on settled cash until money comes in.
                self.free -= lot.unpaid()
                lot.tranches = [t for t in lot.tranches if t.source != _UNPAID]

    def move(self, amount: Decimal, day: date) -> None:
        self.settled += amount
        if amount > 0:
            amount = self._repay_debt(amount)
            amount = self._pay_unpaid(amount, source=_SETTLED, settles_on=day, by=None)
        self.free += amount

    def buy(self, cash_fill: CashFill) -> None:
        fill = cash_fill.fill
        self._book_balance(cash_fill)
        cost = max(-cash_fill.amount, ZERO)
        tranches = []
        from_settled = min(cost, max(self.free, ZERO))
        if from_settled:
            self.free -= from_settled
            tranches.append(_Tranche(from_settled, _SETTLED, fill.trade_date))
        rest = cost - from_settled
        for pot in sorted(self.pots, key=lambda p: (p.sale.settlement_date, fill_order(p.sale.fill))):
            if not rest:
                break
            if pot.sale.settlement_date > cash_fill.settlement_date:
                continue
            used = min(rest, pot.remaining)
            pot.remaining -= used
            rest -= used
            tranches.append(_Tranche(used, _PROCEEDS, pot.sale.settlement_date))
        self.pots = [p for p in self.pots if p.remaining]
        if rest:
            tranches.append(_Tranche(rest, _UNPAID, None))

        covered = min(self.short[fill.instrument_id], fill.quantity)
        self.short[fill.instrument_id] -= covered
        held = fill.quantity - covered
        if held:
            share = held / fill.quantity
            if share != 1:
                # Covering a short is paid like any purchase but opens no lot: only the rest can be sold.
                tranches = [_Tranche(t.amount * share, t.source, t.settles_on) for t in tranches]
            lot = _Lot(cash_fill, held, tranches)
            self.lots[fill.instrument_id].append(lot)
            if rest:
                self.owing.append(lot)

    def sell(self, cash_fill: CashFill) -> None:
        fill = cash_fill.fill
        self._book_balance(cash_fill)
        lots = self.lots[fill.instrument_id]
        to_sell = fill.quantity
        sold_buy_ids = set()
        while to_sell and lots:
            lot = lots[0]
            sold = min(to_sell, lot.quantity)
            share = sold / lot.quantity
            parts = []
            for tranche in lot.tranches:
                part = tranche.amount if share == 1 else tranche.amount * share
                tranche.amount -= part
                parts.append(_Tranche(part, tranche.source, tranche.settles_on))
            self._judge(lot.buy, cash_fill, sold, parts)
            sold_buy_ids.add(lot.buy.fill.id)
            lot.quantity -= sold
            to_sell -= sold
            if not lot.quantity:
                lots.popleft()
        self.short[fill.instrument_id] += to_sell

        proceeds = cash_fill.amount
        if proceeds <= 0:
            self.free += proceeds  # a sale whose commission exceeds it costs money
            return
        pot = _Pot(cash_fill, proceeds, frozenset(sold_buy_ids))
        pot.remaining = self._pay_unpaid(proceeds, source=_PROCEEDS, settles_on=cash_fill.settlement_date, by=pot)
        if pot.remaining:
            self.pots.append(pot)

    def _judge(self, buy: CashFill, sale: CashFill, quantity: Decimal, parts: list[_Tranche]) -> None:
        day = sale.fill.trade_date
        unpaid = sum((p.amount for p in parts if p.source == _UNPAID), ZERO)
        unsettled = [p for p in parts if p.source == _PROCEEDS and p.settles_on > day]
        unsettled_amount = sum((p.amount for p in unsettled), ZERO)
        bought = buy.fill.trade_date.isoformat()
        if unpaid > 0:
            also = f", and {_money(unsettled_amount)} of unsettled sale proceeds" if unsettled_amount else ""
            kind, amount = FREE_RIDING, unpaid
            detail = (
                f"Free-riding: sold {_qty(quantity)} on {day.isoformat()} of a purchase of {bought} that was not "
                f"paid for: {_money(unpaid)} of it was covered neither by settled cash nor by sale proceeds "
                f"settling by {buy.settlement_date.isoformat()}{also}."
            )
        elif unsettled_amount > 0:
            settles = max(p.settles_on for p in unsettled).isoformat()
            kind, amount = GOOD_FAITH, unsettled_amount
            detail = (
                f"Good-faith violation: sold {_qty(quantity)} on {day.isoformat()} of a purchase of {bought} "
                f"paid with {_money(unsettled_amount)} of sale proceeds that settle only on {settles}."
            )
        else:
            return
        self.violations.append(Violation(kind, day, buy.fill.id, sale.fill.id, quantize_money(amount), detail))

    def _book_balance(self, cash_fill: CashFill) -> None:
        due = cash_fill.settlement_date
        self.pending[due] = self.pending.get(due, ZERO) + cash_fill.amount

    def _unpaid_lots(self) -> list[_Lot]:
        self.owing = [lot for lot in self.owing if lot.quantity and lot.unpaid() > 0]
        return list(self.owing)

    def _repay_debt(self, amount: Decimal) -> Decimal:
        if self.free >= 0:
            return amount
        repaid = min(amount, -self.free)
        self.free += repaid
        return amount - repaid

    def _pay_unpaid(self, amount: Decimal, *, source: str, settles_on: date, by: _Pot | None) -> Decimal:
        """Pay unpaid parts of held purchases, oldest first; returns what is left of ``amount``."""
        for lot in self._unpaid_lots():
            if not amount:
                break
            if by is not None and (lot.buy.fill.id in by.sold_buy_ids or settles_on > lot.buy.settlement_date):
                continue
            for tranche in [t for t in lot.tranches if t.source == _UNPAID]:
                paid = min(amount, tranche.amount)
                tranche.amount -= paid
                amount -= paid
                lot.tranches.append(_Tranche(paid, source, settles_on))
                if not amount:
                    break
            lot.tranches = [t for t in lot.tranches if t.amount or t.source != _UNPAID]
        return amount


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _violations_window(violations: list[Violation], order_of: dict[int, str]) -> Callable[[date], int]:
    """A counter, asked day after day, of the number of sale orders with a violation in the 12 months to it."""
    in_window: Counter[tuple[str, date]] = Counter()
    entered: deque[tuple[date, tuple[str, date]]] = deque()
    index = 0

    def count(day: date) -> int:
        nonlocal index
        while index < len(violations) and violations[index].trade_date <= day:
            v = violations[index]
            key = (order_of[v.sell_fill_id], v.trade_date)
            entered.append((v.trade_date, key))
            in_window[key] += 1
            index += 1
        year_before = _year_before(day)
        while entered and entered[0][0] <= year_before:
            _, key = entered.popleft()
            in_window[key] -= 1
            if not in_window[key]:
                del in_window[key]
        return len(in_window)

    return count


def _year_before(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def cash_account_replay(
    *,
    fills: Iterable[CashFill],
    movements: Iterable[CashMovement],
    start: date,
    end: date,
    opening_settled_cash: Decimal = ZERO,
) -> CashReplay:
    """Replay a cash account: its balances for each calendar day from start to end, and its violations.

    ``opening_settled_cash`` is the settled cash before every fill and movement passed in, so pass
    the fills from the account's first activity (or from a day with no position and known cash).
    Activity before ``start`` is replayed but yields no day; activity after ``end`` is ignored.
    """
    if start > end:
        raise ValueError(f"start {start.isoformat()} is after end {end.isoformat()}")
    events: list[tuple[date, datetime, int, tuple, object]] = []
    for cash_fill in fills:
        fill = cash_fill.fill
        if cash_fill.settlement_date is None:
            raise ValueError(f"fill {fill.id} has no settlement date")
        if fill.side not in ("BUY", "SELL"):
            raise ValueError(f"fill {fill.id} has side {fill.side!r}, expected BUY or SELL")
        events.append((fill.trade_date, fill.executed_at, 1, fill_order(fill), cash_fill))
    for movement in movements:
        events.append((trade_date_of(movement.at), movement.at, 0, (), movement))
    events.sort(key=lambda e: e[:4])

    book = _Book(settled=opening_settled_cash, free=opening_settled_cash)
    order_of: dict[int, str] = {}
    days: list[DayCash] = []
    first = min([start, *(e[0] for e in events)])
    index = 0
    violations_12m = _violations_window(book.violations, order_of)
    for offset in range((end - first).days + 1):
        day = first + timedelta(days=offset)
        book.settle(day)
        while index < len(events) and events[index][0] == day:
            event = events[index][4]
            index += 1
            if isinstance(event, CashMovement):
                book.move(event.amount, day)
            elif event.fill.side == "BUY":
                book.buy(event)
            else:
                order_of[event.fill.id] = event.fill.order_ref or f"fill {event.fill.id}"
                book.sell(event)
        book.settle(day)  # money due today (a broker's same-day date) is settled by the end of it
        if day >= start:
            days.append(DayCash(day, book.settled, sum(book.pending.values(), ZERO), violations_12m(day)))
    return CashReplay(days=tuple(days), violations=tuple(book.violations))
