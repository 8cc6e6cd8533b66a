"""What the sync commands share: the account argument, and the report of their SyncRuns."""

import json
from collections.abc import Iterable

from django.core.management.base import BaseCommand, CommandError

from core.brokers import Broker
from core.models import SkipReason, SyncRun, SyncStatus
from trading.services.accounts import AccountSelection, AccountUnknown, accounts_select


def accounts_argument(broker: Broker, account: str | None, *, ask_broker: bool = False) -> AccountSelection:
    """``--account ID`` (None: every active account) as the accounts a sync works through.

    Accounts the broker lists and the database lacks are created first (the accounts sync's rules);
    an account neither the database nor the broker knows -> error.
    """
    try:
        return accounts_select(broker=broker, account_ids=[account] if account else None, ask_broker=ask_broker)
    except AccountUnknown as exc:
        raise CommandError(str(exc)) from exc


def runs_report(
    command: BaseCommand,
    runs: Iterable[SyncRun],
    *,
    as_json: bool,
    counts: tuple[str, ...],
    selection: AccountSelection | None = None,
) -> None:
    """Print the accounts created first and one line per run (or JSON); exit 1 when a run FAILED,
    when an account could not be synced because another run of it is in progress, or when there was
    nothing to sync because the broker could not be asked; 0 otherwise (SUCCESS, or SKIPPED because
    of the broker: nothing changed, the next run catches up)."""
    runs = list(runs)
    selection = selection or AccountSelection(accounts=[])
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
    problem = "" if summary else selection.problem
    if as_json:
        report = {"accounts": {"created": selection.created, "warnings": selection.warnings}, "runs": summary}
        if problem:
            report["message"] = problem
        command.stdout.write(json.dumps(report, indent=2, default=str))
    else:
        if selection.created:
            command.stdout.write(f"accounts created from the broker: {', '.join(selection.created)}")
        for warning in selection.warnings:
            command.stdout.write(f"warning: {warning}")
        if not summary and not problem:
            command.stdout.write("no active accounts")
        for item in summary:
            figures = " ".join(f"{name}={item[name]}" for name in counts)
            command.stdout.write(
                f"{item['account']}: {item['status']} {figures} ({item['duration_ms']} ms) {item['message']}"
            )
            for warning in item["warnings"]:
                command.stdout.write(f"  warning: {warning}")
    if problem:
        raise CommandError(problem)
    if any(run.status == SyncStatus.FAILED or run.skip_reason == SkipReason.ANOTHER_RUNNING for run in runs):
        raise SystemExit(1)
