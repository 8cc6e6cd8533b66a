import json
import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from core.brokers import get_broker
from core.locks import single_flight
from core.models import SyncReason, SyncStatus
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

        with single_flight(FX_RATES_LOCK + ":command") as acquired:
            if not acquired:
                self.stderr.write("another sync_fx_rates is running; nothing done")
                sys.exit(1)
            run = fx_rates_sync(
                broker=get_broker(),
                since=since_date,
                reason=SyncReason.MANUAL,
                progress=progress if show_progress else None,
            )
        summary = {
            "sync_run": run.pk,
            "status": run.status,
            "skip_reason": run.skip_reason,
            "created": run.created,
            "message": run.message,
            "warnings": run.warnings,
        }
        if as_json:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(f"exchange rates: {run.status} (run {run.pk}): {run.message}")
            for warning in run.warnings:
                self.stdout.write(f"  warning: {warning}")
        if run.status == SyncStatus.FAILED:
            sys.exit(1)
