import json

from django.core.management.base import BaseCommand, CommandError

from core.pruning import PRUNE_BATCH, PruneReport, prune, prune_steps


class Command(BaseCommand):
    help = (
        "Delete what is past its keeping time (RETENTION_* settings) in batches, each its own transaction: "
        "old sync runs, hourly snapshots thinned to the close, expired sessions, lapsed locks. Executions, the "
        "ledger, positions, close snapshots, metrics and history are never pruned. Prints rows per table."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON")
        parser.add_argument(
            "--batch-size", type=int, default=PRUNE_BATCH, help=f"Keys per DELETE and transaction ({PRUNE_BATCH:,})"
        )

    def handle(self, *args, dry_run=False, json=False, batch_size=PRUNE_BATCH, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        report = prune(dry_run=dry_run, batch_size=batch_size)
        self.stdout.write(_json(report) if json else _text(report))


def _text(report: PruneReport) -> str:
    deleted = "would be deleted" if report.dry_run else "deleted"
    unlinked = "would be set to NULL" if report.dry_run else "set to NULL"
    width = max(map(len, [*report.deleted, *report.unlinked]), default=0)
    title = f"prune as of {report.now:%Y-%m-%d %H:%M:%S %Z}"
    lines = [title + (" (dry run: nothing deleted)" if report.dry_run else "")]
    lines += [f"  {label:{width}s} {rows:>12,d} {deleted}" for label, rows in report.deleted.items()]
    lines += [f"  {label:{width}s} {rows:>12,d} {unlinked}" for label, rows in report.unlinked.items()]
    steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.step_seconds.items())
    lines.append(f"{sum(report.deleted.values()):,d} rows {deleted} in {report.seconds:.1f} s ({steps})")
    if not report.complete:
        lines.append("stopped before the end (time budget): the next prune goes on")
    lines.append("rules:")
    lines += [f"  {step.name}: {step.rule}" for step in prune_steps()]
    return "\n".join(lines)


def _json(report: PruneReport) -> str:
    return json.dumps(report.as_dict(), indent=2)
