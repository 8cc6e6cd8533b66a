from django.core.management.base import BaseCommand

from sentiment.services.aggregation import sentiment_aggregate
from sentiment.services.posts import current_lexicon, posts_rescore


class Command(BaseCommand):
    help = (
        "Rescore every post scored with another lexicon than the current one (after a lexicon change: "
        "SENTIMENT_FINANCE_LEXICON or a new FINANCE_LEXICON_VERSION), then rebuild the aggregates."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-aggregate", action="store_true", help="Do not rebuild the aggregates")

    def handle(self, *args, **options) -> None:
        count = posts_rescore()
        self.stdout.write(f"{count} post(s) rescored with {current_lexicon()}")
        if count and not options["no_aggregate"]:
            from sentiment.models import Mention

            first = Mention.objects.order_by("at").values_list("at", flat=True).first()
            if first is not None:
                result = sentiment_aggregate(since=first)
                self.stdout.write(f"aggregates rebuilt: {result.hourly_rows} hourly, {result.window_rows} window rows")
