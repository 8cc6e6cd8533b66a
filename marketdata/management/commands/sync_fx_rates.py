import sys

from django.core.management.base import BaseCommand

from core.brokers import get_broker
from core.locks import single_flight
from core.management.sync_output import run_report, since_option, terminal_progress
from core.models import SyncReason
from marketdata.services.fx import fx_rates_sync
from marketdata.tasks import FX_RATES_LOCK


class Command(BaseCommand):
    help = (
        "Backfill the missing past daily exchange rates of every currency the ledger holds (to each account's "
        "base currency), from each pair's first fill or --since. Exits 0 on SUCCESS or SKIPPED (broker away), "
        "1 on FAILED or when another exchange rates sync holds the lock."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", help="Backfill from this date (YYYY-MM-DD) instead of each pair's first fill")
        parser.add_argument("--json", action="store_true", help="Print the run as JSON")

    def handle(self, *args, since=None, **options):
        since_date = since_option(since)
        as_json = options["json"]
        progress = terminal_progress(self, quiet=as_json)

        with single_flight(FX_RATES_LOCK + ":command") as acquired:
            if not acquired:
                self.stderr.write("another sync_fx_rates is running; nothing done")
                sys.exit(1)
            run = fx_rates_sync(
                broker=get_broker(),
                since=since_date,
                reason=SyncReason.MANUAL,
                progress=progress,
            )
        run_report(self, run, label="exchange rates", as_json=as_json)
