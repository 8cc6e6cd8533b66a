from django.core.management.base import BaseCommand

from core.brokers import get_broker
from core.models import SyncReason
from trading.management.sync_commands import account_ids_argument, runs_report
from trading.services.executions import executions_ingest_accounts


class Command(BaseCommand):
    help = "Ingest fills and cash flows from the broker now. Exits 0 on SUCCESS or SKIPPED, 1 when a run FAILED."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", help="Broker account id (default: every active account)")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, account: str | None = None, json: bool = False, **options) -> None:
        account_ids = account_ids_argument(account)
        runs = executions_ingest_accounts(broker=get_broker(), reason=SyncReason.MANUAL, account_ids=account_ids)
        runs_report(self, runs, as_json=json, counts=("created", "updated", "unchanged"))
