"""The staff tool for sentiment: browse everything; what is computed (scores, mentions, aggregates,
patterns, confluence) is read-only, since the next run recomputes it. Staff may delete a post (spam
the rule missed): its score and mentions go with it and the action rebuilds the aggregates."""

from django.contrib import admin, messages

from sentiment.models import (
    AggregatedSentiment,
    ConfluenceScore,
    Mention,
    OptionsFlow,
    OptionsPattern,
    RedditPost,
    RedditSentiment,
    SymbolSentiment,
    Tweet,
    TweetSentiment,
)
from sentiment.services.aggregation import sentiment_aggregate


class ComputedAdmin(admin.ModelAdmin):
    """Rows the runs compute: browse them, never edit them."""

    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PostAdmin(admin.ModelAdmin):
    show_full_result_count = False
    readonly_fields = ["source", "post_id", "text_hash", "symbols", "fetched_at"]
    actions = ["delete_and_reaggregate"]

    def has_add_permission(self, request) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Delete the selected posts (spam) and rebuild their aggregates")
    def delete_and_reaggregate(self, request, queryset):
        earliest = queryset.order_by("created_at").values_list("created_at", flat=True).first()
        count, _ = queryset.delete()
        if earliest is not None:
            sentiment_aggregate(since=earliest)
        messages.success(request, f"Deleted {count} rows; aggregates rebuilt from {earliest:%Y-%m-%d %H:00}.")


@admin.register(Tweet)
class TweetAdmin(PostAdmin):
    list_display = ["post_id", "source", "author", "created_at", "likes", "retweets", "replies", "symbols"]
    list_filter = ["source", "lang"]
    search_fields = ["=post_id", "author", "text"]
    date_hierarchy = "created_at"


@admin.register(RedditPost)
class RedditPostAdmin(PostAdmin):
    list_display = ["post_id", "source", "subreddit", "author", "created_at", "score", "num_comments", "symbols"]
    list_filter = ["source", "subreddit"]
    search_fields = ["=post_id", "author", "title", "body"]
    date_hierarchy = "created_at"


@admin.register(TweetSentiment)
class TweetSentimentAdmin(ComputedAdmin):
    list_display = ["tweet", "label", "compound", "weight", "lexicon_version", "scored_at"]
    list_filter = ["label", "lexicon_version"]
    list_select_related = ["tweet"]
    raw_id_fields = ["tweet"]


@admin.register(RedditSentiment)
class RedditSentimentAdmin(ComputedAdmin):
    list_display = ["post", "label", "compound", "weight", "lexicon_version", "scored_at"]
    list_filter = ["label", "lexicon_version"]
    list_select_related = ["post"]
    raw_id_fields = ["post"]


@admin.register(Mention)
class MentionAdmin(ComputedAdmin):
    list_display = ["symbol", "platform", "at", "author", "label", "compound", "weight"]
    list_filter = ["platform", "label"]
    search_fields = ["=symbol", "author"]
    raw_id_fields = ["tweet", "reddit_post"]


@admin.register(SymbolSentiment)
class SymbolSentimentAdmin(ComputedAdmin):
    list_display = ["symbol", "hour", "source", "mentions", "bullish", "neutral", "bearish", "weighted_compound"]
    list_filter = ["source"]
    search_fields = ["=symbol"]
    date_hierarchy = "hour"


@admin.register(AggregatedSentiment)
class AggregatedSentimentAdmin(ComputedAdmin):
    list_display = ["symbol", "window", "as_of", "mentions", "weighted_compound", "change", "spike"]
    list_filter = ["window"]
    search_fields = ["=symbol"]
    date_hierarchy = "as_of"


@admin.register(OptionsFlow)
class OptionsFlowAdmin(ComputedAdmin):
    list_display = [
        "underlying",
        "time",
        "expiry",
        "strike",
        "right",
        "size",
        "price",
        "premium",
        "side",
        "direction",
        "unusual",
        "kind",
    ]
    list_filter = ["unusual", "side", "direction", "kind", "right", "source", "delayed"]
    search_fields = ["=underlying", "=print_id"]
    date_hierarchy = "time"


@admin.register(OptionsPattern)
class OptionsPatternAdmin(ComputedAdmin):
    list_display = ["kind", "underlying", "session", "direction", "value", "premium", "started_at"]
    list_filter = ["kind", "direction"]
    search_fields = ["=underlying"]
    raw_id_fields = ["prints"]
    date_hierarchy = "session"


@admin.register(ConfluenceScore)
class ConfluenceScoreAdmin(ComputedAdmin):
    list_display = ["symbol", "hour", "score", "sentiment", "options_flow", "momentum", "missing"]
    search_fields = ["=symbol"]
    date_hierarchy = "hour"
