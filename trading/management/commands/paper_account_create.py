"""``manage.py paper_account_create ID --cash 100000 [--type MARGIN|CASH] [--member USERNAME]``."""

from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from trading.models import AccountType
from trading.services.accounts import paper_account_create


class Command(BaseCommand):
    help = "Create a PAPER account (orders filled by the paper engine, never sent to a broker) with a starting deposit."

    def add_arguments(self, parser) -> None:
        parser.add_argument("account_id")
        parser.add_argument("--cash", required=True, help="starting deposit, e.g. 100000")
        parser.add_argument("--type", choices=AccountType.values, default=AccountType.MARGIN, dest="account_type")
        parser.add_argument("--member", action="append", default=[], help="a username who may see it (repeatable)")
        parser.add_argument("--name", default="")

    def handle(self, *args, account_id: str, cash: str, account_type: str, member: list[str], name: str, **options):
        try:
            amount = Decimal(cash)
        except InvalidOperation as exc:
            raise CommandError(f"--cash: {cash!r} is not a number") from exc
        users = list(get_user_model().objects.filter(username__in=member))
        missing = sorted(set(member) - {u.username for u in users})
        if missing:
            raise CommandError(f"--member: no user named {', '.join(missing)}")
        try:
            account = paper_account_create(
                account_id=account_id, cash=amount, account_type=account_type, members=users, name=name
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"paper account {account.account_id} ({account.account_type}) created with {amount} "
            f"{account.base_currency}; members: {', '.join(u.username for u in users) or 'none (staff only)'}"
        )
