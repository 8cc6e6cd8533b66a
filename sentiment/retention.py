"""What sentiment prunes: raw posts older than SENTIMENT_POST_RETENTION days, with their scores and
mentions (they cascade). Hourly and windowed aggregates, confluence scores, options flow and patterns
are kept forever: they are small and they are the history."""

from datetime import datetime

from django.db.models import QuerySet

from core.pruning import PruneStep, retention_cutoff
from sentiment.models import RedditPost, Tweet


def old_tweets(now: datetime) -> QuerySet:
    cutoff = retention_cutoff(now, "SENTIMENT_POST_RETENTION")
    return Tweet.objects.none() if cutoff is None else Tweet.objects.filter(created_at__lt=cutoff)


def old_reddit_posts(now: datetime) -> QuerySet:
    cutoff = retention_cutoff(now, "SENTIMENT_POST_RETENTION")
    return RedditPost.objects.none() if cutoff is None else RedditPost.objects.filter(created_at__lt=cutoff)


PRUNE_STEPS = [
    PruneStep(name="tweets", model=Tweet, select=old_tweets, rule="posted before SENTIMENT_POST_RETENTION days"),
    PruneStep(
        name="reddit posts",
        model=RedditPost,
        select=old_reddit_posts,
        rule="posted before SENTIMENT_POST_RETENTION days",
    ),
]
