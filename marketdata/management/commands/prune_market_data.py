from django.core.management.base import BaseCommand

from core.management.commands.prune import _json, _text
from core.pruning import PRUNE_BATCH, prune
from marketdata.retention import MARKET_DATA_PRUNE_STEPS


class Command(BaseCommand):
    help = "Delete bars past MARKETDATA_RETENTION (default 1m=30d,5m=90d,15m=180d,1h=730d,1d=forever)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON")

    def handle(self, *args, dry_run=False, json=False, **options) -> None:
        report = prune(dry_run=dry_run, batch_size=PRUNE_BATCH, steps=MARKET_DATA_PRUNE_STEPS)
        self.stdout.write(_json(report) if json else _text(report))
