import json as json_module

from django.core.management.base import BaseCommand

from core.management.commands.prune import _text
from marketdata.retention import market_data_prune


class Command(BaseCommand):
    help = (
        "Delete bars past MARKETDATA_RETENTION (default 1m=30d,5m=90d,15m=180d,1h=730d,1d=forever), in "
        "batches, each its own transaction."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON")

    def handle(self, *args, dry_run=False, json=False, **options) -> None:
        report = market_data_prune(dry_run=dry_run)
        self.stdout.write(json_module.dumps(report.as_dict(), indent=2) if json else _text(report))
