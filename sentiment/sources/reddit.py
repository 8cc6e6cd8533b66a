"""Reddit through praw: the newest posts of REDDIT_SUBREDDITS (app-only OAuth, read-only).

Posts are read newest first until one older than ``since``; only those with a cashtag matter above
the boundary, but all are returned (a post may name a held symbol the tracked list lacks). Rate
limits: prawcore paces requests by Reddit's ``x-ratelimit-*`` headers; a 429 that still comes raises
``TooManyRequests``, and this adapter waits ``retry-after`` (at most ``max_wait`` seconds in all) and
resumes the listing after the last post it got (``after=<fullname>``); past the allowed wait it stops
and keeps what came.
"""

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import praw
import prawcore

from sentiment.sources.base import SocialPost, SourceBatch, SourceUnavailable

logger = logging.getLogger(__name__)
PAGE_LIMIT = 500  # posts per subreddit and run at most
FIRST_LOOKBACK = timedelta(hours=24)


class RedditSource:
    name = "reddit"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        user_agent: str,
        subreddits: list[str],
        max_wait: int = 120,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reddit = praw.Reddit(
            client_id=client_id,
            client_secret=client_secret,
            user_agent=user_agent,
            check_for_updates=False,
            ratelimit_seconds=max_wait,
        )
        self.reddit.read_only = True
        self.subreddits = subreddits
        self.max_wait = max_wait
        self.sleep = sleep

    def fetch(self, *, symbols: list[str] | None = None, since: datetime | None = None) -> SourceBatch:
        since = since or datetime.now(UTC) - FIRST_LOOKBACK
        posts: list[SocialPost] = []
        warnings: list[str] = []
        waited = 0.0
        complete = True
        for name in self.subreddits:
            after = None
            done = False
            while not done:
                params = {"after": after} if after else {}
                try:
                    for submission in self.reddit.subreddit(name).new(limit=PAGE_LIMIT, params=params):
                        post = _post(submission, name, warnings)
                        after = submission.name
                        if post is None:
                            continue
                        if post.created_at < since:
                            break
                        posts.append(post)
                    done = True
                except prawcore.TooManyRequests as exc:
                    wait = float(exc.retry_after or 60)
                    if waited + wait > self.max_wait:
                        warnings.append(f"reddit: rate limited on r/{name}; would wait {wait:.0f}s: stopped")
                        complete = False
                        break
                    logger.warning("reddit: rate limited, waiting %.0fs and resuming after %s", wait, after)
                    self.sleep(wait)
                    waited += wait
                except (prawcore.OAuthException, prawcore.ResponseException, prawcore.Forbidden) as exc:
                    raise SourceUnavailable(f"reddit: request refused: {exc}") from None
                except prawcore.PrawcoreException as exc:
                    raise SourceUnavailable(f"reddit: request failed: {exc}") from None
            if not complete:
                break
        newest = max((p.created_at for p in posts), default=None)
        resume = {"since": newest} if complete and newest else {}
        return SourceBatch(posts=tuple(posts), warnings=tuple(warnings), complete=complete, resume=resume)


def _post(submission, subreddit: str, warnings: list[str]) -> SocialPost | None:
    try:
        ratio = submission.upvote_ratio
        return SocialPost(
            platform="reddit",
            post_id=submission.name,  # "t3_<id>", as the feed file writes it
            subreddit=subreddit,
            author=str(submission.author) if submission.author else "",
            title=submission.title or "",
            body=submission.selftext or "",
            created_at=datetime.fromtimestamp(float(submission.created_utc), tz=UTC),
            score=int(submission.score),
            num_comments=int(submission.num_comments),
            upvote_ratio=None if ratio is None else Decimal(str(ratio)),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        warnings.append(f"reddit: post {getattr(submission, 'id', '?')}: {exc}; skipped")
        return None
