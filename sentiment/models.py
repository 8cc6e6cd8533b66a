"""Social posts and their scores, per-symbol aggregates, options flow and patterns, confluence.

A post is identified by ``(source, post_id)``: ``source`` is the source that delivered it (``file``,
``x``, ``reddit``), ``platform`` where it was written (``x`` or ``reddit``), which is what the
per-source aggregates are keyed by. Each mention of a symbol in a post is a ``Mention`` row carrying
the post's score and weight, so aggregation reads one narrow table; deleting a post deletes its score
and mentions (CASCADE).
"""

from django.db import models
from django.db.models import Q

from core.fields import MoneyField, PriceField, QuantityField, RatioField


class Platform(models.TextChoices):
    X = "x", "X"
    REDDIT = "reddit", "Reddit"


class Label(models.TextChoices):
    BULLISH = "BULLISH", "Bullish"
    NEUTRAL = "NEUTRAL", "Neutral"
    BEARISH = "BEARISH", "Bearish"


class Post(models.Model):
    """What a tweet and a Reddit post share."""

    source = models.CharField(max_length=16)
    post_id = models.CharField(max_length=64)
    author = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField()
    # sha1 of the normalised text (case, links, cashtag spacing): the spam rule compares these.
    text_hash = models.CharField(max_length=40, db_index=True)
    symbols = models.JSONField(default=list, blank=True)
    fetched_at = models.DateTimeField()

    class Meta:
        abstract = True


class Tweet(Post):
    text = models.TextField()
    author_followers = models.PositiveIntegerField(default=0)
    likes = models.PositiveIntegerField(default=0)
    retweets = models.PositiveIntegerField(default=0)
    replies = models.PositiveIntegerField(default=0)
    lang = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["source", "post_id"], name="tweet_source_id")]
        indexes = [models.Index(fields=["created_at"], name="tweet_created")]

    def __str__(self) -> str:
        return f"tweet {self.post_id} by {self.author}"


class RedditPost(Post):
    subreddit = models.CharField(max_length=64)
    title = models.TextField()
    body = models.TextField(blank=True)
    score = models.IntegerField(default=0)
    num_comments = models.PositiveIntegerField(default=0)
    upvote_ratio = RatioField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["source", "post_id"], name="redditpost_source_id")]
        indexes = [models.Index(fields=["created_at"], name="redditpost_created")]

    def __str__(self) -> str:
        return f"reddit {self.post_id} in r/{self.subreddit}"


class Score(models.Model):
    """A post's VADER score, its label, its engagement weight and the lexicon that scored it."""

    compound = RatioField()
    positive = RatioField()
    neutral = RatioField()
    negative = RatioField()
    label = models.CharField(max_length=8, choices=Label.choices)
    weight = RatioField()
    lexicon_version = models.CharField(max_length=32)
    scored_at = models.DateTimeField()

    class Meta:
        abstract = True


class TweetSentiment(Score):
    tweet = models.OneToOneField(Tweet, on_delete=models.CASCADE, related_name="sentiment")

    def __str__(self) -> str:
        return f"{self.tweet_id} {self.label} {self.compound}"


class RedditSentiment(Score):
    post = models.OneToOneField(RedditPost, on_delete=models.CASCADE, related_name="sentiment")

    def __str__(self) -> str:
        return f"{self.post_id} {self.label} {self.compound}"


class Mention(models.Model):
    """One symbol mentioned by one post, with that post's score: what aggregation counts."""

    tweet = models.ForeignKey(Tweet, on_delete=models.CASCADE, null=True, blank=True, related_name="mentions")
    reddit_post = models.ForeignKey(
        RedditPost, on_delete=models.CASCADE, null=True, blank=True, related_name="mentions"
    )
    symbol = models.CharField(max_length=32)
    platform = models.CharField(max_length=8, choices=Platform.choices)
    at = models.DateTimeField()
    author = models.CharField(max_length=100, blank=True)
    text_hash = models.CharField(max_length=40)
    compound = RatioField()
    weight = RatioField()
    label = models.CharField(max_length=8, choices=Label.choices)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["at"], name="mention_at"),
            models.Index(fields=["symbol", "at"], name="mention_symbol_at"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(tweet__isnull=False, reddit_post__isnull=True)
                | Q(tweet__isnull=True, reddit_post__isnull=False),
                name="mention_one_post",
            ),
            models.UniqueConstraint(fields=["tweet", "symbol"], name="mention_tweet_symbol"),
            models.UniqueConstraint(fields=["reddit_post", "symbol"], name="mention_reddit_symbol"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.platform} {self.at:%Y-%m-%d %H:%M}"


class SymbolSentiment(models.Model):
    """Per symbol, hour and platform: counts and means of the mentions that count (spam rule applied).

    The sums are kept beside the means so windows over several hours and platforms combine exactly.
    """

    symbol = models.CharField(max_length=32)
    hour = models.DateTimeField()
    source = models.CharField(max_length=8, choices=Platform.choices)
    mentions = models.PositiveIntegerField()
    bullish = models.PositiveIntegerField()
    neutral = models.PositiveIntegerField()
    bearish = models.PositiveIntegerField()
    compound_sum = RatioField()
    weighted_sum = RatioField()
    weight_sum = RatioField()
    mean_compound = RatioField()
    weighted_compound = RatioField()
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["symbol", "hour", "source"]
        constraints = [models.UniqueConstraint(fields=["symbol", "hour", "source"], name="symbolsentiment_key")]
        indexes = [models.Index(fields=["hour"], name="symbolsentiment_hour")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.hour:%Y-%m-%d %H}h {self.source}"


class Window(models.TextChoices):
    HOUR = "1h", "1 hour"
    DAY = "24h", "24 hours"
    WEEK = "7d", "7 days"


class AggregatedSentiment(models.Model):
    """All platforms of a symbol over a window ending at ``as_of`` (an hour boundary).

    ``change``: the weighted compound minus the previous window's (null when either is empty).
    ``spike``: z-score of the last hour's mentions against the trailing 7 days of hours.
    """

    symbol = models.CharField(max_length=32)
    window = models.CharField(max_length=4, choices=Window.choices)
    as_of = models.DateTimeField()
    mentions = models.PositiveIntegerField()
    bullish = models.PositiveIntegerField()
    neutral = models.PositiveIntegerField()
    bearish = models.PositiveIntegerField()
    mean_compound = RatioField(null=True, blank=True)
    weighted_compound = RatioField(null=True, blank=True)
    change = RatioField(null=True, blank=True)
    spike = RatioField(null=True, blank=True)
    per_source = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["symbol", "window", "-as_of"]
        constraints = [models.UniqueConstraint(fields=["symbol", "window", "as_of"], name="aggregatedsentiment_key")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.window} @ {self.as_of:%Y-%m-%d %H:%M}"


class PrintSide(models.TextChoices):
    BOUGHT = "BOUGHT", "Bought (at or above ask)"
    SOLD = "SOLD", "Sold (at or below bid)"
    UNKNOWN = "UNKNOWN", "Unknown (between bid and ask)"


class Direction(models.TextChoices):
    BULLISH = "BULLISH", "Bullish"
    BEARISH = "BEARISH", "Bearish"
    NONE = "", "-"


class OptionsFlow(models.Model):
    """One options print. ``premium`` = size x price x multiplier; ``direction`` from side and right."""

    source = models.CharField(max_length=16)
    print_id = models.CharField(max_length=64)
    time = models.DateTimeField()
    session = models.DateField(help_text="The exchange (New York) date of the print.")
    underlying = models.CharField(max_length=32)
    expiry = models.DateField()
    strike = PriceField()
    right = models.CharField(max_length=1)
    size = QuantityField()
    price = PriceField()
    bid = PriceField(null=True, blank=True)
    ask = PriceField(null=True, blank=True)
    underlying_price = PriceField(null=True, blank=True)
    open_interest = QuantityField(null=True, blank=True)
    volume = QuantityField(null=True, blank=True)
    exchanges = models.PositiveIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=8, blank=True)
    multiplier = QuantityField(default=100)
    premium = MoneyField()
    side = models.CharField(max_length=8, choices=PrintSide.choices)
    direction = models.CharField(max_length=8, choices=Direction.choices, blank=True)
    unusual = models.BooleanField(default=False)
    delayed = models.BooleanField(default=False, help_text="From delayed market data (the broker said so).")
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["-time", "-id"]
        verbose_name_plural = "options flow"
        constraints = [models.UniqueConstraint(fields=["source", "print_id"], name="optionsflow_source_id")]
        indexes = [
            models.Index(fields=["underlying", "session"], name="optionsflow_underlying_session"),
            models.Index(fields=["time"], name="optionsflow_time"),
        ]

    def __str__(self) -> str:
        return f"{self.underlying} {self.expiry} {self.strike}{self.right} x{self.size} @ {self.price}"

    @property
    def contract(self) -> str:
        return f"{self.underlying} {self.expiry:%Y-%m-%d} {self.strike.normalize():f}{self.right}"


class PatternKind(models.TextChoices):
    REPEATED_SWEEPS = "REPEATED_SWEEPS", "Repeated sweeps"
    PREMIUM_SKEW = "PREMIUM_SKEW", "Premium skew"
    VOLUME_OVER_OI = "VOLUME_OVER_OI", "Volume over open interest"


class OptionsPattern(models.Model):
    """One detection of a pattern on an underlying in a session, with the prints that made it.

    ``key`` tells detections of one kind apart within a session (the first sweep's print id, the
    contract); detection is recomputed for a whole session, so rows are replaced, never doubled.
    """

    kind = models.CharField(max_length=16, choices=PatternKind.choices)
    underlying = models.CharField(max_length=32)
    session = models.DateField()
    key = models.CharField(max_length=120)
    direction = models.CharField(max_length=8, choices=Direction.choices, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    value = RatioField(null=True, blank=True, help_text="Sweeps: count; skew: ratio; volume/OI: the multiple.")
    premium = MoneyField()
    detail = models.JSONField(default=dict, blank=True)
    prints = models.ManyToManyField(OptionsFlow, related_name="patterns")
    detected_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "underlying", "session", "key"], name="optionspattern_key")
        ]
        indexes = [models.Index(fields=["underlying", "session"], name="optionspattern_underlying_ses")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.underlying} {self.session}"


class ConfluenceScore(models.Model):
    """Per symbol and hour: the weighted mean of the components that have data, x100 in [-100, 100]."""

    symbol = models.CharField(max_length=32)
    hour = models.DateTimeField()
    score = models.DecimalField(max_digits=7, decimal_places=2)
    sentiment = RatioField(null=True, blank=True)
    options_flow = RatioField(null=True, blank=True)
    momentum = RatioField(null=True, blank=True)
    missing = models.JSONField(default=list, blank=True)
    weights = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["symbol", "-hour"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "hour"], name="confluencescore_key"),
            models.CheckConstraint(condition=Q(score__gte=-100, score__lte=100), name="confluencescore_range"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.hour:%Y-%m-%d %H}h {self.score}"
