import argparse
import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from portfolio.models import MetricsWindow
from portfolio.services.metrics import metrics_compute, metrics_compute_series
from trading.models import Account

SUMMARY_FIELDS = [
    "daily_return",
    "daily_pnl",
    "twr",
    "drawdown",
    "max_drawdown",
    "mwr",
    "sharpe",
    "sortino",
    "round_trips",
    "win_rate",
    "profit_factor",
    "expectancy",
    "current_consecutive_losses",
    "max_consecutive_losses",
]


class Command(BaseCommand):
    help = (
        "Compute performance metrics now (both windows) and update risk events: for today's trade date, or "
        "with --since for every day with an account value from that date on (a backfill)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", help="Broker account id (default: every active account)")
        parser.add_argument("--since", type=_date, help="Backfill every day from this date (YYYY-MM-DD)")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, account: str | None = None, since: date | None = None, json: bool = False, **options):
        if account:
            accounts = list(Account.objects.filter(account_id=account))
            if not accounts:
                known = ", ".join(Account.objects.values_list("account_id", flat=True)) or "none"
                raise CommandError(f"unknown account {account!r}; known: {known}")
        else:
            accounts = list(Account.objects.filter(is_active=True))
        summary = []
        for item in accounts:
            rows = metrics_compute_series(account=item, since=since) if since else metrics_compute(account=item)
            latest = rows[-2:]  # the ALL and LAST_20 rows of the last day
            summary.append(
                {
                    "account": item.account_id,
                    "days": len(rows) // 2,
                    "as_of": latest[0].as_of.isoformat() if latest else None,
                    "windows": {row.window: {f: getattr(row, f) for f in SUMMARY_FIELDS} for row in latest},
                }
            )
        if json:
            self.stdout.write(_dumps({"accounts": summary}))
            return
        if not summary:
            self.stdout.write("no active accounts")
        for item in summary:
            if not item["windows"]:
                self.stdout.write(f"{item['account']}: no account values since {since}")
                continue
            self.stdout.write(f"{item['account']}: {item['days']} day(s) written, as of {item['as_of']}")
            for window, row in item["windows"].items():
                self.stdout.write(
                    f"  {MetricsWindow(window).label:20s} "
                    f"TWR {_pct(row['twr'])}  max DD {_pct(row['max_drawdown'])}  MWR {_pct(row['mwr'])}  "
                    f"Sharpe {_num(row['sharpe'])}  Sortino {_num(row['sortino'])}  | "
                    f"{row['round_trips']} trips, win rate {_pct(row['win_rate'])}, "
                    f"profit factor {_num(row['profit_factor'])}, expectancy {_num(row['expectancy'])}, "
                    f"losses in a row {row['current_consecutive_losses']} (max {row['max_consecutive_losses']})"
                )


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _dumps(value) -> str:
    return json.dumps(value, indent=2, default=str)
