"""Posts ingest: new posts scored and stored, edited ones updated and rescored, deleted ones removed.

Idempotent by ``(source, post_id)``: a post whose stored fields equal the incoming ones is left alone
(no write at all), so ingesting the same feed again costs one read per 5,000 posts.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.bulk import bulk_insert, reserve_ids
from sentiment import rules
from sentiment.models import Mention, RedditPost, RedditSentiment, Tweet, TweetSentiment
from sentiment.sources.base import Deletion, SocialPost

CHUNK = 5000


@dataclass
class IngestCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    earliest_change: datetime | None = None  # the earliest post time whose aggregates must be recomputed
    symbols: set[str] = field(default_factory=set)

    def touched(self, at: datetime, symbols: Iterable[str]) -> None:
        if self.earliest_change is None or at < self.earliest_change:
            self.earliest_change = at
        self.symbols.update(symbols)


@dataclass(frozen=True)
class _Kind:
    """What differs between tweets and Reddit posts."""

    model: type
    score_model: type
    score_link: str  # the score's FK to its post
    mention_link: str  # the mention's FK to its post
    fields: tuple[str, ...]  # the post's own fields, compared to tell an edit

    def values(self, post: SocialPost) -> tuple:
        return tuple(getattr(post, name) for name in self.fields)

    def weight(self, post: SocialPost):
        if self.model is Tweet:
            return rules.tweet_weight(likes=post.likes, retweets=post.retweets, replies=post.replies)
        return rules.reddit_weight(score=post.score, num_comments=post.num_comments)


TWEETS = _Kind(
    model=Tweet,
    score_model=TweetSentiment,
    score_link="tweet",
    mention_link="tweet",
    fields=("author", "created_at", "text", "author_followers", "likes", "retweets", "replies", "lang"),
)
REDDIT = _Kind(
    model=RedditPost,
    score_model=RedditSentiment,
    score_link="post",
    mention_link="reddit_post",
    fields=("author", "created_at", "subreddit", "title", "body", "score", "num_comments", "upvote_ratio"),
)
KINDS = {"x": TWEETS, "reddit": REDDIT}


def current_lexicon() -> str:
    return rules.lexicon_version(finance=settings.SENTIMENT_FINANCE_LEXICON)


def posts_ingest(*, source: str, posts: Sequence[SocialPost], deletions: Sequence[Deletion] = ()) -> IngestCounts:
    """Store ``posts`` delivered by ``source`` and honour ``deletions``, in one transaction."""
    counts = IngestCounts()
    now = timezone.now()
    lexicon = current_lexicon()
    with transaction.atomic():
        for platform, kind in KINDS.items():
            latest: dict[str, SocialPost] = {}
            for post in posts:
                if post.platform == platform:
                    latest[post.post_id] = post  # a post listed twice: the later row wins
            _ingest_kind(kind, source=source, posts=list(latest.values()), counts=counts, now=now, lexicon=lexicon)
            gone = [d.post_id for d in deletions if d.platform == platform]
            _delete(kind, source=source, post_ids=gone, counts=counts)
    return counts


def _stored(kind: _Kind, *, source: str, post_ids: list[str]) -> dict[str, tuple]:
    found = {}
    for start in range(0, len(post_ids), CHUNK):
        rows = kind.model.objects.filter(source=source, post_id__in_array=post_ids[start : start + CHUNK]).values_list(
            "pk", "post_id", *kind.fields
        )
        for pk, post_id, *values in rows:
            found[post_id] = (pk, tuple(values))
    return found


def _ingest_kind(kind: _Kind, *, source: str, posts: list[SocialPost], counts: IngestCounts, now, lexicon: str) -> None:
    if not posts:
        return
    stored = _stored(kind, source=source, post_ids=[p.post_id for p in posts])
    new: list[SocialPost] = []
    edited: list[tuple[int, SocialPost]] = []
    for post in posts:
        known = stored.get(post.post_id)
        if known is None:
            new.append(post)
        elif known[1] != kind.values(post):
            edited.append((known[0], post))
        else:
            counts.unchanged += 1

    # The spam rule's hash and the cashtags of each post to write, computed once.
    derived = {post.post_id: (rules.text_hash(post.scored_text), rules.cashtags(post.scored_text)) for post in new}
    derived.update(
        (post.post_id, (rules.text_hash(post.scored_text), rules.cashtags(post.scored_text))) for _, post in edited
    )
    if edited:
        pks = [pk for pk, _ in edited]
        old_symbols = dict(kind.model.objects.filter(pk__in=pks).values_list("pk", "symbols"))
        old_times = dict(kind.model.objects.filter(pk__in=pks).values_list("pk", "created_at"))
        for pk in pks:
            counts.touched(old_times[pk], old_symbols[pk] or [])
        # Edits are few: the ORM's bulk_update (the JSON column of symbols rules out the unnest path).
        rows = []
        for pk, post in edited:
            row = kind.model(pk=pk, fetched_at=now, **dict(zip(kind.fields, kind.values(post), strict=True)))
            row.text_hash, row.symbols = derived[post.post_id]
            rows.append(row)
        kind.model.objects.bulk_update(rows, [*kind.fields, "text_hash", "symbols", "fetched_at"], batch_size=500)
        kind.score_model.objects.filter(**{f"{kind.score_link}_id__in": pks}).delete()
        Mention.objects.filter(**{f"{kind.mention_link}_id__in": pks}).delete()
        counts.updated += len(edited)

    new_ids = reserve_ids(kind.model, len(new))
    if new:
        columns = ["id", "source", "post_id", "text_hash", "symbols", "fetched_at", *kind.fields]
        bulk_insert(
            kind.model,
            columns,
            (
                (
                    pk,
                    source,
                    post.post_id,
                    *derived[post.post_id],
                    now,
                    *kind.values(post),
                )
                for pk, post in zip(new_ids, new, strict=True)
            ),
        )
        counts.created += len(new)

    to_score = [*edited, *zip(new_ids, new, strict=True)]
    _score(kind, to_score, counts=counts, now=now, lexicon=lexicon, derived=derived)


SCORE_COLUMNS = ("compound", "positive", "neutral", "negative", "label", "weight", "lexicon_version", "scored_at")
MENTION_COLUMNS = ("symbol", "platform", "at", "author", "text_hash", "compound", "weight", "label")


def _score(
    kind: _Kind, items: list[tuple[int, SocialPost]], *, counts: IngestCounts, now, lexicon: str, derived=None
) -> None:
    """Score each post and write its score and one mention per symbol (COPY on PostgreSQL)."""
    scores, mentions = [], []
    finance = settings.SENTIMENT_FINANCE_LEXICON
    for pk, post in items:
        text = post.scored_text
        score = rules.score_text(text, finance=finance)
        weight = kind.weight(post)
        scores.append(
            (pk, score.compound, score.positive, score.neutral, score.negative, score.label, weight, lexicon, now)
        )
        if derived is not None:
            digest, symbols = derived[post.post_id]
        else:
            digest, symbols = rules.text_hash(text), rules.cashtags(text)
        author = post.author[:100]
        for symbol in symbols:
            mentions.append(
                (pk, symbol, post.platform, post.created_at, author, digest, score.compound, weight, score.label)
            )
        counts.touched(post.created_at, symbols)
    bulk_insert(kind.score_model, [f"{kind.score_link}_id", *SCORE_COLUMNS], scores)
    bulk_insert(Mention, [f"{kind.mention_link}_id", *MENTION_COLUMNS], mentions)


def _delete(kind: _Kind, *, source: str, post_ids: list[str], counts: IngestCounts) -> None:
    if not post_ids:
        return
    doomed = kind.model.objects.filter(source=source, post_id__in=post_ids)
    for created_at, symbols in doomed.values_list("created_at", "symbols"):
        counts.touched(created_at, symbols or [])
    pks = list(doomed.values_list("pk", flat=True))
    # Children first, by key, so the post delete needs no collector walk.
    Mention.objects.filter(**{f"{kind.mention_link}_id__in": pks}).delete()
    kind.score_model.objects.filter(**{f"{kind.score_link}_id__in": pks}).delete()
    kind.model.objects.filter(pk__in=pks).delete()
    counts.deleted += len(pks)


def posts_rescore(*, batch: int = 5000) -> int:
    """Rescore every post whose score was made by another lexicon than the current one; return how many.

    Scores and mentions of a post are replaced together, a batch per transaction.
    """
    lexicon = current_lexicon()
    total = 0
    for kind in KINDS.values():
        while True:
            pks = list(
                kind.model.objects.exclude(sentiment__lexicon_version=lexicon).values_list("pk", flat=True)[:batch]
            )
            if not pks:
                break
            with transaction.atomic():
                posts = list(kind.model.objects.filter(pk__in=pks))
                kind.score_model.objects.filter(**{f"{kind.score_link}_id__in": pks}).delete()
                Mention.objects.filter(**{f"{kind.mention_link}_id__in": pks}).delete()
                items = [(p.pk, _as_social(kind, p)) for p in posts]
                _score(kind, items, counts=IngestCounts(), now=timezone.now(), lexicon=lexicon)
            total += len(pks)
    return total


def _as_social(kind: _Kind, row) -> SocialPost:
    return SocialPost(
        platform="x" if kind is TWEETS else "reddit",
        post_id=row.post_id,
        **{name: getattr(row, name) for name in kind.fields},
    )
