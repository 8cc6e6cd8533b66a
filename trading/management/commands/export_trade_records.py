"""``manage.py export_trade_records --format jsonl|csv [--account ID] [--since ISO] [--until ISO] [--output FILE]``.

Closed trades first, then the open ones (outcome "open"). A record failing the seed's validation is
skipped with a warning naming it on standard error, and counted. Streams: records are built a chunk
of round trips at a time and written as they come, so memory stays flat however many there are.
"""

import csv
import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from trading.fx import TRADE_RECORD_BASE_FIELDS
from trading.rules.trade_records import TRADE_RECORD_FIELDS
from trading.selectors import trade_records_iter


class Command(BaseCommand):
    help = "Write the 27-field trade record of every closed trade as JSON lines or CSV (streaming)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", dest="fmt")
        parser.add_argument("--account", default=None)
        parser.add_argument("--since", default=None, help="ISO date or time (UTC when no zone): closed at or after")
        parser.add_argument("--until", default=None, help="ISO date or time: closed before")
        parser.add_argument("--output", default="-", help="a file path; - for standard output")

    def handle(self, *args, fmt: str, account: str | None, since, until, output: str, **options) -> None:
        try:
            since_at = parse_aware_datetime(since) if since else None
            until_at = parse_aware_datetime(until) if until else None
        except ValueError as exc:
            raise CommandError(f"--since/--until: {exc}") from exc
        skipped = 0

        def invalid(record: dict, problems: list[str]) -> None:
            nonlocal skipped
            skipped += 1
            self.stderr.write(
                f"warning: skipped the trade record of {record['account_id']} {record['symbol']} opened "
                f"{record['timestamp']} (order {record['order_id'] or '-'}): {'; '.join(problems)}"
            )

        records = trade_records_iter(account_id=account, since=since_at, until=until_at, on_invalid=invalid)
        handle = open(output, "w", newline="", encoding="utf-8") if output != "-" else self.stdout._out  # noqa: SIM115
        try:
            count = write_records(records, handle, fmt)
        finally:
            if output != "-":
                handle.close()
        self.stderr.write(f"{count} trade record(s) written, {skipped} skipped as invalid")


def write_records(records, handle, fmt: str) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(handle, fieldnames=(*TRADE_RECORD_FIELDS, *TRADE_RECORD_BASE_FIELDS))
        writer.writeheader()
        for record in records:
            writer.writerow({**record, "indicators_used": ";".join(record["indicators_used"])})
            count += 1
    else:
        for record in records:
            handle.write(json.dumps(record, separators=(", ", ": ")) + "\n")
            count += 1
    return count


def parse_aware_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
