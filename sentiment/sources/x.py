"""X (Twitter) through tweepy: API v2 recent search for the cashtags of the tracked symbols.

Rate limits: tweepy is asked not to sleep by itself (``wait_on_rate_limit=False``) so this adapter
decides. On a 429 it waits until ``x-rate-limit-reset`` (at most ``max_wait`` seconds in all) and asks
for the same page again, so a run resumes exactly where it stopped; when the wait would be longer, it
stops, keeps what came (``complete=False``) and the next run starts from the same point in time
(upserts make the overlap harmless). Authentication, access and server errors make the source
unavailable (the run is SKIPPED, nothing is changed).
"""

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import tweepy

from sentiment.sources.base import SocialPost, SourceBatch, SourceUnavailable

logger = logging.getLogger(__name__)
QUERY_LIMIT = 512  # characters of a recent-search query on the basic tiers
PAGE_SIZE = 100
MAX_PAGES = 50  # per query and run: 5,000 posts, within the monthly caps
LOOKBACK = timedelta(days=7)  # recent search reaches back seven days


def cashtag_queries(symbols: list[str]) -> list[str]:
    """Queries of ``($A OR $B ...) -is:retweet`` no longer than QUERY_LIMIT, covering every symbol."""
    suffix = " -is:retweet"
    queries, current = [], []
    for symbol in symbols:
        candidate = [*current, f"${symbol}"]
        text = "(" + " OR ".join(candidate) + ")" + suffix
        if len(text) > QUERY_LIMIT and current:
            queries.append("(" + " OR ".join(current) + ")" + suffix)
            current = [f"${symbol}"]
        else:
            current = candidate
    if current:
        queries.append("(" + " OR ".join(current) + ")" + suffix)
    return queries


class XSource:
    name = "x"

    def __init__(self, *, bearer_token: str, max_wait: int = 120, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = tweepy.Client(bearer_token=bearer_token, wait_on_rate_limit=False)
        self.max_wait = max_wait
        self.sleep = sleep

    def fetch(self, *, symbols: list[str], since: datetime | None) -> SourceBatch:
        now = datetime.now(UTC)
        start = max(since, now - LOOKBACK + timedelta(minutes=1)) if since else now - timedelta(hours=24)
        posts: list[SocialPost] = []
        warnings: list[str] = []
        waited = 0.0
        complete = True
        for query in cashtag_queries(sorted(set(symbols))):
            token = None
            for _ in range(MAX_PAGES):
                try:
                    page = self.client.search_recent_tweets(
                        query,
                        start_time=start,
                        max_results=PAGE_SIZE,
                        next_token=token,
                        tweet_fields=["created_at", "public_metrics", "lang", "author_id"],
                        expansions=["author_id"],
                        user_fields=["username", "public_metrics"],
                    )
                except tweepy.TooManyRequests as exc:
                    reset = getattr(exc, "reset_time", None)
                    wait = max(1.0, reset - time.time() + 1) if reset else 60.0
                    if waited + wait > self.max_wait:
                        warnings.append(f"x: rate limited; would wait {wait:.0f}s, more than {self.max_wait}s: stopped")
                        complete = False
                        break
                    logger.warning("x: rate limited, waiting %.0fs and resuming at the same page", wait)
                    self.sleep(wait)
                    waited += wait
                    continue  # the same token: the page that was refused
                except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
                    raise SourceUnavailable(f"x: the API refused the bearer token: {exc}") from None
                except (tweepy.TwitterServerError, tweepy.HTTPException, tweepy.errors.TweepyException) as exc:
                    raise SourceUnavailable(f"x: request failed: {exc}") from None
                posts.extend(_posts(page, warnings))
                token = (page.meta or {}).get("next_token")
                if not token:
                    break
            if not complete:
                break
        newest = max((p.created_at for p in posts), default=None)
        resume = {"since": newest} if complete and newest else {}
        return SourceBatch(posts=tuple(posts), warnings=tuple(warnings), complete=complete, resume=resume)


def _posts(page, warnings: list[str]) -> list[SocialPost]:
    users = {u.id: u for u in (page.includes or {}).get("users", [])}
    found = []
    for tweet in page.data or []:
        try:
            metrics = tweet.public_metrics or {}
            author = users.get(tweet.author_id)
            created = tweet.created_at
            if created is None or created.tzinfo is None:
                raise ValueError("created_at missing or without a zone")
            found.append(
                SocialPost(
                    platform="x",
                    post_id=str(tweet.id),
                    author=author.username if author else str(tweet.author_id or ""),
                    author_followers=int((author.public_metrics or {}).get("followers_count", 0)) if author else 0,
                    text=tweet.text or "",
                    created_at=created.astimezone(UTC),
                    likes=int(metrics.get("like_count", 0)),
                    retweets=int(metrics.get("retweet_count", 0)),
                    replies=int(metrics.get("reply_count", 0)),
                    lang=(tweet.lang or "")[:8],
                )
            )
        except (TypeError, ValueError, AttributeError) as exc:
            warnings.append(f"x: tweet {getattr(tweet, 'id', '?')}: {exc}; skipped")
    return found
