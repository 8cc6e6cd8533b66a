"""``manage.py export_tax_lots --year 2026 [--account ID] [--format csv] [--output FILE]``: Form 8949 rows."""

import csv

from django.core.management.base import BaseCommand

from trading.rules.tax_lots import TAX_LOT_BASE_FIELDS, TAX_LOT_FIELDS
from trading.selectors import tax_lots_iter


class Command(BaseCommand):
    help = (
        "One CSV row per closed lot of the year in Form 8949's columns (description, dates, proceeds, cost "
        "basis, code, adjustment, gain or loss) with short/long term and wash sales flagged (an estimate), "
        "then the lot's currency and those columns in the account's base currency (proceeds at the sale "
        "date's rate, cost at the acquisition date's; empty without a rate)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--year", type=int, required=True)
        parser.add_argument("--account", default=None)
        parser.add_argument("--format", choices=["csv"], default="csv", dest="fmt")
        parser.add_argument("--output", default="-", help="a file path; - for standard output")

    def handle(self, *args, year: int, account: str | None, fmt: str, output: str, **options) -> None:
        handle = open(output, "w", newline="", encoding="utf-8") if output != "-" else self.stdout._out  # noqa: SIM115
        try:
            writer = csv.DictWriter(handle, fieldnames=(*TAX_LOT_FIELDS, *TAX_LOT_BASE_FIELDS))
            writer.writeheader()
            count = 0
            for row in tax_lots_iter(year=year, account_id=account):
                writer.writerow(row)
                count += 1
        finally:
            if output != "-":
                handle.close()
        self.stderr.write(f"{count} closed lot(s) written")
