from django.core.management.base import BaseCommand

from core.brokers import get_broker
from core.models import SyncReason
from trading.management.sync_commands import accounts_argument, runs_report
from trading.services.executions import executions_ingest_accounts


class Command(BaseCommand):
    help = (
        "Ingest fills and cash flows from the broker now, first creating the accounts the broker lists and "
        "the database lacks. Exits 0 on SUCCESS or SKIPPED (broker away), 1 when a run FAILED, an account's "
        "previous run is still in progress, or nothing could be synced."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", help="Broker account id (default: every active account)")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, account: str | None = None, json: bool = False, **options) -> None:
        broker = get_broker()
        selection = accounts_argument(broker, account)
        runs = executions_ingest_accounts(broker=broker, reason=SyncReason.MANUAL, selection=selection)
        runs_report(self, runs, as_json=json, counts=("created", "updated", "unchanged"), selection=selection)
