"""``manage.py refresh_greeks``: the "Option Greeks" task once, at any hour (the task runs only while the
NYSE is open)."""

import json as jsonlib

from django.core.management.base import BaseCommand, CommandError

from core.brokers import get_broker
from core.locks import single_flight
from portfolio.services.greeks import greeks_refresh
from portfolio.tasks import GREEKS_LOCK
from trading.models import Account


class Command(BaseCommand):
    help = (
        "Refresh the Greeks of the open option positions: the broker's model Greeks where it has them, else "
        "Black-Scholes-Merton from the stored quotes. Exits 1 when another refresh is running."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", help="Broker account id (default: every active account)")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, account=None, json=False, **options) -> None:
        if account and not Account.objects.filter(account_id=account).exists():
            known = ", ".join(Account.objects.values_list("account_id", flat=True)) or "none"
            raise CommandError(f"unknown account {account!r}; known: {known}")
        with single_flight(GREEKS_LOCK) as acquired:
            if not acquired:
                raise CommandError("another Greeks refresh is running; try again in a moment")
            result = greeks_refresh(broker=get_broker(), account_ids=[account] if account else None)
        if json:
            self.stdout.write(_json_dumps(result.as_dict()))
            return
        self.stdout.write(
            f"{result.positions} option position(s): {result.from_broker} from the broker, "
            f"{result.computed} computed, {result.empty} empty; {result.entries_recorded} entry set(s) recorded"
        )
        for warning in result.warnings:
            self.stderr.write(f"warning: {warning}")


def _json_dumps(value: dict) -> str:
    return jsonlib.dumps(value, indent=2)
