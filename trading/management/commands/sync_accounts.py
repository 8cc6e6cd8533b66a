import json as json_module

from django.core.management.base import BaseCommand, CommandError

from core.brokers import BrokerError, BrokerUnavailable, get_broker
from core.journal import broker_skip
from core.locks import single_flight
from trading.services.accounts import ACCOUNTS_SYNC_LOCK, accounts_sync


class Command(BaseCommand):
    help = (
        "Create the accounts the broker lists and refresh their type and currency now. Exits 0 on SUCCESS or "
        "SKIPPED (another accounts sync is running), 1 when the broker is unreachable or the request failed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, json: bool = False, **options) -> None:
        report = {"status": "SUCCESS", "created": [], "updated": [], "unchanged": [], "warnings": [], "message": ""}
        # The periodic task's lock: a command and the task never sync accounts at the same time.
        with single_flight(ACCOUNTS_SYNC_LOCK) as acquired:
            if not acquired:
                report.update(status="SKIPPED", message="another accounts sync is running")
            else:
                try:
                    result = accounts_sync(broker=get_broker())
                except (BrokerUnavailable, BrokerError) as exc:
                    report.update(status="FAILED", message=broker_skip(exc)[1])
                else:
                    report.update(
                        created=result.created,
                        updated=result.updated,
                        unchanged=result.unchanged,
                        warnings=result.warnings,
                    )
        if json:
            self.stdout.write(json_module.dumps(report, indent=2))
        else:
            self._text(report)
        if report["status"] == "FAILED":
            raise CommandError(report["message"])

    def _text(self, report: dict) -> None:
        if report["status"] != "SUCCESS":
            if report["status"] == "SKIPPED":
                self.stdout.write(f"accounts: SKIPPED {report['message']}")
            return  # FAILED: the reason goes to stderr
        figures = " ".join(f"{name}={len(report[name])}" for name in ("created", "updated", "unchanged"))
        self.stdout.write(f"accounts: SUCCESS {figures}")
        for name in ("created", "updated", "unchanged"):
            for account_id in report[name]:
                self.stdout.write(f"  {name}: {account_id}")
        for warning in report["warnings"]:
            self.stdout.write(f"  warning: {warning}")
