"""What the sentiment commands share: print a run, exit 0 on SUCCESS and SKIPPED, 1 on FAILED."""

import json

from django.core.management.base import CommandError

from core.models import SyncStatus


def run_dict(run) -> dict:
    return {
        "sync_run": run.pk,
        "kind": run.kind,
        "status": run.status,
        "skip_reason": run.skip_reason,
        "message": run.message,
        "created": run.created,
        "updated": run.updated,
        "deleted": run.closed,
        "unchanged": run.unchanged,
        "warnings": run.warnings,
    }


def report(command, runs: list, *, as_json: bool) -> None:
    if as_json:
        command.stdout.write(json.dumps({"runs": [run_dict(r) for r in runs]}, indent=2))
    else:
        for run in runs:
            command.stdout.write(f"{run.status}: {run.message}")
            for warning in run.warnings or []:
                command.stdout.write(f"  warning: {warning}")
    failed = [r for r in runs if r.status == SyncStatus.FAILED]
    if failed:
        raise CommandError(f"{len(failed)} run(s) failed")
