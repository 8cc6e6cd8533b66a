from django.conf import settings
from django.core.management.base import BaseCommand

from core.models import SyncReason
from sentiment.management.commands._output import report
from sentiment.services.runs import sentiment_ingest_run
from sentiment.sources import SOURCE_NAMES


class Command(BaseCommand):
    help = "Ingest posts now: a run per source of SENTIMENT_SOURCES (or --source), scored and aggregated."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source", choices=SOURCE_NAMES, help="Only this source")
        parser.add_argument("--json", action="store_true", help="Print the runs as JSON")

    def handle(self, *args, source: str | None = None, **options) -> None:
        sources = [source] if source else settings.SENTIMENT_SOURCES
        runs = [sentiment_ingest_run(source=name, reason=SyncReason.MANUAL) for name in sources]
        report(self, runs, as_json=options["json"])
