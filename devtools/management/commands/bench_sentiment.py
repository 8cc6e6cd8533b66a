"""Measure sentiment: N posts ingested, scored and aggregated; the same posts again; the page's queries.

The posts are invented (source ``bench``, dated in 2001 so they share no hour with real data) and
deleted at the end with the aggregates of their hours. Times are split by where they go: VADER
scoring, the database writes, aggregation.
"""

import random
import time
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sentiment import rules
from sentiment.models import AggregatedSentiment, RedditPost, SymbolSentiment, Tweet
from sentiment.selectors import sentiment_page_get
from sentiment.services.aggregation import sentiment_aggregate
from sentiment.services.posts import posts_ingest
from sentiment.sources.base import SocialPost

SOURCE = "bench"
START = datetime(2001, 1, 1, tzinfo=UTC)
SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMD", "AMZN", "META", "SPY", "QQQ", "GME", "BRK.B", "PLTR"]
WORDS = ["great", "terrible", "breaking out", "loading calls", "buying puts", "sideways", "love it", "awful", "meh"]


def _posts(count: int, *, days: int, seed: int) -> list[SocialPost]:
    rng = random.Random(seed)
    span = days * 86400
    posts = []
    for i in range(count):
        symbols = rng.sample(SYMBOLS, rng.choice([1, 1, 1, 2, 3]))
        text = " ".join(f"${s}" for s in symbols) + " " + " ".join(rng.sample(WORDS, 2)) + f" #{i}"
        at = START + timedelta(seconds=rng.randint(0, span - 1))
        if i % 4 == 0:
            posts.append(
                SocialPost(platform="reddit", post_id=f"b{i}", author=f"r{i % 997}", created_at=at, title=text,
                           score=rng.randint(-5, 500), num_comments=rng.randint(0, 50), subreddit="bench")
            )  # fmt: skip
        else:
            posts.append(
                SocialPost(platform="x", post_id=f"b{i}", author=f"a{i % 1499}", created_at=at, text=text,
                           likes=rng.randint(0, 300), retweets=rng.randint(0, 30), replies=rng.randint(0, 20))
            )  # fmt: skip
    return posts


class Command(BaseCommand):
    help = "Benchmark sentiment ingest, scoring and aggregation (invented posts, removed afterwards)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--posts", type=int, default=100_000)
        parser.add_argument("--days", type=int, default=7, help="Spread the posts over this many days")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--keep", action="store_true", help="Keep the invented posts")

    def handle(self, *args, posts: int, days: int, seed: int, keep: bool, **options) -> None:
        out = self.stdout.write
        out(f"database: {connection.vendor}; {posts:,} posts over {days} days, {len(SYMBOLS)} symbols")
        self._clean(days)
        batch = _posts(posts, days=days, seed=seed)

        started = time.perf_counter()
        for post in batch:
            rules.score_text(post.scored_text, finance=True)
        scoring = time.perf_counter() - started
        out(f"VADER scoring alone: {scoring:.2f} s ({posts / scoring:,.0f} posts/s)")

        started = time.perf_counter()
        counts = posts_ingest(source=SOURCE, posts=batch)
        ingest = time.perf_counter() - started
        out(f"ingest (parse-free: store, score, mentions): {ingest:.2f} s; created {counts.created:,}")
        out(f"  of which scoring ~{scoring:.2f} s, database and the rest ~{ingest - scoring:.2f} s")

        started = time.perf_counter()
        agg = sentiment_aggregate(since=START, until=START + timedelta(days=days))
        aggregate = time.perf_counter() - started
        out(f"aggregation: {aggregate:.2f} s ({agg.hourly_rows:,} hourly rows, {agg.window_rows:,} window rows)")
        out(f"TOTAL ingest + scoring + aggregation: {ingest + aggregate:.2f} s")

        started = time.perf_counter()
        again = posts_ingest(source=SOURCE, posts=batch)
        repeat = time.perf_counter() - started
        out(f"ingest again (nothing changed): {repeat:.2f} s; unchanged {again.unchanged:,}")

        for label in ("page queries", "page queries again"):
            with CaptureQueriesContext(connection) as queries:
                sentiment_page_get(held=["AAPL"], symbol="AAPL")
            out(f"{label}: {len(queries)} (selector only; the page adds session and user)")
        if not keep:
            self._clean(days)

    def _clean(self, days: int) -> None:
        Tweet.objects.filter(source=SOURCE).delete()
        RedditPost.objects.filter(source=SOURCE).delete()
        end = START + timedelta(days=days + 30)
        SymbolSentiment.objects.filter(hour__gte=START, hour__lt=end).delete()
        AggregatedSentiment.objects.filter(as_of__gte=START, as_of__lt=end).delete()
