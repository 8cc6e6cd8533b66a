"""The only package that talks to social platforms and option-flow feeds. ``get_source(name)`` builds
one from settings; a source lacking its credentials raises ``SourceDisabled`` saying which."""

from django.conf import settings

from sentiment.sources.base import SentimentSource, SourceBatch, SourceDisabled, SourceUnavailable

__all__ = ["SOURCE_NAMES", "SentimentSource", "SourceBatch", "SourceDisabled", "SourceUnavailable", "get_source"]

SOURCE_NAMES = ("file", "x", "reddit")


def get_source(name: str) -> SentimentSource:
    if name == "file":
        from sentiment.sources.file import FileSource

        return FileSource(settings.SENTIMENT_FEED_FILE)
    if name == "x":
        if not settings.X_BEARER_TOKEN:
            raise SourceDisabled("x: X_BEARER_TOKEN is not set; the X source is disabled")
        from sentiment.sources.x import XSource

        return XSource(bearer_token=settings.X_BEARER_TOKEN, max_wait=settings.SENTIMENT_RATE_LIMIT_MAX_WAIT)
    if name == "reddit":
        missing = [n for n in ("REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET") if not getattr(settings, n)]
        if missing:
            raise SourceDisabled(f"reddit: {', '.join(missing)} not set; the Reddit source is disabled")
        from sentiment.sources.reddit import RedditSource

        return RedditSource(
            client_id=settings.REDDIT_CLIENT_ID,
            client_secret=settings.REDDIT_CLIENT_SECRET,
            user_agent=settings.REDDIT_USER_AGENT,
            subreddits=settings.REDDIT_SUBREDDITS,
            max_wait=settings.SENTIMENT_RATE_LIMIT_MAX_WAIT,
        )
    raise ValueError(f"unknown sentiment source {name!r}; one of {', '.join(SOURCE_NAMES)}")
