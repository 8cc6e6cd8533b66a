"""What crosses the sentiment source boundary: frozen, normalised types and the source protocol.

Everything here is clean: ``Decimal`` numbers, aware UTC datetimes, the platform a post was written
on (``x`` or ``reddit``), print prices as the exchange reported them. Nothing above the boundary sees
a tweepy, praw or feed-file quirk.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from core.brokers.base import OptionPrint


class SourceUnavailable(Exception):  # noqa: N818 - the broker boundary's name for the same thing
    """The source cannot be read (file missing, API down): the run is SKIPPED, nothing is changed."""


class SourceDisabled(Exception):  # noqa: N818
    """The source lacks its credentials or settings: the run is SKIPPED with this message."""


@dataclass(frozen=True, slots=True)
class SocialPost:
    platform: str  # "x" or "reddit"
    post_id: str
    author: str
    created_at: datetime
    text: str = ""  # a tweet's text
    title: str = ""  # a Reddit post's title and body
    body: str = ""
    subreddit: str = ""
    author_followers: int = 0
    likes: int = 0
    retweets: int = 0
    replies: int = 0
    score: int = 0
    num_comments: int = 0
    upvote_ratio: Decimal | None = None
    lang: str = ""

    @property
    def scored_text(self) -> str:
        """What VADER reads: a tweet's text, a Reddit post's title and body."""
        if self.platform == "reddit":
            return f"{self.title}\n{self.body}".strip()
        return self.text


@dataclass(frozen=True, slots=True)
class Deletion:
    platform: str
    post_id: str


# One type for an options print wherever it comes from (the feed file or the broker boundary).
OptionsPrint = OptionPrint


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """One fetch: posts, deletions and prints, and a warning for each row skipped as malformed.

    ``complete`` is False when the source stopped early (rate limit that did not lift in time): what
    came is kept, and ``resume`` says where the next run starts.
    """

    posts: tuple[SocialPost, ...] = ()
    deletions: tuple[Deletion, ...] = ()
    prints: tuple[OptionsPrint, ...] = ()
    warnings: tuple[str, ...] = ()
    complete: bool = True
    resume: dict = field(default_factory=dict)


class SentimentSource(Protocol):
    name: str

    def fetch(self, *, symbols: list[str], since: datetime | None) -> SourceBatch: ...
