import sys

from django.core.management.base import BaseCommand

from core.brokers import get_broker
from core.locks import single_flight
from core.management.sync_output import run_report, since_option, terminal_progress
from core.models import SyncReason
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
        since_date = since_option(since)
        as_json = options["json"]
        progress = terminal_progress(self, quiet=as_json)

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
                progress=progress,
            )
        run_report(self, run, label="market data", as_json=as_json, counts=("created", "updated", "unchanged"))
