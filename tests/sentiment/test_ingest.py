"""Posts from the feed file: idempotent ingest, edits rescored, deletions honoured, bad rows skipped."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from core.models import SkipReason, SyncKind, SyncRun, SyncStatus
from sentiment.models import (
    AggregatedSentiment,
    Mention,
    RedditPost,
    RedditSentiment,
    SymbolSentiment,
    Tweet,
    TweetSentiment,
)
from sentiment.services.aggregation import sentiment_aggregate
from sentiment.services.runs import sentiment_ingest_run
from tests.factories import MentionFactory, RedditRowFactory, TweetRowFactory, sentiment_feed
from tests.holders import HOLDER_LOCK_QUERIES

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def test_ingest_stores_scores_and_mentions_once_per_symbol(feed):
    feed.write(
        sentiment_feed(
            tweets=[TweetRowFactory(id="1", text="$AAPL $MSFT $NVDA all breaking out, great day", likes=9)],
            reddit_posts=[RedditRowFactory(id="t3_a", title="TSLA puts", body="$TSLA deliveries miss, terrible")],
        )
    )
    run = sentiment_ingest_run(source="file")
    assert run.status == SyncStatus.SUCCESS, run.message
    assert (run.kind, run.created) == (SyncKind.SENTIMENT, 2)
    tweet = Tweet.objects.get()
    assert tweet.symbols == ["AAPL", "MSFT", "NVDA"]
    assert tweet.sentiment.label == "BULLISH"
    assert tweet.sentiment.weight == Decimal(2)
    assert tweet.sentiment.lexicon_version.startswith("vader-")
    assert sorted(Mention.objects.values_list("symbol", flat=True)) == ["AAPL", "MSFT", "NVDA", "TSLA"]
    post = RedditPost.objects.get()
    assert post.sentiment.label == "BEARISH"  # title and body are scored together
    # the aggregates of the hours touched were computed at once: one mention for each symbol
    per_symbol = dict(SymbolSentiment.objects.values_list("symbol", "mentions"))
    assert per_symbol == {"AAPL": 1, "MSFT": 1, "NVDA": 1, "TSLA": 1}


@pytest.mark.parametrize("size", [5, 50])
def test_ingesting_the_same_file_again_changes_nothing(feed, django_assert_num_queries, size):
    feed.write(
        sentiment_feed(tweets=TweetRowFactory.create_batch(size), reddit_posts=RedditRowFactory.create_batch(size))
    )
    sentiment_ingest_run(source="file")
    before = list(TweetSentiment.objects.values_list("pk", "scored_at"))
    # the lock (3), the run (3), the tracked symbols (2), a read of the stored posts per platform (2, in
    # a savepoint), the run's end, the lock's release: no write of a post, whatever the size. On
    # PostgreSQL the task lock and the run each take and release an advisory lock.
    with django_assert_num_queries(15 + 2 * HOLDER_LOCK_QUERIES):
        run = sentiment_ingest_run(source="file")
    assert (run.created, run.updated, run.unchanged) == (0, 0, 2 * size)
    assert list(TweetSentiment.objects.values_list("pk", "scored_at")) == before
    assert Mention.objects.count() == 2 * size


def test_an_edited_post_is_updated_and_rescored(feed):
    row = TweetRowFactory(id="7", text="$AAPL is wonderful, love it", likes=1)
    feed.write(sentiment_feed(tweets=[row]))
    sentiment_ingest_run(source="file")
    assert Tweet.objects.get().sentiment.label == "BULLISH"
    row.update(text="$MSFT is awful, hate it", likes=99)
    feed.write(sentiment_feed(tweets=[row]))
    run = sentiment_ingest_run(source="file")
    assert (run.created, run.updated) == (0, 1)
    tweet = Tweet.objects.get()
    assert (tweet.text, tweet.likes, tweet.symbols) == ("$MSFT is awful, hate it", 99, ["MSFT"])
    assert tweet.sentiment.label == "BEARISH"
    assert TweetSentiment.objects.count() == 1
    assert list(Mention.objects.values_list("symbol", flat=True)) == ["MSFT"]
    assert set(SymbolSentiment.objects.values_list("symbol", flat=True)) == {"MSFT"}  # AAPL's hour recomputed


def test_a_deleted_post_loses_its_scores_mentions_and_aggregates(feed):
    keep = TweetRowFactory(id="1", text="$AAPL good")
    gone = RedditRowFactory(id="t3_gone", title="$AAPL $NVDA great")
    feed.write(sentiment_feed(tweets=[keep], reddit_posts=[gone]))
    sentiment_ingest_run(source="file")
    assert SymbolSentiment.objects.filter(symbol="NVDA").exists()
    feed.write(sentiment_feed(tweets=[keep], reddit_posts=[{"id": "t3_gone", "deleted": True}]))
    run = sentiment_ingest_run(source="file")
    assert run.closed == 1, run.message
    assert not RedditPost.objects.exists()
    assert not RedditSentiment.objects.exists()
    assert list(Mention.objects.values_list("symbol", flat=True)) == ["AAPL"]
    assert not SymbolSentiment.objects.filter(symbol="NVDA").exists()
    assert not AggregatedSentiment.objects.filter(symbol="NVDA", mentions__gt=0).exists()
    assert SymbolSentiment.objects.get(symbol="AAPL").mentions == 1


def test_a_file_with_malformed_rows_keeps_the_good_ones_and_names_the_bad(feed):
    feed.write(
        sentiment_feed(
            tweets=[
                TweetRowFactory(id="ok", text="$AAPL fine"),
                TweetRowFactory(id="no-time", created_at="yesterday"),
                TweetRowFactory(id="naive", created_at="2026-11-20T14:35:02"),
                TweetRowFactory(id="neg", likes=-3),
                "not an object",
                {"author": "no id or text"},
            ],
            reddit_posts=[RedditRowFactory(id="t3_float", upvote_ratio=0.5)],
        )
    )
    run = sentiment_ingest_run(source="file")
    assert run.status == SyncStatus.SUCCESS
    assert list(Tweet.objects.values_list("post_id", flat=True)) == ["ok"]
    assert run.warnings == [
        "tweets[1] (no-time): created_at: not an ISO 8601 time: 'yesterday'; row skipped",
        "tweets[2] (naive): created_at: time has no zone: '2026-11-20T14:35:02'; row skipped",
        "tweets[3] (neg): likes: must not be negative, got -3; row skipped",
        "tweets[4]: expected an object, got str; row skipped",
        "tweets[5]: missing id; row skipped",
        "reddit_posts[0] (t3_float): upvote_ratio: expected a decimal string, got float 0.5; row skipped",
    ]


@pytest.mark.parametrize("content", [None, "{not json"])
def test_a_missing_or_unreadable_file_skips_the_run_naming_the_file(feed, content):
    if content is not None:
        feed.write_raw(content)
    run = sentiment_ingest_run(source="file")
    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.SOURCE_UNAVAILABLE)
    assert str(feed.path) in run.message


def test_a_source_without_credentials_is_skipped_with_a_clear_message(settings):
    settings.X_BEARER_TOKEN = ""
    settings.REDDIT_CLIENT_ID = ""
    x = sentiment_ingest_run(source="x")
    reddit = sentiment_ingest_run(source="reddit")
    assert (x.status, x.skip_reason) == (SyncStatus.SKIPPED, SkipReason.DISABLED)
    assert "X_BEARER_TOKEN is not set" in x.message
    assert "REDDIT_CLIENT_ID" in reddit.message


def test_the_spam_rule_counts_a_copied_text_once(feed):
    text = "$GME to the moon!!! https://t.co/abc"
    rows = [
        TweetRowFactory(id=str(i), text=text, author=f"bot{i}", created_at=f"2026-11-20T14:0{i}:00Z") for i in range(5)
    ]
    rows.append(TweetRowFactory(id="late", text=text, author="bot9", created_at="2026-11-20T14:20:00Z"))
    feed.write(sentiment_feed(tweets=rows))
    sentiment_ingest_run(source="file")
    assert Mention.objects.filter(symbol="GME").count() == 6  # all kept as posts
    assert SymbolSentiment.objects.get(symbol="GME").mentions == 2  # the first and the one after 10 minutes


def test_worked_example_through_the_hourly_and_window_aggregates():
    for compound, weight in (("0.6", 2), ("-0.2", 1), ("0.0", 1)):
        MentionFactory(symbol="AAPL", at=T0 + timedelta(minutes=5), compound=Decimal(compound), weight=Decimal(weight))
    sentiment_aggregate(since=T0 - timedelta(hours=1), until=T0 + timedelta(minutes=30))
    hourly = SymbolSentiment.objects.get(symbol="AAPL", hour=T0)
    assert (hourly.mentions, hourly.bullish, hourly.neutral, hourly.bearish) == (3, 1, 1, 1)
    assert hourly.mean_compound.quantize(Decimal("0.0001")) == Decimal("0.1333")
    assert hourly.weighted_compound == Decimal("0.25")
    window = AggregatedSentiment.objects.get(symbol="AAPL", window="1h", as_of=T0 + timedelta(hours=1))
    assert window.weighted_compound == Decimal("0.25")
    assert window.per_source["x"]["mentions"] == 3
    assert window.change is None  # nothing the hour before
    assert window.spike == Decimal(3)  # 3 mentions against a silent week
    day = AggregatedSentiment.objects.get(symbol="AAPL", window="24h", as_of=T0 + timedelta(hours=1))
    assert day.mentions == 3


def test_window_change_against_the_previous_window():
    MentionFactory(symbol="AAPL", at=T0 - timedelta(minutes=30), compound=Decimal("-0.5"))
    MentionFactory(symbol="AAPL", at=T0 + timedelta(minutes=30), compound=Decimal("0.5"))
    sentiment_aggregate(since=T0 - timedelta(hours=2), until=T0 + timedelta(minutes=40))
    window = AggregatedSentiment.objects.get(symbol="AAPL", window="1h", as_of=T0 + timedelta(hours=1))
    assert window.change == Decimal("1")


def test_rescore_command_rescores_posts_of_another_lexicon(feed, settings):
    feed.write(sentiment_feed(tweets=[TweetRowFactory(text="$AAPL loading calls")]))
    settings.SENTIMENT_FINANCE_LEXICON = False
    sentiment_ingest_run(source="file")
    plain = TweetSentiment.objects.get()
    settings.SENTIMENT_FINANCE_LEXICON = True
    call_command("rescore_sentiment")
    rescored = TweetSentiment.objects.get()
    assert rescored.lexicon_version != plain.lexicon_version
    assert rescored.compound > plain.compound
    assert Mention.objects.get().compound == rescored.compound


def test_ingest_command_exits_zero_on_skipped_and_prints_json(feed, capsys):
    call_command("ingest_sentiment", "--json")
    out = capsys.readouterr().out
    assert '"status": "SKIPPED"' in out
    assert SyncRun.objects.filter(kind=SyncKind.SENTIMENT).count() == 1
