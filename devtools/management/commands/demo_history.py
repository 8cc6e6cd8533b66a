"""``manage.py demo_history``: a year (or --days) of hourly and daily-close snapshots for the demo accounts."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from devtools.demo import CASH_ACCOUNT_ID, DEFAULT_SEED, MARGIN_ACCOUNT_ID
from devtools.demo_history import demo_history_build
from trading.models import Account

DEMO_ACCOUNTS = (MARGIN_ACCOUNT_ID, CASH_ACCOUNT_ID)


class Command(BaseCommand):
    help = (
        "Write made-up hourly and CLOSE snapshots for the demo accounts, ending at their current value. "
        "Safe to run again: it only fills time before an account's first snapshot."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=365, help="How far back from now (default 365)")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Seed of the random walk")

    def handle(self, *args, days: int = 365, seed: int = DEFAULT_SEED, **options) -> None:
        # Invented values must never land next to a real broker's accounts.
        if settings.BROKER != "simulated":
            raise CommandError(f"demo_history needs BROKER=simulated (it is {settings.BROKER!r})")
        if days < 1:
            raise CommandError(f"--days must be at least 1, got {days}")
        accounts = list(Account.objects.filter(account_id__in=DEMO_ACCOUNTS).order_by("account_id"))
        if not accounts:
            raise CommandError(f"no demo account ({', '.join(DEMO_ACCOUNTS)}): run demo_setup first")
        now = timezone.now()
        for account in accounts:
            result = demo_history_build(account=account, end=now, days=days, seed=seed)
            if not result.created:
                self.stdout.write(f"{account.account_id}: nothing to add (history already there)")
                continue
            self.stdout.write(
                f"{account.account_id}: {result.created} snapshots from {result.first:%Y-%m-%d %H:%M} "
                f"to {result.last:%Y-%m-%d %H:%M} UTC"
            )
            if result.funded_at:
                self.stdout.write(
                    f"  starts after the deposit of {result.funded_at:%Y-%m-%d %H:%M} UTC that funded the account"
                )
