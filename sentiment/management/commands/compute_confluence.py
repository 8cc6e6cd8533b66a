from django.core.management.base import BaseCommand

from core.models import SyncReason
from sentiment.management.commands._output import report
from sentiment.services.runs import confluence_run


class Command(BaseCommand):
    help = "Compute the confluence score of the current hour (every symbol with recent data, or --symbol)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--symbol", help="Only this symbol (e.g. AAPL)")
        parser.add_argument("--json", action="store_true", help="Print the run as JSON")

    def handle(self, *args, symbol: str | None = None, **options) -> None:
        symbols = [symbol.upper()] if symbol else None
        report(self, [confluence_run(symbols=symbols, reason=SyncReason.MANUAL)], as_json=options["json"])
