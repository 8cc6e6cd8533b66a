"""IBKRBroker.option_prints end to end over the socket against the IB Gateway simulator.

The simulator serves the state file's ``option_chains`` and ``option_flow``: the chain of each
underlying (reqSecDefOptParams), its contracts (contract details per expiry) and each contract's
market data (bid, ask, last, day volume, last trade time, open interest with generic tick 101), live
or delayed. The adapter turns the day volume beyond what was already reported into prints.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from ib_async import Contract, Ticker

from core.brokers.base import BrokerUnavailable
from core.brokers.ibkr import IBKRBroker, OptionsFlowLimits
from tests.factories import OptionsPrintRowFactory

NEW_YORK = ZoneInfo("America/New_York")
STRIKES = [str(k) for k in range(120, 165, 5)]


def dates() -> tuple:
    today = datetime.now(NEW_YORK).date()
    return today - timedelta(days=3), today + timedelta(days=10), today + timedelta(days=38), today + timedelta(days=66)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def chain(gateway):
    """NVDA at 141.80 with four expiries (one past) x 120..160 in steps of 5; no prints yet."""
    past, first, second, third = dates()
    with gateway.state.edit() as state:
        state["quotes"]["NVDA"] = {"bid": "141.75", "ask": "141.85", "last": "141.80", "time": iso(datetime.now(UTC))}
        state["option_chains"] = {
            "NVDA": {"expiries": [d.isoformat() for d in (past, first, second, third)], "strikes": STRIKES}
        }
        state["option_flow"] = []
    return past, first, second, third


def add_prints(gateway, *rows) -> None:
    with gateway.state.edit() as state:
        state["option_flow"] += [dict(row) for row in rows]


def broker(gateway, **limits) -> IBKRBroker:
    return gateway.broker(options_flow=OptionsFlowLimits(**{"market_data_type": 1, "tick_wait": 2.0, **limits}))


def key(p) -> tuple:
    return (p.expiry, p.strike, p.right)


def test_prints_are_the_volume_since_the_last_poll_at_the_last_price(gateway, chain):
    _past, first, _second, _third = chain
    an_hour_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    add_prints(
        gateway,
        OptionsPrintRowFactory(
            time=iso(an_hour_ago), expiry=first.isoformat(), strike="150", right="C", size=10, volume=None,
            price="4.35", bid="4.20", ask="4.35", open_interest=1800,
        ),
        OptionsPrintRowFactory(
            time=iso(an_hour_ago + timedelta(minutes=5)), expiry=first.isoformat(), strike="140", right="P",
            size=5, volume=None, price="3.10", bid="3.10", ask="3.30", open_interest=700,
        ),
    )  # fmt: skip
    adapter = broker(gateway)
    fetched = adapter.option_prints(["nvda"])
    assert fetched.warnings == ()
    by_contract = {key(p): p for p in fetched.items}
    assert set(by_contract) == {(first, Decimal("150"), "C"), (first, Decimal("140"), "P")}
    call = by_contract[(first, Decimal("150"), "C")]
    assert (call.underlying, call.size, call.price, call.bid, call.ask) == (
        "NVDA",
        Decimal("10"),
        Decimal("4.35"),
        Decimal("4.2"),
        Decimal("4.35"),
    )
    assert (call.volume, call.open_interest, call.underlying_price, call.multiplier) == (
        Decimal("10"),
        Decimal("1800"),
        Decimal("141.8"),
        Decimal("100"),
    )
    assert (call.time, call.delayed, call.kind, call.exchanges) == (an_hour_ago, False, "", None)
    session = an_hour_ago.astimezone(NEW_YORK).date()
    assert call.print_id.startswith("ibkr-") and call.print_id.endswith(f"-{session:%Y%m%d}-10")
    put = by_contract[(first, Decimal("140"), "P")]
    assert (put.size, put.price, put.open_interest) == (Decimal("5"), Decimal("3.1"), Decimal("700"))

    # What was reported is known: the next poll reports only what traded since, at the new last price.
    known = {("NVDA", p.expiry, p.strike, p.right, p.time.astimezone(NEW_YORK).date()): p.volume for p in fetched.items}
    assert adapter.option_prints(["NVDA"], known_volumes=known).items == ()
    add_prints(
        gateway,
        OptionsPrintRowFactory(
            time=iso(an_hour_ago + timedelta(minutes=30)), expiry=first.isoformat(), strike="150", right="C",
            size=7, volume=None, price="4.50", bid="4.40", ask="4.50", open_interest=1800,
        ),
    )  # fmt: skip
    (later,) = adapter.option_prints(["NVDA"], known_volumes=known).items
    assert (key(later), later.size, later.volume, later.price) == (
        (first, Decimal("150"), "C"),
        Decimal("7"),
        Decimal("17"),
        Decimal("4.5"),
    )
    assert later.print_id != call.print_id


def test_the_day_volume_a_feed_row_states_counts_trades_it_does_not_list(gateway, chain):
    _past, first, _second, _third = chain
    add_prints(
        gateway, OptionsPrintRowFactory(expiry=first.isoformat(), size=10, volume=6200, time=iso(datetime.now(UTC)))
    )
    (only,) = broker(gateway).option_prints(["NVDA"]).items
    assert (only.size, only.volume) == (Decimal("6200"), Decimal("6200"))


def test_only_the_nearest_expiries_and_strikes_near_the_money_are_followed(gateway, chain):
    past, first, second, third = chain
    now = iso(datetime.now(UTC))
    add_prints(
        gateway,
        *(
            OptionsPrintRowFactory(time=now, expiry=expiry.isoformat(), strike=strike, right=right, volume=None)
            for expiry in (past, first, second, third)
            for strike in ("120", "140", "145", "160")
            for right in ("C", "P")
        ),
    )
    fetched = broker(gateway, expiries=2, strikes=2).option_prints(["NVDA"])
    # An expired expiry is not followed; of the rest the two nearest; of their strikes 140 and 145.
    assert sorted({key(p) for p in fetched.items}) == [
        (expiry, Decimal(strike), right)
        for expiry in (first, second)
        for strike in ("140", "145")
        for right in ("C", "P")
    ]


def test_contracts_beyond_the_bound_wait_for_the_next_poll_and_lines_are_used_in_batches(gateway, chain):
    _past, first, _second, _third = chain
    with gateway.state.edit() as state:
        state["quotes"]["AMD"] = {"last": "120.00"}
        state["option_chains"]["AMD"] = {"expiries": [first.isoformat()], "strikes": ["115", "120", "125"]}
    now = iso(datetime.now(UTC))
    add_prints(
        gateway,
        *(OptionsPrintRowFactory(time=now, expiry=first.isoformat(), strike=k, volume=None) for k in ("140", "145")),
        OptionsPrintRowFactory(time=now, underlying="AMD", expiry=first.isoformat(), strike="120", volume=None),
    )
    fetched = broker(gateway, expiries=1, strikes=2, max_contracts=4, market_data_lines=3).option_prints(
        ["NVDA", "AMD"]
    )
    assert {(p.underlying, p.strike) for p in fetched.items} == {("NVDA", Decimal("140")), ("NVDA", Decimal("145"))}
    assert fetched.warnings == (
        "options flow: 4 contracts followed (IBKR_OPTIONS_MAX_CONTRACTS); not polled this time: AMD",
    )


def test_delayed_data_is_recorded_and_a_missing_bid_or_ask_is_none(gateway, chain):
    _past, first, _second, _third = chain
    add_prints(
        gateway,
        OptionsPrintRowFactory(time=iso(datetime.now(UTC)), expiry=first.isoformat(), bid=None, ask=None, volume=None),
    )
    (only,) = broker(gateway, market_data_type=3).option_prints(["NVDA"]).items
    # IBKR sends a missing bid or ask as price -1 with size 0: not a price.
    assert (only.delayed, only.bid, only.ask, only.price) == (True, None, None, Decimal("4.35"))


def test_an_underlying_ibkr_does_not_know_or_without_options_is_a_warning(gateway, chain):
    _past, first, _second, _third = chain
    add_prints(gateway, OptionsPrintRowFactory(time=iso(datetime.now(UTC)), expiry=first.isoformat(), volume=None))
    fetched = broker(gateway).option_prints(["ZZZZ", "AAPL", "NVDA"])
    assert [p.underlying for p in fetched.items] == ["NVDA"]
    assert len(fetched.warnings) == 2
    assert fetched.warnings[0].startswith("options flow: ZZZZ: ") and "no such security" in fetched.warnings[0]
    assert fetched.warnings[1].startswith("options flow: AAPL: ") and "no option chain" in fetched.warnings[1]


def test_market_data_ibkr_refuses_is_skipped_with_a_warning(gateway, chain):
    _past, first, _second, _third = chain
    add_prints(gateway, OptionsPrintRowFactory(time=iso(datetime.now(UTC)), expiry=first.isoformat(), volume=None))
    gateway.faults(market_data={"errors": [{"code": 354, "message": "Requested market data is not subscribed."}]})
    fetched = broker(gateway, expiries=1, strikes=1).option_prints(["NVDA"])
    assert fetched.items == ()
    stock, no_price, refused = fetched.warnings
    assert stock.startswith("options flow: NVDA: ") and "error 354" in stock  # the stock's snapshot
    assert "IBKR gave no price for the stock; strikes picked around the middle of the chain" in no_price
    assert refused.startswith("options flow: IBKR refused market data for 2 contract(s) (error 354")
    assert "OPT NVDA" in refused


def test_a_gateway_that_goes_away_is_unavailable_never_no_flow(gateway, chain):
    gateway.faults(option_chains={"drop": True, "answer": "none"})
    with pytest.raises(BrokerUnavailable):
        broker(gateway).option_prints(["NVDA"])


def test_sentinels_and_nan_never_cross_the_boundary():
    """IBKR's unset double (1.797e308), NaN and -1 in a ticker are "none", never numbers."""
    contract = Contract(
        conId=555, symbol="NVDA", secType="OPT", lastTradeDateOrContractMonth="20261218", strike=150.0, right="C",
        multiplier="100", exchange="SMART", currency="USD",
    )  # fmt: skip
    polled = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
    ticker = Ticker(contract=contract)  # its fields start unset (NaN), as ib_async makes them
    ticker.volume, ticker.last, ticker.bid, ticker.ask = 25.0, 4.35, -1.0, 1.7976931348623157e308
    found = IBKRBroker._option_print("NVDA", None, ticker, known={}, zone=NEW_YORK, polled_at=polled)
    assert (found.bid, found.ask, found.open_interest, found.time, found.size) == (None, None, None, polled, 25)
    assert (
        IBKRBroker._option_print("NVDA", None, Ticker(contract=contract), known={}, zone=NEW_YORK, polled_at=polled)
        is None
    )  # no volume tick: nothing to report


def test_a_batch_larger_than_ib_asyncs_pacing_is_waited_for(gateway, chain):
    """ib_async sends at most 45 requests a second: 60 subscriptions take more than a second to go out,
    longer than the tick wait, which counts from the last contract whose volume came."""
    _past, first, _second, _third = chain
    strikes = [str(k) for k in range(100, 130)]
    with gateway.state.edit() as state:
        state["option_chains"]["NVDA"] = {"expiries": [first.isoformat()], "strikes": strikes}
    now = iso(datetime.now(UTC))
    add_prints(
        gateway,
        *(
            OptionsPrintRowFactory(time=now, expiry=first.isoformat(), strike=strike, right=right, volume=None)
            for strike in strikes
            for right in ("C", "P")
        ),
    )
    fetched = broker(gateway, expiries=1, strikes=30, market_data_lines=60, tick_wait=0.5).option_prints(["NVDA"])
    assert (len(fetched.items), fetched.warnings) == (60, ())
