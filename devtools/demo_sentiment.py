"""The demo's sentiment feed: a few days of tweets, Reddit posts and options flow for the demo's
stocks, each symbol's mood drifting over time, so the Sentiment page has something to show.

Deterministic for a seed and a ``now``. Written to SENTIMENT_FEED_FILE by ``demo_setup``.
"""

import json
import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from devtools.demo import STOCKS

NEW_YORK = ZoneInfo("America/New_York")
BULLISH = [
    "${s} breaking out, loading calls 🚀",
    "Great quarter for ${s}, love the guidance",
    "${s} to the moon, strong buy here",
    "Adding more ${s}, this dip is a gift",
    "${s} earnings beat, impressive margins",
]
BEARISH = [
    "${s} looks terrible, buying puts",
    "Selling my ${s}, awful guidance and weak demand",
    "${s} bagholders going to be hurt, dump incoming",
    "${s} is overvalued garbage, short it",
    "Disappointing numbers from ${s}, I'm out",
]
NEUTRAL = [
    "${s} trading sideways today",
    "Watching ${s} into the close",
    "What do you all think about ${s}?",
    "${s} volume about average",
]
SUBREDDITS = ("wallstreetbets", "stocks", "options")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def demo_feed_build(*, now: datetime, days: int = 4, seed: int = 7) -> dict:
    rng = random.Random(seed)
    start = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    tweets, posts, flow = [], [], []
    mood = {symbol: rng.uniform(-0.5, 0.5) for symbol in STOCKS}
    price = {symbol: Decimal(values[1]) for symbol, values in STOCKS.items()}
    hour = start
    serial = 0
    while hour < now:
        for symbol in STOCKS:
            mood[symbol] = max(-0.9, min(0.9, mood[symbol] + rng.gauss(0, 0.12)))
            local = hour.astimezone(NEW_YORK)
            busy = 9 <= local.hour < 17 and local.weekday() < 5
            for _ in range(rng.randint(1, 6 if busy else 2)):
                serial += 1
                roll = rng.random()
                pool = (
                    BULLISH
                    if roll < 0.5 + mood[symbol] / 2 - 0.15
                    else NEUTRAL
                    if roll < 0.5 + mood[symbol] / 2 + 0.15
                    else BEARISH
                )
                text = rng.choice(pool).replace("{s}", symbol)
                at = hour + timedelta(seconds=rng.randint(0, 3599))
                if at >= now:
                    continue
                if rng.random() < 0.7:
                    tweets.append(
                        {
                            "id": f"demo-tw-{serial}",
                            "author": f"trader{rng.randint(1, 400)}",
                            "author_followers": rng.randint(10, 50000),
                            "text": text,
                            "created_at": _iso(at),
                            "likes": rng.randint(0, 300),
                            "retweets": rng.randint(0, 40),
                            "replies": rng.randint(0, 30),
                            "lang": "en",
                        }
                    )
                else:
                    posts.append(
                        {
                            "id": f"demo-t3-{serial}",
                            "subreddit": rng.choice(SUBREDDITS),
                            "author": f"redditor{rng.randint(1, 300)}",
                            "title": text,
                            "body": rng.choice(["", "Thoughts?", "DD inside.", "Not financial advice."]),
                            "created_at": _iso(at),
                            "score": rng.randint(-5, 900),
                            "num_comments": rng.randint(0, 250),
                            "upvote_ratio": f"{rng.uniform(0.5, 0.99):.2f}",
                        }
                    )
            if busy and local.minute == 0 and rng.random() < 0.6:
                flow += _prints(
                    rng, symbol=symbol, hour=hour, now=now, mood=mood[symbol], spot=price[symbol], start=serial
                )
                serial += 10
        hour += timedelta(hours=1)
    # A copy-paste campaign the spam rule counts once.
    campaign = hour - timedelta(hours=3)
    for i in range(6):
        tweets.append(
            {
                "id": f"demo-spam-{i}",
                "author": f"promo_bot_{i}",
                "text": "$AMD is about to explode!!! join our channel https://t.co/demo",
                "created_at": _iso(campaign + timedelta(minutes=i)),
                "likes": 0,
                "retweets": 0,
                "replies": 0,
            }
        )
    return {"tweets": tweets, "reddit_posts": posts, "options_flow": flow}


def _prints(
    rng: random.Random, *, symbol: str, hour: datetime, now: datetime, mood: float, spot: Decimal, start: int
) -> list[dict]:
    rows = []
    expiry = (hour + timedelta(days=30)).date()
    strike = (spot / 5).quantize(Decimal(1)) * 5
    for i in range(rng.randint(2, 7)):
        at = hour + timedelta(minutes=rng.randint(0, 59))
        if at >= now:
            continue
        right = "C" if rng.random() < 0.5 + mood / 2 else "P"
        bid = Decimal(rng.randint(150, 900)) / 100
        ask = bid + Decimal("0.10")
        bought = rng.random() < 0.65
        open_interest = rng.randint(200, 5000)
        rows.append(
            {
                "id": f"demo-of-{symbol}-{start + i}",
                "time": _iso(at),
                "underlying": symbol,
                "expiry": expiry.isoformat(),
                "strike": str(strike),
                "right": right,
                "size": rng.choice([10, 50, 100, 250, 500, 1500]),
                "price": str(ask if bought else bid),
                "bid": str(bid),
                "ask": str(ask),
                "underlying_price": str(spot),
                "open_interest": open_interest,
                "volume": open_interest * rng.choice([0, 0, 1, 2, 6]) + rng.randint(0, 300),
                "exchanges": rng.randint(1, 8),
                "kind": rng.choice(["", "", "SWEEP", "SWEEP", "BLOCK", "SPLIT"]),
            }
        )
    return rows


def demo_feed_write(*, path: Path, feed: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(feed, indent=1), encoding="utf-8")
