"""Holdings from fills (portfolio/rules/holdings.py): spans, their events, and agreement with round trips.

Worked examples first, then a property over seeded random fill sequences (``hypothesis`` is not a
dependency of the project): the holdings and the ledger's round trips are the same spans with the
same times and realized P&L.
"""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from portfolio.rules.holdings import SplitAt, holding_quantity, holdings_build
from trading.rules.lots import lots_match
from trading.rules.types import LedgerFill

D = Decimal
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


class Fills:
    """Fills one minute apart (or at ``at``), with ids in the order they are made."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, side, quantity, price, commission="0", *, at=None, multiplier="1") -> LedgerFill:
        self.n += 1
        executed_at = at or T0 + timedelta(minutes=self.n)
        return LedgerFill(
            id=self.n,
            exec_id=f"e{self.n:06d}",
            instrument_id=7,
            executed_at=executed_at,
            trade_date=executed_at.date(),
            side=side,
            quantity=D(quantity),
            price=D(price),
            commission=D(commission),
            multiplier=D(multiplier),
        )


@pytest.fixture
def fill():
    return Fills()


def kinds(span) -> list[str]:
    return [e.kind for e in span.events]


def test_a_round_trip_is_one_closed_holding(fill):
    """20 NVDA bought at 14:00 and sold at 14:03: +18.00 after commissions."""
    buy = fill("BUY", "20", "180.00", "1.00", at=T0)
    sell = fill("SELL", "20", "181.00", "1.00", at=T0 + timedelta(minutes=3))
    [span] = holdings_build([sell, buy])
    assert (span.opened_at, span.closed_at) == (T0, T0 + timedelta(minutes=3))
    assert (span.opening_fill_id, span.closing_fill_id) == (buy.id, sell.id)
    assert span.realized_pnl == D("18.0000") and span.quantity == 0
    assert (span.average_price, span.exit_price) == (D("180"), D("181"))
    assert kinds(span) == ["OPENED", "CLOSED"]
    assert [e.at for e in span.events] == [buy.executed_at, sell.executed_at]
    assert span.events[-1].realized_pnl == D("18.0000")
    assert holding_quantity([span]) == 0


def test_fifo_partial_close_keeps_the_later_lots(fill):
    """domain-rules.md: Buy 50 @ 20 (0.50), Buy 50 @ 24 (0.50), Sell 80 @ 25 (1.00): +278.20, 20 left at 24.01."""
    fills = [fill("BUY", "50", "20", "0.50"), fill("BUY", "50", "24", "0.50"), fill("SELL", "80", "25", "1.00")]
    [span] = holdings_build(fills)
    assert span.is_open and span.quantity == D("20")
    assert span.realized_pnl == D("278.2000")
    assert span.average_price == D("24.01")  # FIFO: what is left of the second lot
    assert span.average_cost == D("22.01")  # the pool: what a broker shows as the average price
    assert kinds(span) == ["OPENED", "INCREASED", "DECREASED"]
    assert [e.quantity_after for e in span.events] == [D(50), D(100), D(20)]
    assert span.events[1].average_price_after == D("22.01")


def test_average_method_uses_the_pool(fill):
    fills = [fill("BUY", "50", "20", "0.50"), fill("BUY", "50", "24", "0.50"), fill("SELL", "80", "25", "1.00")]
    [span] = holdings_build(fills, method="average")
    assert span.average_price == span.average_cost == D("22.01")
    assert span.realized_pnl == lots_match(fills, method="average").realized_by_fill[3]


def test_a_flip_inside_one_fill_closes_and_opens(fill):
    buy = fill("BUY", "100", "10", "1.00")
    flip = fill("SELL", "150", "12", "1.50")
    long, short = holdings_build([buy, flip])
    assert long.closing_fill_id == flip.id and long.realized_pnl == D("198.0000")  # 200 - 1.00 - 1.00
    assert short.opening_fill_id == flip.id and short.is_open and short.quantity == D(-50)
    assert short.opened_at == flip.executed_at
    assert short.average_cost == D("11.99")  # a short's basis is its proceeds net of commission
    assert kinds(long) == ["OPENED", "CLOSED"] and kinds(short) == ["OPENED"]
    assert long.events[-1].note and short.events[0].note


def test_short_then_cover_is_one_holding(fill):
    """domain-rules.md: Short 10 @ 100 (1.00), cover @ 110 (1.00): -102.00."""
    [span] = holdings_build([fill("SELL", "10", "100", "1.00"), fill("BUY", "10", "110", "1.00")])
    assert span.realized_pnl == D("-102.0000") and span.events[0].quantity_after == D(-10)


def test_late_fill_in_the_past_is_replayed_in_order(fill):
    first = fill("BUY", "10", "50", at=T0)
    sell = fill("SELL", "10", "55", at=T0 + timedelta(minutes=10))
    late = fill("BUY", "5", "52", at=T0 + timedelta(minutes=5))  # arrives last, happened in between
    [span] = holdings_build([first, sell, late])
    assert span.is_open and span.quantity == D(5)
    assert [e.fill_id for e in span.events] == [first.id, late.id, sell.id]
    assert kinds(span) == ["OPENED", "INCREASED", "DECREASED"]


def test_a_split_multiplies_what_is_held_and_keeps_the_cost(fill):
    buy = fill("BUY", "100", "150", at=T0)
    split = SplitAt(at=T0 + timedelta(days=1), ratio=D(2))
    sell = fill("SELL", "200", "80", at=T0 + timedelta(days=2))
    [before_sell] = holdings_build([buy], splits=[split])
    assert before_sell.quantity == D(200) and before_sell.average_cost == D(75)
    [span] = holdings_build([buy, sell], splits=[split])
    assert not span.is_open and span.realized_pnl == D("1000.0000")  # 200 x (80 - 75)
    assert [e.quantity_before for e in span.events] == [D(0), D(200)]


def test_options_count_the_multiplier(fill):
    fills = [fill("BUY", "2", "5.00", "1.30", multiplier="100"), fill("SELL", "2", "0", "0", multiplier="100")]
    [span] = holdings_build(fills)
    assert span.realized_pnl == D("-1001.3000")


def _random_fills(seed: int, count: int) -> list[LedgerFill]:
    rng = random.Random(seed)
    fill = Fills()
    position = 0
    out = []
    moment = T0
    for _ in range(count):
        quantity = rng.choice([1, 3, 5, 10, 25])
        side = ("SELL" if position > 0 else "BUY") if position and rng.random() < 0.55 else rng.choice(["BUY", "SELL"])
        position += quantity if side == "BUY" else -quantity
        moment += timedelta(seconds=rng.choice([0, 1, 30, 600]))  # equal times too: the exec id decides
        out.append(
            fill(
                side, str(quantity), f"{rng.randint(900, 1100) / 10:.2f}", f"{rng.randint(0, 200) / 100:.2f}", at=moment
            )
        )
    rng.shuffle(out)  # arrival order must not matter
    return out


@pytest.mark.parametrize("method", ["fifo", "average"])
@pytest.mark.parametrize("seed", range(12))
def test_holdings_and_round_trips_are_the_same_spans(seed, method):
    fills = _random_fills(seed, 300)
    spans = holdings_build(fills, method=method)
    ledger = lots_match(fills, method=method)
    closed = [s for s in spans if not s.is_open]
    assert [(s.opening_fill_id, s.closing_fill_id, s.opened_at, s.closed_at, s.realized_pnl) for s in closed] == [
        (t.opening_fill_id, t.closing_fill_id, t.opened_at, t.closed_at, t.realized_pnl) for t in ledger.round_trips
    ]
    # Each closed holding's events add up to its realized P&L, and every fill is an event once per kind.
    for span in closed:
        assert sum(e.realized_pnl or 0 for e in span.events) == span.realized_pnl
    events = [(e.fill_id, e.kind) for s in spans for e in s.events]
    assert len(events) == len(set(events)) and {f for f, _ in events} == {f.id for f in fills}
    # The open holding is the ledger's open position.
    assert holding_quantity(spans) == ledger.quantity
    if ledger.quantity:
        assert spans[-1].opening_fill_id == ledger.position_opening_fill_id
        assert spans[-1].average_cost == round(ledger.average_cost, 8)
    # Quantities chain from one event to the next.
    for span in spans:
        for a, b in zip(span.events, span.events[1:], strict=False):
            assert a.quantity_after == b.quantity_before
