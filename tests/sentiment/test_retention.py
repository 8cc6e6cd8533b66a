"""Retention: posts older than SENTIMENT_POST_RETENTION go with their scores and mentions; aggregates stay."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from core.pruning import prune
from sentiment.models import Mention, SymbolSentiment, Tweet, TweetSentiment
from sentiment.retention import PRUNE_STEPS
from sentiment.services.aggregation import sentiment_aggregate
from sentiment.services.runs import sentiment_ingest_run
from tests.factories import TweetRowFactory, sentiment_feed

pytestmark = pytest.mark.django_db


def test_old_posts_are_pruned_and_their_aggregates_kept(feed, settings):
    settings.SENTIMENT_POST_RETENTION = 90
    now = timezone.now()
    old, recent = now - timedelta(days=91), now - timedelta(days=89)
    feed.write(
        sentiment_feed(
            tweets=[
                TweetRowFactory(id="old", text="$AAPL great", created_at=old.isoformat()),
                TweetRowFactory(id="new", text="$AAPL great", created_at=recent.isoformat(), author="other"),
            ]
        )
    )
    settings.SENTIMENT_POST_RETENTION = 0  # ingest and aggregate both while nothing is pruned yet
    sentiment_ingest_run(source="file")
    settings.SENTIMENT_POST_RETENTION = 90
    assert SymbolSentiment.objects.count() == 2
    report = prune(steps=PRUNE_STEPS, now=now)
    assert report.complete
    assert list(Tweet.objects.values_list("post_id", flat=True)) == ["new"]
    assert TweetSentiment.objects.count() == 1
    assert Mention.objects.count() == 1
    # aggregating again from before the cutoff does not rebuild the pruned hours from what is left
    sentiment_aggregate(since=old - timedelta(hours=1))
    assert SymbolSentiment.objects.count() == 2
    assert SymbolSentiment.objects.filter(hour__lt=now - timedelta(days=90), mentions=1).exists()
    assert Decimal(SymbolSentiment.objects.order_by("hour").first().weight_sum) == Decimal(1)
