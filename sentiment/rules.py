"""Pure rules of sentiment (domain-rules.md, "Sentiment and options flow"): no database, no I/O.

Cashtags, VADER scoring and labels, engagement weights, the spam rule, windowed aggregates, the
options print's side, premium and direction, the three options patterns and the confluence score.
"""

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache

# --- cashtags -----------------------------------------------------------------------------------
# A cashtag is "$" then 1-6 letters, optionally a class suffix ("$BRK.B", "$BF.A"), not glued to a
# word or number before it and not followed by a letter, digit or underscore. "$100", "$5k" and
# "$1.5M" start with a digit: amounts, not symbols. Trailing punctuation ("$AAPL," "$AAPL's") ends it.
CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?=[^\w]|$)")


def cashtags(text: str) -> list[str]:
    """The symbols a text mentions as cashtags, upper-cased, each once, in order of first mention."""
    found: list[str] = []
    for match in CASHTAG.finditer(text or ""):
        symbol = match.group(1).upper()
        if symbol not in found:
            found.append(symbol)
    return found


# --- spam ---------------------------------------------------------------------------------------
_LINK = re.compile(r"https?://\S+")
_SPACE = re.compile(r"\s+")


def text_hash(text: str) -> str:
    """What the spam rule compares: the text without links, case or runs of spaces."""
    normal = _SPACE.sub(" ", _LINK.sub("", (text or "").lower())).strip()
    return hashlib.sha1(normal.encode(), usedforsecurity=False).hexdigest()


def counted_mentions(mentions: Iterable, *, window: timedelta) -> list:
    """The mentions that count under the spam rule.

    Mentions of one symbol with the same normalised text (``text_hash``) within ``window`` of the
    first of them count once, whoever posted them: copy-paste campaigns and bots that repost one
    text from many accounts count as a single mention. The earliest (then lowest id) is the one
    kept; the same text after the window has passed counts again. ``mentions`` need ``symbol``,
    ``text_hash``, ``at`` and ``id``.
    """
    kept = []
    first_seen: dict[tuple[str, str], datetime] = {}
    for mention in sorted(mentions, key=lambda m: (m.at, m.id)):
        key = (mention.symbol, mention.text_hash)
        start = first_seen.get(key)
        if start is not None and mention.at - start <= window:
            continue
        first_seen[key] = mention.at
        kept.append(mention)
    return kept


# --- scoring ------------------------------------------------------------------------------------
BULLISH_AT = Decimal("0.05")
BEARISH_AT = Decimal("-0.05")

# Finance slang VADER misreads or does not know (valences on VADER's -4..4 scale). Applied when
# SENTIMENT_FINANCE_LEXICON is on; its version is part of every score's lexicon_version, so changing
# this table means bumping FINANCE_LEXICON_VERSION and running ``manage.py rescore_sentiment``.
FINANCE_LEXICON_VERSION = "finance-1"
FINANCE_LEXICON = {
    "calls": 1.5,
    "call": 0.5,
    "puts": -1.5,
    "put": -0.5,
    "moon": 2.0,
    "mooning": 2.5,
    "tendies": 2.0,
    "bagholder": -2.0,
    "bagholders": -2.0,
    "bagholding": -2.0,
    "squeeze": 1.5,
    "bullish": 2.0,
    "bearish": -2.0,
    "breakout": 1.5,
    "dump": -1.5,
    "dumping": -1.5,
}


def lexicon_version(*, finance: bool) -> str:
    from importlib.metadata import version

    base = f"vader-{version('vaderSentiment')}"
    return f"{base}+{FINANCE_LEXICON_VERSION}" if finance else base


@cache
def _analyzer(finance: bool):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    if finance:
        analyzer.lexicon.update(FINANCE_LEXICON)
    return analyzer


_RATIO = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class TextScore:
    compound: Decimal
    positive: Decimal
    neutral: Decimal
    negative: Decimal
    label: str


def label_of(compound: Decimal) -> str:
    """VADER's published thresholds: bullish at >= 0.05, bearish at <= -0.05, neutral between."""
    if compound >= BULLISH_AT:
        return "BULLISH"
    if compound <= BEARISH_AT:
        return "BEARISH"
    return "NEUTRAL"


def score_text(text: str, *, finance: bool) -> TextScore:
    raw = _analyzer(finance).polarity_scores(text or "")

    def dec(value: float) -> Decimal:
        return Decimal(repr(value)).quantize(_RATIO, rounding=ROUND_HALF_EVEN)

    compound = dec(raw["compound"])
    return TextScore(
        compound=compound,
        positive=dec(raw["pos"]),
        neutral=dec(raw["neu"]),
        negative=dec(raw["neg"]),
        label=label_of(compound),
    )


def _log_weight(engagement: int) -> Decimal:
    # float log10 rounded to 4 places: Decimal.log10 is exact to 28 digits and 100x slower, for a
    # weight that is stored to 4 places anyway.
    return Decimal(repr(round(1 + math.log10(1 + max(engagement, 0)), 4))).quantize(_RATIO)


def tweet_weight(*, likes: int, retweets: int, replies: int) -> Decimal:
    """1 + log10(1 + likes + retweets + replies)."""
    return _log_weight(likes + retweets + replies)


def reddit_weight(*, score: int, num_comments: int) -> Decimal:
    """1 + log10(1 + max(score, 0) + comments): a downvoted post weighs as one nobody voted on."""
    return _log_weight(max(score, 0) + num_comments)


# --- aggregates ---------------------------------------------------------------------------------
@dataclass
class Tally:
    """Counts and sums of scored mentions; means come out exact from the sums."""

    mentions: int = 0
    bullish: int = 0
    neutral: int = 0
    bearish: int = 0
    compound_sum: Decimal = Decimal(0)
    weighted_sum: Decimal = Decimal(0)
    weight_sum: Decimal = Decimal(0)

    def add(self, *, compound: Decimal, weight: Decimal, label: str) -> None:
        self.mentions += 1
        if label == "BULLISH":
            self.bullish += 1
        elif label == "BEARISH":
            self.bearish += 1
        else:
            self.neutral += 1
        self.compound_sum += compound
        self.weighted_sum += compound * weight
        self.weight_sum += weight

    def merge(self, other: "Tally") -> None:
        self.mentions += other.mentions
        self.bullish += other.bullish
        self.neutral += other.neutral
        self.bearish += other.bearish
        self.compound_sum += other.compound_sum
        self.weighted_sum += other.weighted_sum
        self.weight_sum += other.weight_sum

    @property
    def mean_compound(self) -> Decimal | None:
        return (self.compound_sum / self.mentions).quantize(_RATIO10) if self.mentions else None

    @property
    def weighted_compound(self) -> Decimal | None:
        return (self.weighted_sum / self.weight_sum).quantize(_RATIO10) if self.weight_sum else None


_RATIO10 = Decimal(1).scaleb(-10)


def mention_spike(last_hour: int, trailing: Sequence[int]) -> Decimal | None:
    """z-score of the last hour's mentions against the trailing hours (population standard deviation).

    None without trailing hours; 0 when they are all equal and the last hour matches them; when they
    are all equal and the last hour differs the spread is taken as 1 mention, so a first burst after
    a silent week still shows as a (large) spike instead of dividing by zero.
    """
    if not trailing:
        return None
    mean = sum(trailing) / len(trailing)
    variance = sum((n - mean) ** 2 for n in trailing) / len(trailing)
    spread = math.sqrt(variance) or 1.0
    return Decimal(repr(round((last_hour - mean) / spread, 4)))


def mention_spike_from_sums(last_hour: int, *, count: int, total: int, total_squares: int) -> Decimal | None:
    """``mention_spike`` from the trailing hours' count, sum and sum of squares (no list needed)."""
    if count <= 0:
        return None
    mean = total / count
    variance = max(0.0, total_squares / count - mean * mean)
    spread = math.sqrt(variance) or 1.0
    return Decimal(repr(round((last_hour - mean) / spread, 4)))


# --- options flow -------------------------------------------------------------------------------
def print_side(*, price: Decimal, bid: Decimal | None, ask: Decimal | None) -> str:
    """At or above the ask: bought; at or below the bid: sold; between (or no quote): unknown."""
    if ask is not None and price >= ask:
        return "BOUGHT"
    if bid is not None and price <= bid:
        return "SOLD"
    return "UNKNOWN"


def print_direction(*, side: str, right: str) -> str:
    """Calls bought and puts sold are bullish; puts bought and calls sold bearish; unknown side: none."""
    if side == "UNKNOWN":
        return ""
    return "BULLISH" if (side == "BOUGHT") == (right == "C") else "BEARISH"


def print_premium(*, size: Decimal, price: Decimal, multiplier: Decimal) -> Decimal:
    return size * price * multiplier


def print_unusual(
    *, premium: Decimal, volume: Decimal | None, open_interest: Decimal | None, min_premium: Decimal
) -> bool:
    """Day volume above open interest, or a premium of at least ``min_premium``."""
    if volume is not None and open_interest is not None and volume > open_interest:
        return True
    return premium >= min_premium


SWEEPS_MIN = 3
SWEEPS_WINDOW = timedelta(minutes=30)
SKEW_RATIO = Decimal(3)
SKEW_MIN_PRINTS = 5
VOLUME_OI_MULTIPLE = Decimal(5)


@dataclass
class Detection:
    kind: str
    key: str
    direction: str
    prints: list = field(default_factory=list)
    value: Decimal | None = None
    detail: dict = field(default_factory=dict)


def repeated_sweeps(prints: Sequence) -> list[Detection]:
    """3 or more sweeps on one underlying and direction within 30 minutes of the first of them.

    Scanned in time order: a group starts at a sweep and takes every sweep of its direction within
    the window; a group of 3 or more is one detection and the scan goes on after its last sweep, so a
    sweep belongs to one detection at most. ``prints`` are one underlying's, with ``kind``, ``time``,
    ``direction`` and ``print_id``.
    """
    found = []
    for direction in ("BULLISH", "BEARISH"):
        sweeps = sorted(
            (p for p in prints if p.kind == "SWEEP" and p.direction == direction), key=lambda p: (p.time, p.print_id)
        )
        i = 0
        while i < len(sweeps):
            group = [p for p in sweeps[i:] if p.time - sweeps[i].time <= SWEEPS_WINDOW]
            if len(group) >= SWEEPS_MIN:
                found.append(
                    Detection(
                        kind="REPEATED_SWEEPS",
                        key=str(group[0].print_id),
                        direction=direction,
                        prints=group,
                        value=Decimal(len(group)),
                        detail={"sweeps": len(group), "window_minutes": int(SWEEPS_WINDOW.total_seconds() // 60)},
                    )
                )
                i += len(group)
            else:
                i += 1
    return found


def premium_skew(prints: Sequence) -> Detection | None:
    """Bullish/bearish premium >= 3 (or <= 1/3) over a session of at least 5 prints.

    The 5 prints are all the session's prints of the underlying; the premiums are those of the prints
    whose side is known. Only one side having premium is an unbounded ratio: a skew toward it.
    """
    if len(prints) < SKEW_MIN_PRINTS:
        return None
    bullish = sum((p.premium for p in prints if p.direction == "BULLISH"), Decimal(0))
    bearish = sum((p.premium for p in prints if p.direction == "BEARISH"), Decimal(0))
    if bullish == 0 and bearish == 0:
        return None
    ratio = None if bearish == 0 else bullish / bearish
    if ratio is None or ratio >= SKEW_RATIO:
        direction = "BULLISH"
    elif ratio <= 1 / SKEW_RATIO:
        direction = "BEARISH"
    else:
        return None
    return Detection(
        kind="PREMIUM_SKEW",
        key="session",
        direction=direction,
        prints=[p for p in prints if p.direction],
        value=None if ratio is None else ratio.quantize(_RATIO10),
        detail={"bullish_premium": str(bullish), "bearish_premium": str(bearish), "prints": len(prints)},
    )


def volume_over_open_interest(prints: Sequence) -> list[Detection]:
    """A contract whose session volume is >= 5x its open interest (the latest print's figures)."""
    by_contract: dict[tuple, list] = {}
    for p in prints:
        by_contract.setdefault((p.expiry, p.strike, p.right), []).append(p)
    found = []
    for (expiry, strike, right), contract_prints in by_contract.items():
        latest = max(contract_prints, key=lambda p: (p.time, p.print_id))
        volume = max((p.volume for p in contract_prints if p.volume is not None), default=None)
        oi = latest.open_interest
        if volume is None or not oi or oi <= 0:
            continue
        multiple = volume / oi
        if multiple >= VOLUME_OI_MULTIPLE:
            directions = {p.direction for p in contract_prints if p.direction}
            found.append(
                Detection(
                    kind="VOLUME_OVER_OI",
                    key=f"{expiry:%Y-%m-%d} {strike.normalize():f}{right}",
                    direction=directions.pop() if len(directions) == 1 else "",
                    prints=contract_prints,
                    value=multiple.quantize(_RATIO10),
                    detail={"volume": str(volume), "open_interest": str(oi)},
                )
            )
    return found


# --- confluence ---------------------------------------------------------------------------------
def momentum(closes: Sequence[Decimal], highs: Sequence[Decimal], lows: Sequence[Decimal]) -> Decimal | None:
    """tanh of the last close's distance from its 20-day mean in 14-day ATR units (daily bars, oldest
    first). None with fewer than 20 bars or a zero ATR."""
    if len(closes) < 20 or len(highs) != len(closes) or len(lows) != len(closes):
        return None
    mean = sum(closes[-20:], Decimal(0)) / 20
    ranges = []
    for i in range(len(closes) - 14, len(closes)):
        previous = closes[i - 1] if i > 0 else None
        high, low = highs[i], lows[i]
        tr = high - low
        if previous is not None:
            tr = max(tr, abs(high - previous), abs(low - previous))
        ranges.append(tr)
    atr = sum(ranges, Decimal(0)) / len(ranges)
    if atr <= 0:
        return None
    return Decimal(repr(math.tanh(float((closes[-1] - mean) / atr)))).quantize(_RATIO10)


def confluence(components: dict[str, Decimal | None], weights: dict[str, Decimal]) -> tuple[Decimal | None, list[str]]:
    """The weighted mean of the components that have data, x100, rounded to 0.01, and the missing ones.

    None when every component is missing (nothing to say). A component with weight 0 is ignored.
    """
    missing = [name for name, value in components.items() if value is None]
    present = {name: value for name, value in components.items() if value is not None and weights.get(name, 0) > 0}
    total = sum((weights[name] for name in present), Decimal(0))
    if not present or total <= 0:
        return None, missing
    mean = sum((weights[name] * value for name, value in present.items()), Decimal(0)) / total
    score = max(Decimal(-100), min(Decimal(100), mean * 100)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return score, missing
