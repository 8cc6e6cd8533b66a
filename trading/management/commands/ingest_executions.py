import json

from django.core.management.base import BaseCommand, CommandError

from trading.brokers import get_broker
from trading.models import Account, SyncReason, SyncStatus
from trading.services.executions import executions_ingest_accounts


class Command(BaseCommand):
    help = "Ingest fills and cash flows from the broker now. Exits 0 on SUCCESS or SKIPPED, 1 when a run FAILED."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", help="Broker account id (default: every active account)")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, account: str | None = None, json: bool = False, **options) -> None:
        if account and not Account.objects.filter(account_id=account).exists():
            known = ", ".join(Account.objects.values_list("account_id", flat=True)) or "none"
            raise CommandError(f"unknown account {account!r}; known: {known}")
        runs = executions_ingest_accounts(
            broker=get_broker(), reason=SyncReason.MANUAL, account_ids=[account] if account else None
        )
        summary = [
            {
                "account": run.account.account_id,
                "sync_run": run.pk,
                "status": run.status,
                "created": run.created,
                "updated": run.updated,
                "unchanged": run.unchanged,
                "duration_ms": run.duration_ms,
                "warnings": run.warnings,
                "message": run.message,
            }
            for run in runs
        ]
        if json:
            self.stdout.write(_dumps({"runs": summary}))
        else:
            for item in summary:
                self.stdout.write(
                    f"{item['account']}: {item['status']} created={item['created']} updated={item['updated']} "
                    f"unchanged={item['unchanged']} ({item['duration_ms']} ms) {item['message']}"
                )
                for warning in item["warnings"]:
                    self.stdout.write(f"  warning: {warning}")
        if any(run.status == SyncStatus.FAILED for run in runs):
            raise SystemExit(1)


def _dumps(value) -> str:
    return json.dumps(value, indent=2, default=str)
