from datetime import UTC, date, datetime

from django.core.management.base import BaseCommand, CommandError

from core.models import SyncReason
from sentiment.management.commands._output import report
from sentiment.services.runs import sentiment_aggregate_run


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since: not a date (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = "Rebuild hourly and windowed sentiment (default: the last two hours; --since DATE: from that day)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", help="Rebuild from this UTC date on (YYYY-MM-DD)")
        parser.add_argument("--json", action="store_true", help="Print the run as JSON")

    def handle(self, *args, since: str | None = None, **options) -> None:
        start = None
        if since:
            day = _date(since)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        report(self, [sentiment_aggregate_run(since=start, reason=SyncReason.MANUAL)], as_json=options["json"])
