"""The pure rules of domain-rules.md "Sentiment and options flow"."""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from sentiment import rules

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def test_worked_example_of_domain_rules():
    tally = rules.Tally()
    for compound, weight in (("0.6", 2), ("-0.2", 1), ("0.0", 1)):
        compound = Decimal(compound)
        tally.add(compound=compound, weight=Decimal(weight), label=rules.label_of(compound))
    assert tally.mean_compound.quantize(Decimal("0.0001")) == Decimal("0.1333")
    assert tally.weighted_compound == Decimal("0.25")
    assert (tally.bullish, tally.neutral, tally.bearish) == (1, 1, 1)


@pytest.mark.parametrize(
    ("compound", "label"),
    [("0.05", "BULLISH"), ("0.0499", "NEUTRAL"), ("-0.0499", "NEUTRAL"), ("-0.05", "BEARISH"), ("1", "BULLISH")],
)
def test_labels_at_vaders_thresholds(compound, label):
    assert rules.label_of(Decimal(compound)) == label


@pytest.mark.parametrize(
    ("text", "symbols"),
    [
        ("$AAPL breaking out", ["AAPL"]),
        ("buying $BRK.B and $BF.A", ["BRK.B", "BF.A"]),
        ("$AAPL, $MSFT; ($NVDA) $TSLA! $AMD?", ["AAPL", "MSFT", "NVDA", "TSLA", "AMD"]),
        ("$AAPL's earnings and $aapl again, $AAPL.", ["AAPL"]),
        ("won $100 and $5k, $1.5M in $AAPL", ["AAPL"]),
        ("AAPL without a dollar is not a symbol", []),
        ("US$MSFT and a$TSLA glued to a word", []),
        ("$TSLA200p is an option shorthand, not a symbol", []),
        ("three at once: $AAPL $MSFT $NVDA", ["AAPL", "MSFT", "NVDA"]),
        ("$TOOLONGX is more than six letters", []),
        ("", []),
    ],
)
def test_cashtags(text, symbols):
    assert rules.cashtags(text) == symbols


def test_engagement_weights():
    assert rules.tweet_weight(likes=0, retweets=0, replies=0) == Decimal(1)
    assert rules.tweet_weight(likes=5, retweets=3, replies=1) == Decimal(2)  # 1 + log10(10)
    assert rules.reddit_weight(score=-50, num_comments=9) == Decimal(2)  # a negative score counts as 0
    assert rules.reddit_weight(score=90, num_comments=9) == Decimal(3)  # 1 + log10(100)


def test_vader_scores_and_the_finance_lexicon_is_versioned():
    plain = rules.score_text("loading calls, this is going to the moon", finance=False)
    finance = rules.score_text("loading calls, this is going to the moon", finance=True)
    assert finance.compound > plain.compound
    assert finance.label == "BULLISH"
    assert rules.lexicon_version(finance=True) != rules.lexicon_version(finance=False)
    assert rules.lexicon_version(finance=True).endswith(rules.FINANCE_LEXICON_VERSION)


@dataclass
class M:
    id: int
    symbol: str
    text_hash: str
    at: datetime


def test_spam_rule_counts_the_same_text_within_the_window_once():
    window = timedelta(minutes=10)
    mentions = [
        M(1, "AAPL", "h", T0),
        M(2, "AAPL", "h", T0 + timedelta(minutes=3)),  # another author, same text: not counted
        M(3, "AAPL", "h", T0 + timedelta(minutes=10)),  # still within 10 minutes of the first
        M(4, "AAPL", "h", T0 + timedelta(minutes=11)),  # after the window: counts again
        M(5, "MSFT", "h", T0 + timedelta(minutes=1)),  # the same text about another symbol counts for it
        M(6, "AAPL", "other", T0 + timedelta(minutes=1)),  # another text counts
    ]
    assert [m.id for m in rules.counted_mentions(mentions, window=window)] == [1, 5, 6, 4]


def test_text_hash_ignores_case_links_and_spacing():
    assert rules.text_hash("$AAPL  to the MOON https://t.co/x") == rules.text_hash("$aapl to the moon")
    assert rules.text_hash("$AAPL up") != rules.text_hash("$AAPL down")


def test_mention_spike():
    assert rules.mention_spike(5, [1, 1, 1, 1]) == Decimal(4)  # flat week: spread taken as 1
    assert rules.mention_spike(3, [1, 3, 1, 3]) == Decimal(1)  # mean 2, deviation 1
    assert rules.mention_spike(3, []) is None
    assert rules.mention_spike_from_sums(3, count=4, total=8, total_squares=20) == Decimal(1)


# --- options flow -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("price", "side"), [("4.35", "BOUGHT"), ("4.40", "BOUGHT"), ("4.20", "SOLD"), ("4.10", "SOLD"), ("4.30", "UNKNOWN")]
)
def test_print_side_from_bid_and_ask(price, side):
    assert rules.print_side(price=Decimal(price), bid=Decimal("4.20"), ask=Decimal("4.35")) == side


def test_print_direction_and_premium():
    assert rules.print_direction(side="BOUGHT", right="C") == "BULLISH"
    assert rules.print_direction(side="SOLD", right="P") == "BULLISH"
    assert rules.print_direction(side="BOUGHT", right="P") == "BEARISH"
    assert rules.print_direction(side="SOLD", right="C") == "BEARISH"
    assert rules.print_direction(side="UNKNOWN", right="C") == ""
    assert rules.print_premium(size=Decimal(2500), price=Decimal("4.35"), multiplier=Decimal(100)) == Decimal("1087500")


def test_unusual_print():
    min_premium = Decimal(100000)
    assert rules.print_unusual(premium=Decimal(100000), volume=None, open_interest=None, min_premium=min_premium)
    assert not rules.print_unusual(
        premium=Decimal("99999.99"), volume=Decimal(10), open_interest=Decimal(10), min_premium=min_premium
    )
    assert rules.print_unusual(
        premium=Decimal(1), volume=Decimal(11), open_interest=Decimal(10), min_premium=min_premium
    )


@dataclass
class P:
    print_id: str
    time: datetime
    kind: str = "SWEEP"
    direction: str = "BULLISH"
    premium: Decimal = Decimal(1000)
    expiry: date = date(2026, 12, 18)
    strike: Decimal = Decimal(150)
    right: str = "C"
    volume: Decimal | None = None
    open_interest: Decimal | None = None


def test_repeated_sweeps_at_the_threshold():
    prints = [P("a", T0), P("b", T0 + timedelta(minutes=10)), P("c", T0 + timedelta(minutes=30))]
    found = rules.repeated_sweeps(prints)
    assert [(d.kind, d.direction, [p.print_id for p in d.prints]) for d in found] == [
        ("REPEATED_SWEEPS", "BULLISH", ["a", "b", "c"])
    ]


def test_repeated_sweeps_just_below_the_threshold():
    two = [P("a", T0), P("b", T0 + timedelta(minutes=10))]
    too_slow = [P("a", T0), P("b", T0 + timedelta(minutes=10)), P("c", T0 + timedelta(minutes=30, seconds=1))]
    mixed = [P("a", T0), P("b", T0 + timedelta(minutes=1)), P("c", T0 + timedelta(minutes=2), direction="BEARISH")]
    not_sweeps = [P("a", T0), P("b", T0 + timedelta(minutes=1)), P("c", T0 + timedelta(minutes=2), kind="BLOCK")]
    for prints in (two, too_slow, mixed, not_sweeps):
        assert rules.repeated_sweeps(prints) == []


def _session(bullish: str, bearish: str, count: int = 5) -> list[P]:
    prints = [
        P("bull", T0, kind="", premium=Decimal(bullish)),
        P("bear", T0, kind="", direction="BEARISH", premium=Decimal(bearish)),
    ]
    prints += [P(f"u{i}", T0, kind="", direction="", premium=Decimal(10)) for i in range(count - 2)]
    return prints


def test_premium_skew_at_and_just_below_its_thresholds():
    assert rules.premium_skew(_session("3000", "1000")).direction == "BULLISH"
    assert rules.premium_skew(_session("2999.99", "1000")) is None
    assert rules.premium_skew(_session("1000", "3000")).direction == "BEARISH"
    assert rules.premium_skew(_session("1000", "2999.99")) is None
    assert rules.premium_skew(_session("3000", "1000", count=4)) is None  # fewer than 5 prints
    assert rules.premium_skew(_session("1000", "0")).direction == "BULLISH"  # one side only


def test_volume_over_open_interest_at_and_just_below_five_times():
    at = rules.volume_over_open_interest([P("a", T0, volume=Decimal(500), open_interest=Decimal(100))])
    assert [(d.kind, d.key, d.value) for d in at] == [("VOLUME_OVER_OI", "2026-12-18 150C", Decimal(5))]
    assert rules.volume_over_open_interest([P("a", T0, volume=Decimal(499), open_interest=Decimal(100))]) == []
    assert rules.volume_over_open_interest([P("a", T0, volume=Decimal(499), open_interest=Decimal(0))]) == []


# --- confluence ---------------------------------------------------------------------------------
def test_confluence_is_the_weighted_mean_of_the_components_present():
    weights = {"sentiment": Decimal(1), "options_flow": Decimal(1), "momentum": Decimal(1)}
    score, missing = rules.confluence(
        {"sentiment": Decimal("0.5"), "options_flow": Decimal("-0.1"), "momentum": None}, weights
    )
    assert score == Decimal("20.00")
    assert missing == ["momentum"]
    assert rules.confluence({"sentiment": None, "options_flow": None, "momentum": None}, weights) == (
        None,
        ["sentiment", "options_flow", "momentum"],
    )
    weights["sentiment"] = Decimal(3)
    score, _ = rules.confluence({"sentiment": Decimal("1"), "options_flow": Decimal("-1"), "momentum": None}, weights)
    assert score == Decimal("50.00")


def test_momentum_from_daily_bars():
    closes = [Decimal(100)] * 19 + [Decimal(110)]
    highs = [c + 1 for c in closes]
    lows = [c - 1 for c in closes]
    value = rules.momentum(closes, highs, lows)
    # mean of 20 closes 100.5; ATR over 14 bars: 13 of 2 and the last true range 111 - 100 = 11
    expected = math.tanh(9.5 / (37 / 14))
    assert abs(float(value) - expected) < 1e-9
    assert rules.momentum(closes[1:], highs[1:], lows[1:]) is None  # fewer than 20 bars
