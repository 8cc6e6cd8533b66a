import dataclasses
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from trading.services.flex import FlexImportBusy, FlexImportError, FlexImportResult, flex_import

# What bad data raises where it is not caught row by row (the parser skips such rows with a warning).
DATA_ERRORS = (ValueError, TypeError, ArithmeticError)


class Command(BaseCommand):
    help = (
        "Import fills and deposits/withdrawals from an IBKR Flex report (XML: an Activity Flex query with "
        "Trades (executions) and Cash Transactions). A bad file or an unknown account writes nothing and exits 1."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="The Flex report, an XML file")
        parser.add_argument(
            "--progress", action="store_true", help="Show a progress bar (the default when stdout is a terminal)"
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, file: str, progress: bool = False, json: bool = False, **options) -> None:
        try:
            result = flex_import(path=file, progress=progress or self.stdout.isatty())
        except (FlexImportError, FlexImportBusy) as exc:
            raise CommandError(str(exc)) from exc
        except (DatabaseError, *DATA_ERRORS) as exc:
            # A row the parser let through and the database refused: the import is one transaction, so
            # nothing was written; the account's sync run says FAILED. --traceback shows the cause.
            raise CommandError(f"{file}: nothing imported: {type(exc).__name__}: {exc}") from exc
        if json:
            self.stdout.write(_dumps(dataclasses.asdict(result)))
            return
        for line in _summary(result):
            self.stdout.write(line)


def _summary(result: FlexImportResult):
    if not result.accounts:
        yield f"{result.source}: no account statements in the file; nothing imported"
    for warning in result.warnings:
        yield f"warning: {warning}"
    for item in result.accounts:
        ignored = ", ".join(f"{kind}: {count}" for kind, count in item.ignored_cash_transactions.items())
        yield (
            f"{item.account_id}: fills created={item.created} updated={item.updated} unchanged={item.unchanged}; "
            f"cash flows created={item.cash_flows_created} of {item.cash_flows_in_file}; "
            f"trades skipped={item.skipped_trades}; summary rows ignored={item.summary_rows}; "
            f"other cash transactions ignored={sum(item.ignored_cash_transactions.values())}"
            + (f" ({ignored})" if ignored else "")
            + f"; sync run {item.sync_run_id}"
        )
        for warning in item.warnings:
            yield f"  warning: {warning}"


def _dumps(value) -> str:
    return json.dumps(value, indent=2, default=str)
