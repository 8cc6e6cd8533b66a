from django.core.management.base import BaseCommand, CommandError

from marketdata.models import Instrument
from portfolio.services.holdings import positions_build_from_fills
from trading.models import Account


class Command(BaseCommand):
    help = (
        "Rebuild an account's positions from all its fills (one position per flat-to-flat holding, events at the "
        "fills' times) and print what differs: created, changed, closed and removed positions. Existing positions "
        "keep their keys and their events where the holding is the same. --dry-run writes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", required=True, help="Broker account id")
        parser.add_argument("--dry-run", action="store_true", help="Work it out and print it; write nothing")

    def handle(self, *args, account: str, dry_run: bool = False, **options) -> None:
        found = Account.objects.filter(account_id=account).first()
        if found is None:
            raise CommandError(f"unknown account {account!r}")
        result = positions_build_from_fills(account=found, dry_run=dry_run)
        if not result.instruments:
            self.stdout.write(f"{account}: the ledger has no fills for it; its positions come from the broker sync")
            return
        symbols = dict(
            Instrument.objects.filter(pk__in={c.instrument_id for c in result.changes}).values_list("pk", "symbol")
        )
        for change in result.changes:
            closed = f" closed {change.closed_at:%Y-%m-%d %H:%M:%S}" if change.closed_at else " open"
            fields = f" ({', '.join(change.fields)})" if change.fields else ""
            pid = "(new)" if change.action == "created" and dry_run else change.position_id
            self.stdout.write(
                f"  {change.action:8s} {symbols.get(change.instrument_id, change.instrument_id):10s} "
                f"position {pid}: opened {change.opened_at:%Y-%m-%d %H:%M:%S}{closed}, "
                f"quantity {change.quantity.normalize():f}, realized {change.realized_pnl}{fields}"
            )
        verb = "would be" if dry_run else "were"
        summary = (
            f"{account}: {result.instruments} instruments; {result.created} positions {verb} created, "
            f"{result.changed} changed, {result.closed} closed, {result.removed} removed; "
            f"{result.events_written} fill events {verb} written, {result.events_removed} removed; "
            f"{result.reconciles_resolved} differences with the broker resolved"
        )
        if not result.wrote_anything:
            summary = f"{account}: {result.instruments} instruments; positions already agree with the fills"
        self.stdout.write(summary + (" (dry run: nothing written)" if dry_run else ""))
