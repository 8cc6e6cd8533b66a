"""``manage.py monitor_paper_trades [--json]``: one pass of the paper trade monitor, at any hour."""

import json

from django.core.management.base import BaseCommand

from core.locks import single_flight
from trading.services.signals import MONITOR_LOCK, paper_trades_monitor


class Command(BaseCommand):
    help = (
        "Check every open paper trade against its stored quote once (stop, target, end of day), "
        "open trades whose entry filled late, expire signals. The beat task does the same every minute."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")

    def handle(self, *args, json: bool = False, **options) -> None:
        as_json = json
        with single_flight(MONITOR_LOCK) as acquired:
            if not acquired:
                result = {"status": "SKIPPED", "message": "another paper trade monitor is running"}
            else:
                result = {"status": "SUCCESS", **paper_trades_monitor().as_dict()}
        if as_json:
            self.stdout.write(_dumps(result))
            return
        if result["status"] == "SKIPPED":
            self.stdout.write(result["message"])
            return
        closed = ", ".join(f"{k} {v}" for k, v in sorted(result["closed"].items())) or "none"
        self.stdout.write(
            f"checked {result['checked']} open trade(s); closed: {closed}; opened {result['opened']}; "
            f"signals expired {result['expired']}"
        )
        for line in result["waiting"]:
            self.stdout.write(f"  waiting: {line}")


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=True)
