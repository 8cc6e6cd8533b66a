"""Import an IBKR Flex report's fills and deposits/withdrawals into the ledger.

The broker boundary's parser (``core.brokers.flex``) reads the file into ``BrokerExecution`` and
``BrokerCashFlow`` rows, normalised as the API's are (see its docstring for IBKR's Flex quirks); this
service checks the accounts and writes the rows through the executions services, one ``SyncRun``
per account. Flex ``ibExecID`` is the API's ``execId``, so a fill seen by both is one row (namespace
``ibkr``).

Parsing comes first and is all or nothing: a file that is missing, not XML, not a Flex report, or
has a trade or deposit ibflex cannot convert raises ``FlexImportError`` before anything is written.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from tqdm import tqdm

from core.brokers.base import BrokerExecution
from core.brokers.expiries import settlement_leg_of
from core.brokers.flex import FlexAccountRows, FlexReportError, FlexStatementData, flex_parse
from core.journal import sync_run_finish, sync_run_start
from core.models import SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus
from trading.models import Account, ExecutionSource
from trading.services.executions import IngestResult, cash_flows_upsert, executions_upsert
from trading.services.ledger import ledger_recompute
from trading.services.option_settlements import option_settlements_record

logger = logging.getLogger(__name__)

BROKER_NAME = "ibkr"  # the API's namespace: Flex ibExecID is the API's execId
UPSERT_CHUNK = 5000


class FlexImportError(ValueError):
    """The file cannot be imported (unreadable, not a Flex report, a bad field, an unknown account).

    Raised before anything is written.
    """


class FlexImportBusy(RuntimeError):  # noqa: N818 - a state, like BrokerUnavailable
    """Another execution sync of an account in the file is running; nothing was imported."""


@dataclass
class FlexAccountSummary:
    account_id: str
    sync_run_id: int
    fills_in_file: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    disagreements: int = 0
    cash_flows_in_file: int = 0
    cash_flows_created: int = 0
    skipped_trades: int = 0
    summary_rows: int = 0
    ignored_cash_transactions: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class FlexImportResult:
    source: str
    accounts: list[FlexAccountSummary] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about the file, not one account


def flex_import(*, path: str | Path, progress: bool = False) -> FlexImportResult:
    """Import a Flex report's fills and deposits/withdrawals, all accounts in one transaction.

    The file is parsed and its accounts checked before anything is written. Each account gets a
    SyncRun (kind EXECUTIONS, reason MANUAL), which is also its single-flight lock against a
    concurrent broker ingest. Importing the same file again writes no fill or cash flow.
    """
    try:
        data = flex_parse(path_or_bytes=path)
    except FlexReportError as exc:
        raise FlexImportError(str(exc)) from exc
    source = data.source
    accounts = _accounts_of(data)
    result = FlexImportResult(source=source, warnings=list(data.warnings))
    runs = _runs_start(accounts, source)
    try:
        with (
            transaction.atomic(),
            tqdm(total=len(data.executions), unit="fill", desc="flex import", disable=not progress) as bar,
        ):
            for account_id, account in accounts.items():
                summary = _import_account(
                    account=account, rows=data.accounts[account_id], run=runs[account_id], data=data, bar=bar
                )
                result.accounts.append(summary)
    except Exception as exc:
        logger.exception("flex import of %s failed", source)
        for run in runs.values():
            sync_run_finish(
                run=run,
                status=SyncStatus.FAILED,
                message=f"flex import of {source} failed: {type(exc).__name__}: {exc}",
            )
        raise
    for warning in result.warnings:
        logger.warning("flex import %s: %s", source, warning)
    for summary in result.accounts:
        for warning in summary.warnings:
            logger.warning("flex import %s %s: %s", source, summary.account_id, warning)
    return result


def _accounts_of(data: FlexStatementData) -> dict[str, Account]:
    known = {a.account_id: a for a in Account.objects.filter(account_id__in=list(data.accounts))}
    unknown = [account_id for account_id in data.accounts if account_id not in known]
    if len(unknown) == 1:
        raise FlexImportError(
            f"{data.source}: account {unknown[0]} in the file is not known; "
            "run the accounts sync or add it in the admin"
        )
    if unknown:
        raise FlexImportError(
            f"{data.source}: accounts {', '.join(unknown)} in the file are not known; "
            "run the accounts sync or add them in the admin"
        )
    return {account_id: known[account_id] for account_id in data.accounts}


def _runs_start(accounts: dict[str, Account], source: str) -> dict[str, SyncRun]:
    """One RUNNING SyncRun per account, in account order; none started when any account is busy."""
    runs: dict[str, SyncRun] = {}
    for account_id, account in accounts.items():
        run, started = sync_run_start(kind=SyncKind.EXECUTIONS, account=account, reason=SyncReason.MANUAL)
        if not started:
            for other in runs.values():
                sync_run_finish(
                    run=other,
                    status=SyncStatus.SKIPPED,
                    skip_reason=SkipReason.ANOTHER_RUNNING,
                    message=f"flex import of {source} not run: another execution sync of {account_id} is running",
                )
            raise FlexImportBusy(
                f"{source}: another execution sync of {account_id} is running; nothing imported, try again later"
            )
        runs[account_id] = run
    return runs


def _import_account(
    *, account: Account, rows: FlexAccountRows, run: SyncRun, data: FlexStatementData, bar: tqdm
) -> FlexAccountSummary:
    total = IngestResult()
    bar.set_postfix_str(account.account_id)
    # Expiries, exercises and assignments are recorded as events (they may replace what the position
    # sync inferred), after the fills that opened the options.
    fills = [row for row in rows.executions if settlement_leg_of(row.exec_id) is None]
    settlements: dict[str, list[BrokerExecution]] = {}
    for row in rows.executions:
        if settlement_leg_of(row.exec_id) is not None:
            settlements.setdefault(row.exec_id.rsplit("-", 1)[0], []).append(row)
    for start in range(0, len(fills), UPSERT_CHUNK):
        chunk = fills[start : start + UPSERT_CHUNK]
        _merge(
            total,
            executions_upsert(account=account, rows=chunk, broker_name=BROKER_NAME, source=ExecutionSource.FLEX),
        )
        bar.update(len(chunk))
    new_flows = cash_flows_upsert(account=account, rows=rows.cash_flows, source=ExecutionSource.FLEX)
    ledger_recompute(account=account, affected=total.affected, cash_changed=bool(new_flows))
    settled = option_settlements_record(account=account, events=list(settlements.values()), source=ExecutionSource.FLEX)
    total.created += settled.created
    total.updated += settled.updated
    total.unchanged += settled.unchanged
    total.disagreements += settled.disagreements
    total.warnings += settled.warnings
    bar.update(sum(len(legs) for legs in settlements.values()))
    account_warnings = [*rows.warnings, *total.warnings]
    ignored = dict(sorted(rows.ignored_cash_transactions.items()))
    message = (
        f"flex import of {data.source}: {len(rows.executions)} fills, {new_flows} new cash flows of "
        f"{len(rows.cash_flows)}; {rows.skipped_trades} trades skipped, {rows.summary_rows} summary rows and "
        f"{sum(ignored.values())} other cash transactions ignored; {total.disagreements} disagreements with "
        "staff corrections or inferred option settlements"
    )
    sync_run_finish(
        run=run,
        status=SyncStatus.SUCCESS,
        message=message,
        warnings=[*data.warnings, *account_warnings],
        created=total.created,
        updated=total.updated,
        unchanged=total.unchanged,
    )
    return FlexAccountSummary(
        account_id=account.account_id,
        sync_run_id=run.pk,
        fills_in_file=len(rows.executions),
        created=total.created,
        updated=total.updated,
        unchanged=total.unchanged,
        disagreements=total.disagreements,
        cash_flows_in_file=len(rows.cash_flows),
        cash_flows_created=new_flows,
        skipped_trades=rows.skipped_trades,
        summary_rows=rows.summary_rows,
        ignored_cash_transactions=ignored,
        warnings=account_warnings,
    )


def _merge(total: IngestResult, part: IngestResult) -> None:
    total.created += part.created
    total.updated += part.updated
    total.unchanged += part.unchanged
    total.disagreements += part.disagreements
    total.warnings += part.warnings
    for instrument_id, at in part.affected.items():
        total.touch(instrument_id, at)
