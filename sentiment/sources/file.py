"""The embedded default source: the JSON feed file named by ``SENTIMENT_FEED_FILE`` (sentiment-feed.md).

Read afresh on every fetch. A missing or unreadable file is ``SourceUnavailable`` naming the file; a
malformed row is skipped with a warning naming its list, index and id, and the rest is used.
"""

import json
import logging
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from core.fields import parse_decimal
from sentiment.sources.base import Deletion, OptionsPrint, SocialPost, SourceBatch, SourceUnavailable

logger = logging.getLogger(__name__)


class BadRowError(ValueError):
    pass


def _text(row: dict, key: str, *, required: bool = True) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRowError(f"missing {key}")
        return ""
    if not isinstance(value, str):
        raise BadRowError(f"{key}: expected a string, got {type(value).__name__}")
    return value.strip()


def _count(row: dict, key: str) -> int:
    value = row.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRowError(f"{key}: expected an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise BadRowError(f"{key}: expected an integer, got {value!r}") from None
    return number


def _natural(row: dict, key: str) -> int:
    number = _count(row, key)
    if number < 0:
        raise BadRowError(f"{key}: must not be negative, got {number}")
    return number


def _decimal(row: dict, key: str, *, required: bool = True, positive: bool = False) -> Decimal | None:
    if row.get(key) is None:
        if required:
            raise BadRowError(f"missing {key}")
        return None
    value = row[key]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # whole numbers (sizes, interest) may come as JSON integers
    try:
        number = parse_decimal(value, field=key)
    except ValueError as exc:
        raise BadRowError(str(exc)) from None
    if positive and number <= 0:
        raise BadRowError(f"{key}: must be positive, got {number}")
    if number < 0:
        raise BadRowError(f"{key}: must not be negative, got {number}")
    return number


def _time(row: dict, key: str) -> datetime:
    value = _text(row, key)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRowError(f"{key}: not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise BadRowError(f"{key}: time has no zone: {value[:40]!r}")
    return parsed.astimezone(UTC)


def _tweet(row: dict) -> SocialPost:
    return SocialPost(
        platform="x",
        post_id=_text(row, "id"),
        author=_text(row, "author", required=False),
        author_followers=_natural(row, "author_followers"),
        text=_text(row, "text"),
        created_at=_time(row, "created_at"),
        likes=_natural(row, "likes"),
        retweets=_natural(row, "retweets"),
        replies=_natural(row, "replies"),
        lang=_text(row, "lang", required=False)[:8],
    )


def _reddit(row: dict) -> SocialPost:
    ratio = _decimal(row, "upvote_ratio", required=False)
    return SocialPost(
        platform="reddit",
        post_id=_text(row, "id"),
        subreddit=_text(row, "subreddit", required=False),
        author=_text(row, "author", required=False),
        title=_text(row, "title"),
        body=_text(row, "body", required=False),
        created_at=_time(row, "created_at"),
        score=_count(row, "score"),  # Reddit scores can be negative
        num_comments=_natural(row, "num_comments"),
        upvote_ratio=ratio,
    )


def _print(row: dict) -> OptionsPrint:
    right = _text(row, "right").upper()
    if right not in {"C", "P"}:
        raise BadRowError(f"right: expected C or P, got {right!r}")
    raw_expiry = _text(row, "expiry")
    try:
        expiry = date.fromisoformat(raw_expiry)
    except ValueError:
        raise BadRowError(f"expiry: not an ISO date: {raw_expiry!r}") from None
    kind = _text(row, "kind", required=False).upper()
    if kind not in {"", "SWEEP", "BLOCK", "SPLIT"}:
        raise BadRowError(f"kind: expected SWEEP, BLOCK or SPLIT, got {kind!r}")
    exchanges = row.get("exchanges")
    return OptionsPrint(
        print_id=_text(row, "id"),
        time=_time(row, "time"),
        underlying=_text(row, "underlying").upper(),
        expiry=expiry,
        strike=_decimal(row, "strike", positive=True),
        right=right,
        size=_decimal(row, "size", positive=True),
        price=_decimal(row, "price"),
        bid=_decimal(row, "bid", required=False),
        ask=_decimal(row, "ask", required=False),
        underlying_price=_decimal(row, "underlying_price", required=False),
        open_interest=_decimal(row, "open_interest", required=False),
        volume=_decimal(row, "volume", required=False),
        exchanges=None if exchanges is None else _natural(row, "exchanges"),
        kind=kind,
        multiplier=_decimal(row, "multiplier", required=False, positive=True) or Decimal(100),
    )


def _label(where: str, index: int, row) -> str:
    if isinstance(row, dict) and isinstance(row.get("id"), str | int) and row.get("id") != "":
        return f"{where}[{index}] ({str(row['id'])[:40]})"
    return f"{where}[{index}]"


def parse_feed(data, *, path: str = "feed") -> SourceBatch:
    """The batch a feed document holds; each malformed row becomes a warning naming it."""
    if not isinstance(data, dict):
        raise SourceUnavailable(f"{path}: expected a JSON object at the top, got {type(data).__name__}")
    posts: list[SocialPost] = []
    deletions: list[Deletion] = []
    prints: list[OptionsPrint] = []
    warnings: list[str] = []
    lists = (
        ("tweets", "x", _tweet, posts),
        ("reddit_posts", "reddit", _reddit, posts),
        ("options_flow", "", _print, prints),
    )
    for where, platform, parse, into in lists:
        rows = data.get(where) or []
        if not isinstance(rows, list):
            warnings.append(f"{where}: expected a list, got {type(rows).__name__}; ignored")
            continue
        for index, row in enumerate(rows):
            try:
                if not isinstance(row, dict):
                    raise BadRowError(f"expected an object, got {type(row).__name__}")
                if platform and row.get("deleted") is True:
                    deletions.append(Deletion(platform=platform, post_id=_text(row, "id")))
                    continue
                into.append(parse(row))
            except (BadRowError, ValueError, TypeError, OverflowError) as exc:
                message = f"{_label(where, index, row)}: {exc}; row skipped"
                logger.warning("sentiment feed %s: %s", path, message)
                warnings.append(message)
    return SourceBatch(posts=tuple(posts), deletions=tuple(deletions), prints=tuple(prints), warnings=tuple(warnings))


class FileSource:
    """Posts and options flow from the feed file; symbols and since are ignored (the file is the world)."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _read(self):
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceUnavailable(f"sentiment feed file {self.path} cannot be read: {exc.strerror or exc}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceUnavailable(f"sentiment feed file {self.path} is not valid JSON: {exc}") from None

    def fetch(self, *, symbols: list[str] | None = None, since: datetime | None = None) -> SourceBatch:
        batch = parse_feed(self._read(), path=str(self.path))
        return SourceBatch(posts=batch.posts, deletions=batch.deletions, warnings=batch.warnings)

    def options_flow(self, *, underlyings: list[str] | None = None) -> SourceBatch:
        batch = parse_feed(self._read(), path=str(self.path))
        return SourceBatch(prints=batch.prints, warnings=batch.warnings)
