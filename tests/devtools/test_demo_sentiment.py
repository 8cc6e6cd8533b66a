from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from devtools.demo_sentiment import demo_feed_build
from sentiment.models import AggregatedSentiment, ConfluenceScore, SymbolSentiment, Tweet
from sentiment.sources.file import parse_feed

NOW = datetime(2026, 11, 20, 18, 30, tzinfo=UTC)


def test_the_demo_feed_is_valid_deterministic_and_changes_over_time():
    feed = demo_feed_build(now=NOW, seed=3)
    assert feed == demo_feed_build(now=NOW, seed=3)
    batch = parse_feed(feed)
    assert batch.warnings == ()
    assert len(batch.posts) > 500 and len(batch.prints) > 20
    assert all(p.created_at < NOW for p in batch.posts)
    assert {p.underlying for p in batch.prints} >= {"AAPL", "NVDA"}


@pytest.mark.django_db
def test_demo_setup_ingests_the_feed(settings):
    settings.DEBUG = True
    call_command("demo_setup")
    assert Tweet.objects.exists()
    assert SymbolSentiment.objects.values("symbol").distinct().count() >= 5
    assert AggregatedSentiment.objects.exists()
    assert ConfluenceScore.objects.exists()
