"""What the sync commands share: a ``--since`` date, progress on a terminal, the run printed, the exit code.

A sync command exits 0 when its run ended SUCCESS or SKIPPED (the broker away is not the command's
failure) and 1 when it FAILED.
"""

import json
import sys
from collections.abc import Callable
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from core.models import SyncRun, SyncStatus


def since_option(text: str | None, *, option: str = "--since") -> date | None:
    """The option's date, or a CommandError naming the option and the value."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise CommandError(f"{option}: not a date (YYYY-MM-DD): {text!r}") from None


def terminal_progress(command: BaseCommand, *, quiet: bool) -> Callable[[int, int, str], None] | None:
    """A one-line ``[done/total] label`` counter, when stdout is a terminal and the output is not JSON."""
    if quiet or not command.stdout.isatty():
        return None

    def progress(done: int, total: int, label: str) -> None:
        command.stdout.write(f"\r[{done}/{total}] {label:<60}", ending="")
        if done == total:
            command.stdout.write("")

    return progress


def run_report(command: BaseCommand, run: SyncRun, *, label: str, as_json: bool, counts=("created",)) -> None:
    """Print the run (as JSON, or a line and its warnings) and exit 1 when it FAILED."""
    summary = {"sync_run": run.pk, "status": run.status, "skip_reason": run.skip_reason}
    summary.update({name: getattr(run, name) for name in counts})
    summary.update({"message": run.message, "warnings": run.warnings})
    if as_json:
        command.stdout.write(json.dumps(summary, indent=2))
    else:
        command.stdout.write(f"{label}: {run.status} (run {run.pk}): {run.message}")
        for warning in run.warnings:
            command.stdout.write(f"  warning: {warning}")
    if run.status == SyncStatus.FAILED:
        sys.exit(1)
