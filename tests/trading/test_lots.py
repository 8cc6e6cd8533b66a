"""Realized P&L by lots (trading/rules/lots.py), from the rules of domain-rules.md "Realized P&L".

Worked examples first, then the rules one by one, then properties over seeded random sequences
(``hypothesis`` is not a dependency of the project).
"""

import decimal
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
import pytest

from trading.rules.lots import LedgerResult, OpenLot, lots_match, realized_total
from trading.rules.types import LedgerFill

D = Decimal
T0 = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)
ONE = D(1)


class LedgerFillFactory(factory.Factory):
    class Meta:
        model = LedgerFill

    id = factory.Sequence(lambda n: n + 1)
    exec_id = factory.LazyAttribute(lambda f: f"0000e0d5.{f.id:08d}.01.01")
    instrument_id = 7
    executed_at = factory.LazyAttribute(lambda f: T0 + timedelta(minutes=f.id))
    trade_date = factory.LazyAttribute(lambda f: f.executed_at.date())
    side = "BUY"
    quantity = D(100)
    price = D("10.00")
    commission = D(0)
    multiplier = D(1)


def buy(quantity, price, commission="0", **kwargs) -> LedgerFill:
    return LedgerFillFactory(side="BUY", quantity=D(quantity), price=D(price), commission=D(commission), **kwargs)


def sell(quantity, price, commission="0", **kwargs) -> LedgerFill:
    return LedgerFillFactory(side="SELL", quantity=D(quantity), price=D(price), commission=D(commission), **kwargs)


@pytest.fixture(autouse=True)
def _fresh_ids():
    LedgerFillFactory.reset_sequence()


def assert_reconciles(result: LedgerResult) -> None:
    """Matches, fills and round trips agree to the last digit."""
    by_fill: dict[int, Decimal] = {}
    for match in result.matches:
        by_fill[match.closing_fill_id] = by_fill.get(match.closing_fill_id, D(0)) + match.realized_pnl
    assert by_fill == result.realized_by_fill
    assert realized_total(result) == sum((m.realized_pnl for m in result.matches), D(0))
    closing_ids = iter(result.realized_by_fill)
    for trip in result.round_trips:
        trip_total = D(0)
        for fill_id in closing_ids:
            trip_total += result.realized_by_fill[fill_id]
            if fill_id == trip.closing_fill_id:
                break
        assert trip.realized_pnl == trip_total
    for value in [m.realized_pnl for m in result.matches] + [t.commissions for t in result.round_trips]:
        assert value == value.quantize(D("0.0001"))


# --- The worked examples of domain-rules.md --------------------------------------------------------------------------


def test_fifo_example_realizes_278_20_and_leaves_20_at_24_01():
    fills = [buy(50, "20.00", "0.50"), buy(50, "24.00", "0.50"), sell(80, "25.00", "1.00")]

    result = lots_match(fills)

    assert realized_total(result) == D("278.20")
    assert result.realized_by_fill == {3: D("278.20")}
    assert result.open_lots == (OpenLot(2, fills[1].executed_at, D(50), D(20), D("24.01")),)
    assert result.quantity == D(20)
    assert result.position_opening_fill_id == 1
    # 50 from the first lot at 20.01, 30 from the second at 24.01, out at 25 - 1.00/80 = 24.9875.
    assert [(m.opening_fill_id, m.quantity, m.entry_price, m.exit_price, m.realized_pnl) for m in result.matches] == [
        (1, D(50), D("20.01"), D("24.9875"), D("248.875")),
        (2, D(30), D("24.01"), D("24.9875"), D("29.325")),
    ]
    assert result.round_trips == ()
    assert_reconciles(result)


def test_short_example_covered_higher_loses_102():
    fills = [sell(10, "100", "1.00"), buy(10, "110", "1.00")]

    result = lots_match(fills)

    assert realized_total(result) == D("-102.00")
    (match,) = result.matches
    assert (match.quantity, match.entry_price, match.exit_price) == (D(-10), D("99.90"), D("110.10"))
    (trip,) = result.round_trips
    assert (trip.direction, trip.realized_pnl, trip.commissions, trip.outcome) == ("SHORT", D(-102), D(2), "LOSS")
    assert result.quantity == 0
    assert result.open_lots == ()
    assert result.average_cost is None
    assert result.position_opening_fill_id is None


def test_average_method_on_the_fifo_example():
    fills = [buy(50, "20.00", "0.50"), buy(50, "24.00", "0.50"), sell(80, "25.00", "1.00")]

    result = lots_match(fills, method="average")

    # Pool: 50 x 20 + 0.50 + 50 x 24 + 0.50 = 2201.00 for 100, so 22.01 a share.
    # Sell 80: proceeds 80 x 25 - 1.00 = 1999.00; cost 80 x 22.01 = 1760.80; realized 238.20.
    # Left: 20 at 22.01 (440.20), one pooled lot dated from the fill that opened the position.
    assert realized_total(result) == D("238.20")
    (match,) = result.matches
    assert (match.opening_fill_id, match.closing_fill_id, match.quantity) == (1, 3, D(80))
    assert (match.entry_price, match.exit_price) == (D("22.01"), D("24.9875"))
    assert result.open_lots == (OpenLot(1, fills[0].executed_at, D(100), D(20), D("22.01")),)
    assert result.average_cost == D("22.01")
    assert_reconciles(result)


def test_average_cost_is_the_pooled_cost_whatever_the_lot_method():
    """TWS "average price" is the average cost; FIFO decides the lots and the realized P&L only."""
    fills = [buy(50, "20.00", "0.50"), buy(50, "24.00", "0.50"), sell(80, "25.00", "1.00")]

    assert lots_match(fills).average_cost == D("22.01")
    assert lots_match(fills).open_lots[0].cost_price == D("24.01")


def test_average_method_realizes_each_close_against_the_current_pool():
    # Pool 10 @ 10 (100), sell 5 @ 12 realizes 10; pool 5 @ 10; buy 5 @ 13 makes 10 @ 11.50;
    # sell 10 @ 11 realizes 10 x (11 - 11.50) = -5.
    fills = [buy(10, "10"), sell(5, "12"), buy(5, "13"), sell(10, "11")]

    result = lots_match(fills, method="average")

    assert [(m.opening_fill_id, m.entry_price, m.realized_pnl) for m in result.matches] == [
        (1, D(10), D(10)),
        (1, D("11.5"), D(-5)),
    ]
    assert result.round_trips[0].realized_pnl == D(5)
    assert lots_match(fills).round_trips[0].realized_pnl == D(5)  # flat to flat, both methods agree


# --- Commissions -----------------------------------------------------------------------------------------------------


def test_partial_closes_prorate_the_lot_commission():
    fills = [buy(100, "10.00", "2.00"), sell(30, "12.00", "1.50"), sell(70, "11.00", "1.00")]

    result = lots_match(fills)

    # Lot cost 10.02 a share. 30 x 12 - 1.50 - 30 x 10.02 = 57.90; 70 x 11 - 1.00 - 70 x 10.02 = 67.60.
    assert result.realized_by_fill == {2: D("57.90"), 3: D("67.60")}
    assert lots_match(fills[:2]).open_lots == (OpenLot(1, fills[0].executed_at, D(100), D(70), D("10.02")),)
    (trip,) = result.round_trips
    assert trip.realized_pnl == D("125.50")  # cash: -1002.00 + 358.50 + 769.00
    assert trip.commissions == D("4.50")
    assert_reconciles(result)


def test_a_close_across_two_lots_prorates_the_closing_commission():
    fills = [buy(10, "10", "1.00"), buy(30, "11", "3.00"), sell(20, "12", "2.00")]

    result = lots_match(fills)

    # Lots at 10.10 and 11.10; exit 12 - 2.00/20 = 11.90 for both halves of the sale.
    assert [(m.opening_fill_id, m.quantity, m.exit_price, m.realized_pnl) for m in result.matches] == [
        (1, D(10), D("11.9"), D(18)),
        (2, D(10), D("11.9"), D(8)),
    ]
    assert result.open_lots == (OpenLot(2, fills[1].executed_at, D(30), D(20), D("11.10")),)


def test_zero_commission():
    fills = [buy(100, "10.00"), buy(100, "12.00"), sell(150, "13.00"), sell(50, "9.00")]

    result = lots_match(fills)

    assert [m.realized_pnl for m in result.matches] == [D(300), D(50), D(-150)]
    (trip,) = result.round_trips
    assert (trip.realized_pnl, trip.commissions, trip.outcome) == (D(200), D(0), "WIN")
    assert [m.entry_price for m in result.matches] == [D(10), D(12), D(12)]


def test_partial_closes_do_not_drift_in_rounding():
    # Lot cost 31.00 for 3, 10.3333... each; three sales of one at 11 make 0.6666... each, 2.00 in all.
    fills = [buy(3, "10", "1.00"), sell(1, "11"), sell(1, "11"), sell(1, "11")]

    result = lots_match(fills)

    assert [m.realized_pnl for m in result.matches] == [D("0.6667"), D("0.6666"), D("0.6667")]
    assert result.round_trips[0].realized_pnl == D("2.0000")
    assert_reconciles(result)


# --- Shorts and flips ------------------------------------------------------------------------------------------------


def test_short_with_partial_covers():
    fills = [sell(100, "50.00", "1.00"), buy(40, "45.00", "0.40"), buy(60, "52.00", "0.60")]

    result = lots_match(fills)

    # Net proceeds 49.99 a share. Cover 40 at 45.01: (45.01 - 49.99) x -40 = +199.20.
    # Cover 60 at 52.01: (52.01 - 49.99) x -60 = -121.20.
    assert [(m.quantity, m.entry_price, m.exit_price, m.realized_pnl) for m in result.matches] == [
        (D(-40), D("49.99"), D("45.01"), D("199.20")),
        (D(-60), D("49.99"), D("52.01"), D("-121.20")),
    ]
    assert lots_match(fills[:2]).open_lots == (OpenLot(1, fills[0].executed_at, D(-100), D(-60), D("49.99")),)
    assert lots_match(fills[:2]).average_cost == D("49.99")
    (trip,) = result.round_trips
    assert (trip.direction, trip.quantity, trip.realized_pnl, trip.outcome) == ("SHORT", D(100), D(78), "WIN")
    assert (trip.average_entry, trip.average_exit, trip.commissions) == (D(50), D("49.2"), D(2))


def test_a_fill_through_zero_closes_the_long_and_opens_a_short_with_the_rest():
    fills = [buy(100, "10.00", "1.00"), sell(150, "12.00", "1.50"), buy(50, "11.00", "0.50")]

    after_flip = lots_match(fills[:2])

    # The sale's 1.50 splits 1.00 to the 100 closed and 0.50 to the 50 opened short.
    # Close: 100 x (12 - 0.01) - 1001.00 = 198.00. New short lot: 12 - 0.50/50 = 11.99.
    assert after_flip.realized_by_fill == {2: D(198)}
    assert after_flip.open_lots == (OpenLot(2, fills[1].executed_at, D(-50), D(-50), D("11.99")),)
    assert (after_flip.quantity, after_flip.position_opening_fill_id) == (D(-50), 2)
    assert after_flip.average_cost == D("11.99")
    (first,) = after_flip.round_trips
    assert (first.opening_fill_id, first.closing_fill_id, first.direction, first.quantity) == (1, 2, "LONG", D(100))
    assert (first.average_exit, first.commissions, first.realized_pnl) == (D(12), D(2), D(198))

    result = lots_match(fills)

    # Cover 50 at 11.01 against 11.99: (11.01 - 11.99) x -50 = +49.00.
    assert result.realized_by_fill == {2: D(198), 3: D(49)}
    second = result.round_trips[1]
    assert (second.opening_fill_id, second.closing_fill_id, second.direction) == (2, 3, "SHORT")
    assert (second.quantity, second.average_entry, second.commissions, second.realized_pnl) == (
        D(50),
        D(12),
        D(1),
        D(49),
    )
    assert second.opened_at == first.closed_at
    assert sum(t.commissions for t in result.round_trips) == D(3)


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_a_flip_from_short_to_long(method):
    fills = [sell(10, "20", "1.00"), sell(10, "22", "1.00"), buy(25, "18", "2.50")]

    result = lots_match(fills, method=method)

    # Short 20 for 420 - 2 = 418 net; cover 20 at 18 + 0.10 = 362; realized 56. 5 left long at 18.10.
    assert realized_total(result) == D(56)
    assert result.open_lots[0].quantity == D(5)
    assert result.open_lots[0].cost_price == D("18.10")
    assert result.position_opening_fill_id == 3


# --- Multiplier, fractional quantities -------------------------------------------------------------------------------


def test_options_multiply_money_by_100_and_keep_prices_per_unit():
    fills = [
        buy(2, "3.20", "1.30", multiplier=D(100)),
        sell(1, "4.10", "0.65", multiplier=D(100)),
        sell(1, "0.00", multiplier=D(100)),  # expired worthless
    ]

    result = lots_match(fills)

    # Cost 640 + 1.30 = 641.30 for 200 shares' worth: 3.2065 per unit. Sell one contract:
    # 410 - 0.65 - 320.65 = +88.70. The other expires at 0: -320.65.
    assert [(m.entry_price, m.exit_price, m.realized_pnl) for m in result.matches] == [
        (D("3.2065"), D("4.0935"), D("88.70")),
        (D("3.2065"), D(0), D("-320.65")),
    ]
    assert lots_match(fills[:2]).average_cost == D("3.2065")
    (trip,) = result.round_trips
    assert (trip.quantity, trip.average_entry, trip.average_exit) == (D(2), D("3.2"), D("2.05"))
    assert (trip.realized_pnl, trip.commissions, trip.outcome) == (D("-231.95"), D("1.95"), "LOSS")


def test_fractional_shares():
    fills = [buy("0.5", "100.10", "0.01"), buy("1.25", "99.90", "0.02"), sell("1.3", "101.00", "0.03")]

    result = lots_match(fills)

    # Lots: 0.5 for 50.06 (100.12 each), 1.25 for 124.895 (99.916 each). Sale: 131.30 - 0.03 = 131.27.
    # 0.5 of it: 131.27 x 0.5/1.3 - 50.06 = 0.428461...; 0.8: 131.27 x 0.8/1.3 - 0.8 x 99.916 = 0.848738...
    # Together exactly 131.27 - 50.06 - 79.9328 = 1.2772, so the second match takes 1.2772 - 0.4285.
    assert [(m.quantity, m.realized_pnl) for m in result.matches] == [(D("0.5"), D("0.4285")), (D("0.8"), D("0.8487"))]
    assert realized_total(result) == D("1.2772")
    assert result.open_lots == (OpenLot(2, fills[1].executed_at, D("1.25"), D("0.45"), D("99.916")),)
    assert result.quantity == D("0.45")
    assert_reconciles(result)


# --- Round trips -----------------------------------------------------------------------------------------------------


def test_round_trips_run_flat_to_flat_in_closing_order():
    fills = [
        buy(100, "10", "1.00", executed_at=T0),
        buy(100, "11", "1.00", executed_at=T0 + timedelta(minutes=5)),
        sell(50, "12", "1.00", executed_at=T0 + timedelta(minutes=9)),
        sell(150, "10", "1.00", executed_at=T0 + timedelta(hours=2, seconds=3)),
        sell(10, "50", executed_at=T0 + timedelta(days=1)),
        buy(10, "51", executed_at=T0 + timedelta(days=3, seconds=1, microseconds=999_999)),
    ]

    result = lots_match(fills)

    first, second = result.round_trips
    assert (first.opening_fill_id, first.closing_fill_id, first.direction) == (1, 4, "LONG")
    assert (first.opened_at, first.closed_at) == (fills[0].executed_at, fills[3].executed_at)
    assert first.quantity == D(200)  # the largest size held, not what was traded
    assert (first.average_entry, first.average_exit) == (D("10.5"), D("10.5"))
    # Bought for 2102, sold for 600 - 1 + 1500 - 1 = 2098.
    assert (first.realized_pnl, first.commissions, first.outcome) == (D(-4), D(4), "LOSS")
    assert first.holding_seconds == 2 * 3600 + 3
    assert (second.direction, second.realized_pnl, second.outcome) == ("SHORT", D(-10), "LOSS")
    assert second.holding_seconds == 2 * 86400 + 1  # whole seconds, the fraction dropped
    assert result.position_opening_fill_id is None


def test_break_even_is_not_a_win_and_commissions_make_it_a_loss():
    even = lots_match([buy(10, "10"), sell(10, "10")]).round_trips[0]
    with_fees = lots_match([buy(10, "10", "0.01"), sell(10, "10")]).round_trips[0]

    assert (even.realized_pnl, even.outcome) == (D(0), "BREAKEVEN")
    assert str(even.realized_pnl) == "0.0000"
    assert (with_fees.realized_pnl, with_fees.outcome) == (D("-0.01"), "LOSS")


def test_an_open_position_has_no_round_trip_yet():
    result = lots_match([buy(10, "10"), sell(4, "12")])

    assert result.round_trips == ()
    assert result.realized_by_fill == {2: D(8)}
    assert result.position_opening_fill_id == 1


def test_fills_that_only_open_are_absent_from_realized_by_fill():
    result = lots_match([buy(10, "10"), buy(10, "11"), sell(5, "10"), buy(1, "9")])

    assert result.realized_by_fill == {3: D(0)}


def test_no_fills_is_flat():
    assert lots_match([]) == LedgerResult((), (), {}, (), D(0), None, None)


# --- Order of arrival ------------------------------------------------------------------------------------------------


def test_same_timestamp_is_ordered_by_exec_id():
    fills = [
        buy(10, "10", exec_id="b", executed_at=T0),
        sell(10, "12", exec_id="a", executed_at=T0),  # first: opens a short
    ]

    result = lots_match(fills)

    assert result.round_trips[0].direction == "SHORT"
    assert result.round_trips[0].opening_fill_id == 2


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_input_order_does_not_change_the_result(method):
    fills = random_fills(random.Random(20250303), 60)
    expected = lots_match(fills, method=method)
    rng = random.Random(7)

    for _ in range(200):
        shuffled = fills[:]
        rng.shuffle(shuffled)
        assert lots_match(shuffled, method=method) == expected
    assert lots_match(reversed(fills), method=method) == expected
    assert lots_match(iter(fills), method=method) == expected


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_a_late_older_fill_changes_the_result_as_if_it_had_come_in_order(method):
    fills = [
        buy(100, "10.00", "1.00", executed_at=T0),
        buy(50, "9.00", "0.50", executed_at=T0 + timedelta(minutes=10)),  # the late one
        sell(120, "11.00", "1.20", executed_at=T0 + timedelta(minutes=20)),
        sell(30, "12.00", "0.30", executed_at=T0 + timedelta(minutes=30)),
    ]
    late = fills[1]
    arrived_so_far = [f for f in fills if f is not late]

    before = lots_match(arrived_so_far, method=method)
    after = lots_match([*arrived_so_far, late], method=method)

    assert after == lots_match(fills, method=method)
    assert before.quantity == D(-50)  # without it the second sale went short
    assert after.quantity == 0
    assert len(after.round_trips) == 1
    assert after.realized_by_fill != before.realized_by_fill


def test_the_callers_decimal_context_does_not_change_the_digits():
    fills = random_fills(random.Random(99), 80)
    expected = lots_match(fills)

    with decimal.localcontext(decimal.Context(prec=6, rounding=decimal.ROUND_DOWN)):
        assert lots_match(fills) == expected
        assert realized_total(lots_match(fills)) == realized_total(expected)


# --- Invalid input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"quantity": D(0)}, "quantity must be positive"),
        ({"quantity": D(-5)}, "quantity must be positive"),
        ({"quantity": D("NaN")}, "finite Decimal"),
        ({"quantity": D("1E-20")}, "out of range"),
        ({"side": "BOT"}, "unknown side 'BOT'"),
        ({"instrument_id": 8}, "instrument 8"),
        ({"price": 10.5}, "price must be a finite Decimal"),
        ({"commission": None}, "commission must be a finite Decimal"),
        ({"multiplier": D(0)}, "multiplier must be positive"),
        ({"multiplier": D(100)}, "multiplier 100"),
        ({"id": 1}, "the same fill id appears twice"),
        ({"executed_at": datetime(2025, 3, 3, 15, 0)}, "aware datetime"),
    ],
)
def test_invalid_fills_are_refused_naming_the_fill(bad, message):
    good = buy(10, "10")
    bad_fill = LedgerFillFactory(id=bad.pop("id", 99), exec_id="bad-exec", **bad)

    with pytest.raises(ValueError, match=message) as excinfo:
        lots_match([good, bad_fill])

    assert "(exec bad-exec)" in str(excinfo.value)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown lot matching method 'lifo'"):
        lots_match([buy(10, "10")], method="lifo")


# --- Properties over seeded random sequences -------------------------------------------------------------------------


def random_fills(rng: random.Random, count: int, *, end_flat: bool = False, multiplier: Decimal = ONE):
    """Buys and sells that open, add, reduce, close and flip, with ties on the timestamp."""
    sizes = [D(1), D(2), D(3), D(7), D(10), D(30), D(100), D("0.5"), D("1.25"), D("0.001")]
    fills, position, at = [], D(0), T0
    for index in range(count):
        at += timedelta(seconds=rng.choice([0, 0, 1, 17, 600, 86400]))
        side = rng.choice(["BUY", "SELL"])
        quantity = rng.choice(sizes)
        if position and rng.random() < 0.25:  # back to flat sometimes, through zero other times
            side = "SELL" if position > 0 else "BUY"
            quantity = abs(position) * rng.choice([1, 1, 2])
        if end_flat and index == count - 1:
            if not position:
                break
            side, quantity = ("SELL" if position > 0 else "BUY"), abs(position)
        price = D(rng.randint(500, 1500)) / 100
        commission = rng.choice([D(0), D("1.00"), D(rng.randint(1, 500)) / 100, D("0.35")])
        fills.append(
            LedgerFillFactory(
                side=side,
                quantity=quantity,
                price=price,
                commission=commission,
                multiplier=multiplier,
                executed_at=at,
                exec_id=f"{rng.randint(0, 99):02d}",
            )
        )
        position += quantity if side == "BUY" else -quantity
    return fills


SEEDS = range(25)


@pytest.mark.parametrize("method", ["fifo", "average"])
@pytest.mark.parametrize("seed", SEEDS)
def test_realized_plus_open_cost_equals_the_cash_flows(seed, method):
    """Every unit of money that went in or out is either realized or still in an open lot at cost."""
    multiplier = D(100) if seed % 5 == 0 else D(1)
    fills = random_fills(random.Random(seed), 120, multiplier=multiplier)

    result = lots_match(fills, method=method)

    cash_in = sum((-f.signed_quantity * f.price * f.multiplier - f.commission for f in fills), D(0))
    open_cost = sum((lot.quantity * lot.cost_price * multiplier for lot in result.open_lots), D(0))
    # Rounding happens once per round trip (and once for the open one), half a unit of 0.0001 each.
    tolerance = D("0.00005") * (len(result.round_trips) + 1) + D("1E-20")
    assert abs(realized_total(result) - (cash_in + open_cost)) <= tolerance
    assert_reconciles(result)


@pytest.mark.parametrize("method", ["fifo", "average"])
@pytest.mark.parametrize("seed", SEEDS)
def test_positions_and_lots_stay_consistent(seed, method):
    fills = random_fills(random.Random(seed), 120)

    result = lots_match(fills, method=method)

    assert result.quantity == sum((f.signed_quantity for f in fills), D(0))
    assert sum((lot.quantity for lot in result.open_lots), D(0)) == result.quantity
    assert all((lot.quantity > 0) == (result.quantity > 0) for lot in result.open_lots)
    assert all(abs(lot.quantity) <= abs(lot.original_quantity) for lot in result.open_lots)
    assert (result.average_cost is None) == (result.quantity == 0) == (result.position_opening_fill_id is None)
    if result.quantity:
        ids = {lot.opening_fill_id for lot in result.open_lots}
        assert result.position_opening_fill_id in ids or method == "fifo"
    for trip in result.round_trips:
        assert trip.outcome == ("WIN" if trip.realized_pnl > 0 else "LOSS" if trip.realized_pnl < 0 else "BREAKEVEN")
        assert trip.holding_seconds >= 0
        assert trip.quantity > 0
    assert [t.closed_at for t in result.round_trips] == sorted(t.closed_at for t in result.round_trips)


@pytest.mark.parametrize("seed", SEEDS)
def test_fifo_and_average_agree_on_every_closed_round_trip(seed):
    """The lot method moves P&L between the fills of a trip, never in or out of it."""
    fills = random_fills(random.Random(seed), 120, end_flat=True)

    fifo, average = lots_match(fills), lots_match(fills, method="average")

    assert fifo.quantity == average.quantity == 0
    assert fifo.round_trips == average.round_trips
    all_commissions = sum((f.commission for f in fills), D(0))
    assert abs(sum(t.commissions for t in fifo.round_trips) - all_commissions) <= D("0.00005") * len(fills)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_close_exactly_what_the_closing_fills_traded(seed):
    fills = random_fills(random.Random(seed), 120)
    by_id = {f.id: f for f in fills}

    result = lots_match(fills)

    closed: dict[int, Decimal] = {}
    for match in result.matches:
        closing, opening = by_id[match.closing_fill_id], by_id[match.opening_fill_id]
        assert (match.quantity > 0) == (closing.side == "SELL") == (opening.side == "BUY")
        assert closing.executed_at >= opening.executed_at
        closed[closing.id] = closed.get(closing.id, D(0)) + abs(match.quantity)
    for fill_id, quantity in closed.items():
        assert quantity <= by_id[fill_id].quantity


# --- an option's exercise or assignment: the premium moves into the stock's basis -------------------
def test_a_basis_transfer_counts_like_a_commission_but_is_not_one():
    """Short put sold at 2.00 (commission 1.00), assigned: the option's closing fill carries what it
    would realize (199.00) and realizes 0; the stock bought at the strike carries -199.00, so its lot
    costs 48.01. Neither round trip counts the transfer as a commission."""
    option = [
        sell(1, "2.00", "1.00", multiplier=D(100)),
        buy(1, "0", multiplier=D(100), basis_transfer=D("199.00")),
    ]
    result = lots_match(option)
    assert result.realized_by_fill[2] == D("0.0000")
    (trip,) = result.round_trips
    assert (trip.realized_pnl, trip.commissions, trip.outcome) == (D("0.0000"), D("1.0000"), "BREAKEVEN")

    stock = lots_match([buy(100, "50", instrument_id=8, basis_transfer=D("-199.00")), sell(100, "55", instrument_id=8)])
    assert stock.realized_by_fill[4] == D("699.0000")  # (55 - 48.01) x 100
    (trip,) = stock.round_trips
    assert trip.commissions == D("0.0000")
    assert lots_match([buy(100, "50", basis_transfer=D("-199.00"))]).open_lots[0].cost_price == D("48.01")
