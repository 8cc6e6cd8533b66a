"""What the sync commands share: the account argument, and the report of their SyncRuns."""

import json
from collections.abc import Iterable

from django.core.management.base import BaseCommand, CommandError

from core.models import SyncRun, SyncStatus
from trading.models import Account


def account_ids_argument(account: str | None) -> list[str] | None:
    """``--account ID`` as the list a service takes (None: every active account); unknown -> error."""
    if not account:
        return None
    if not Account.objects.filter(account_id=account).exists():
        known = ", ".join(Account.objects.values_list("account_id", flat=True)) or "none"
        raise CommandError(f"unknown account {account!r}; known: {known}")
    return [account]


def runs_report(command: BaseCommand, runs: Iterable[SyncRun], *, as_json: bool, counts: tuple[str, ...]) -> None:
    """Print one line per run (or JSON); exit 1 when a run FAILED, 0 on SUCCESS or SKIPPED."""
    runs = list(runs)
    summary = [
        {
            "account": run.account.account_id if run.account else None,
            "sync_run": run.pk,
            "status": run.status,
            **{name: getattr(run, name) for name in counts},
            "duration_ms": run.duration_ms,
            "warnings": run.warnings,
            "message": run.message,
        }
        for run in runs
    ]
    if as_json:
        command.stdout.write(json.dumps({"runs": summary}, indent=2, default=str))
    elif not summary:
        command.stdout.write("no active accounts")
    else:
        for item in summary:
            figures = " ".join(f"{name}={item[name]}" for name in counts)
            command.stdout.write(
                f"{item['account']}: {item['status']} {figures} ({item['duration_ms']} ms) {item['message']}"
            )
            for warning in item["warnings"]:
                command.stdout.write(f"  warning: {warning}")
    if any(run.status == SyncStatus.FAILED for run in runs):
        raise SystemExit(1)
