import json
import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from core.brokers import get_broker
from core.locks import single_flight
from core.models import SyncReason, SyncStatus
from marketdata.models import BarSize
from marketdata.services.sync import market_data_sync
from marketdata.tasks import BARS_LOCK


class Command(BaseCommand):
    help = (
        "Store the missing bars and the latest quote of the named (or every watched) instrument now, whatever "
        "the time of day. A symbol nobody watches yet is created. Exits 0 on SUCCESS or SKIPPED (broker "
        "away), 1 on FAILED or when another bars sync holds the lock."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--symbol", action="append", dest="symbols", metavar="SYM", help="A stock (repeatable)")
        parser.add_argument(
            "--bar-size", action="append", dest="bar_sizes", choices=BarSize.values, help="A bar size (repeatable)"
        )
        parser.add_argument("--since", help="Backfill from this date (YYYY-MM-DD) instead of the watch's start")
        only = parser.add_mutually_exclusive_group()
        only.add_argument("--bars-only", action="store_true", help="Bars, no quotes")
        only.add_argument("--quotes-only", action="store_true", help="Quotes, no bars")
        parser.add_argument("--json", action="store_true", help="Print the run as JSON")

    def handle(self, *args, symbols=None, bar_sizes=None, since=None, bars_only=False, quotes_only=False, **options):
        try:
            since_date = date.fromisoformat(since) if since else None
        except ValueError:
            raise CommandError(f"--since: not a date (YYYY-MM-DD): {since!r}") from None
        as_json = options["json"]
        show_progress = not as_json and self.stdout.isatty()

        def progress(done: int, total: int, label: str) -> None:
            self.stdout.write(f"\r[{done}/{total}] {label:<60}", ending="")
            if done == total:
                self.stdout.write("")

        with single_flight(BARS_LOCK + ":command") as acquired:
            if not acquired:
                self.stderr.write("another sync_market_data is running; nothing done")
                sys.exit(1)
            run = market_data_sync(
                broker=get_broker(),
                symbols=symbols,
                bar_sizes=bar_sizes,
                since=since_date,
                bars=not quotes_only,
                quotes=not bars_only,
                reason=SyncReason.MANUAL,
                progress=progress if show_progress else None,
            )
        summary = {
            "sync_run": run.pk,
            "status": run.status,
            "skip_reason": run.skip_reason,
            "created": run.created,
            "updated": run.updated,
            "unchanged": run.unchanged,
            "message": run.message,
            "warnings": run.warnings,
        }
        if as_json:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(f"market data: {run.status} (run {run.pk}): {run.message}")
            for warning in run.warnings:
                self.stdout.write(f"  warning: {warning}")
        if run.status == SyncStatus.FAILED:
            sys.exit(1)
