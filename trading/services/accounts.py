"""Accounts from the broker: upserted by broker account id.

Besides the hourly accounts sync, every position sync and execution ingest creates the accounts the
broker lists and the database lacks before it starts (``accounts_select``), so the first sync on a
fresh database already syncs them.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from core.brokers import Broker, BrokerError, BrokerUnavailable
from core.brokers.base import BrokerAccount, Fetched
from core.journal import broker_skip
from core.locks import single_flight
from trading.models import Account, AccountMode, AccountType

logger = logging.getLogger(__name__)

# The single-flight lock of every accounts sync: the periodic task, the command and a sync's discovery.
ACCOUNTS_SYNC_LOCK = "trading.accounts_sync"


@dataclass
class AccountsSyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def accounts_sync(*, broker: Broker, fetched: Fetched[BrokerAccount] | None = None) -> AccountsSyncResult:
    """Create accounts the broker reports and refresh their type and currency.

    ``fetched`` is the broker's answer to ``accounts()`` when the caller already has it (a sync asks
    the broker once); without it the broker is asked here.

    A type the broker does not state (IBKR rarely does) creates the account as MARGIN, with a warning
    to check it in the admin, and never overwrites the type of an existing account.

    Accounts the broker no longer lists are left alone: their history stays, and a broker that
    answered partially must not make an account disappear. Raises BrokerUnavailable unchanged.
    """
    if fetched is None:
        fetched = broker.accounts()  # before any write: an unreachable broker changes nothing
    result = AccountsSyncResult(warnings=list(fetched.warnings))
    remote_accounts = {}
    for remote in fetched.items:
        if remote.account_id in remote_accounts:
            result.warnings.append(f"account {remote.account_id} is listed twice by the broker; second row ignored")
            continue
        remote_accounts[remote.account_id] = remote
    now = timezone.now()
    with transaction.atomic():
        existing = {
            a.account_id: a for a in Account.objects.select_for_update().filter(account_id__in=list(remote_accounts))
        }
        for remote in remote_accounts.values():
            account = existing.get(remote.account_id)
            if account is None:
                if remote.account_type is None:
                    result.warnings.append(
                        f"account {remote.account_id}: the broker does not say margin or cash; created as MARGIN, "
                        "check it in the admin"
                    )
                Account.objects.create(
                    account_id=remote.account_id,
                    account_type=remote.account_type or AccountType.MARGIN,
                    base_currency=remote.base_currency,
                    seen_at_broker_at=now,
                )
                result.created.append(remote.account_id)
                continue
            account_type = remote.account_type or account.account_type  # unknown: staff's stays
            changed = (account.account_type, account.base_currency) != (account_type, remote.base_currency)
            if changed:
                account.account_type = account_type
                account.base_currency = remote.base_currency
                account.seen_at_broker_at = now
                account.save(update_fields=["account_type", "base_currency", "seen_at_broker_at", "updated_at"])
                result.updated.append(remote.account_id)
            else:
                Account.objects.filter(pk=account.pk).update(seen_at_broker_at=now)
                result.unchanged.append(remote.account_id)
    for warning in result.warnings:
        logger.warning("accounts sync: %s", warning)
    return result


class AccountUnknown(Exception):  # noqa: N818 - reads as "this account is unknown"
    """A sync was asked for an account that neither the database nor the broker knows."""


@dataclass
class AccountSelection:
    """The accounts a sync works through, and what finding them did."""

    accounts: list[Account]  # active, by account id
    listed: dict[str, BrokerAccount] | None = None  # the broker's accounts, when it was asked and answered
    broker_error: BrokerUnavailable | BrokerError | None = None  # when it was asked and did not answer
    created: list[str] = field(default_factory=list)  # accounts created from the broker's list
    warnings: list[str] = field(default_factory=list)
    problem: str = ""  # why there is nothing to sync, when that is not just "no active accounts"


def accounts_select(
    *, broker: Broker, account_ids: Iterable[str] | None = None, ask_broker: bool = False
) -> AccountSelection:
    """The active accounts a sync works through (every one, or the ones named), by account id.

    When no ids are named, or a named one is not in the database, the broker is asked for its
    accounts (once; also with ``ask_broker``, for a caller that needs the answer anyway, which it
    finds in ``listed``), and those the database lacks are created first by ``accounts_sync`` (its
    rules, its lock). In a steady state this costs the one query that reads the accounts.

    A named account that neither the database nor the broker knows raises AccountUnknown. An
    unreachable broker is no error here: the known accounts are returned with ``broker_error`` set
    (their runs skip), and with none known ``problem`` says why nothing can be synced.
    """
    wanted = None if account_ids is None else list(dict.fromkeys(account_ids))
    rows = Account.objects.order_by("account_id")
    if wanted is not None:
        rows = rows.filter(account_id__in=wanted)
    known = list(rows)  # inactive ones too: the broker listing one is no reason to create it
    # PAPER accounts are the product's own: known (never "unknown"), but no sync asks the broker about them.
    selection = AccountSelection(accounts=[a for a in known if a.is_active and a.mode != AccountMode.PAPER])
    known_ids = {a.account_id for a in known}
    unknown_named = [] if wanted is None else [a for a in wanted if a not in known_ids]
    if wanted is not None and not unknown_named and not ask_broker:
        return selection
    try:
        fetched = broker.accounts()
    except (BrokerUnavailable, BrokerError) as exc:
        selection.broker_error = exc
        reason = broker_skip(exc)[1]
        if unknown_named:
            raise AccountUnknown(
                f"account {unknown_named[0]} is not known to the database, and the broker could not be asked "
                f"for it: {reason}"
            ) from exc
        if not known:
            selection.problem = f"no accounts in the database, and the broker could not be asked for them: {reason}"
            logger.warning("%s", selection.problem)
        return selection
    selection.listed = {a.account_id: a for a in fetched.items}
    for account_id in unknown_named:
        if account_id not in selection.listed:
            raise AccountUnknown(f"account {account_id} is not known to the database or the broker")
    missing = unknown_named if wanted is not None else sorted(selection.listed.keys() - known_ids)
    if missing:
        _create_missing(broker, fetched, missing, selection, named=wanted is not None)
        rows = Account.objects.filter(is_active=True).exclude(mode=AccountMode.PAPER).order_by("account_id")
        if wanted is not None:
            rows = rows.filter(account_id__in=wanted)
        selection.accounts = list(rows)
    return selection


def _create_missing(
    broker: Broker,
    fetched: Fetched[BrokerAccount],
    missing: list[str],
    selection: AccountSelection,
    *,
    named: bool,
) -> None:
    """Run the accounts sync on the broker's answer, under the accounts sync's lock."""
    listing = ", ".join(missing)
    with single_flight(ACCOUNTS_SYNC_LOCK) as acquired:
        if not acquired:
            if named:
                raise AccountUnknown(
                    f"account {listing} is not in the database yet and another accounts sync is running; "
                    "try again in a moment"
                )
            selection.warnings.append(
                f"the broker lists accounts the database lacks ({listing}), but another accounts sync is "
                "running; they are synced next time"
            )
            logger.info("%s", selection.warnings[-1])
            return
        try:
            result = accounts_sync(broker=broker, fetched=fetched)
        except Exception as exc:
            logger.exception("creating the broker's accounts %s failed", listing)
            if named:
                raise AccountUnknown(f"account {listing} could not be created: {type(exc).__name__}: {exc}") from exc
            selection.warnings.append(f"creating the broker's accounts {listing} failed: {type(exc).__name__}: {exc}")
            return
    selection.created = result.created
    selection.warnings.extend(result.warnings)
    if result.created:
        logger.info("created the broker's accounts %s before syncing", ", ".join(result.created))


def paper_account_create(
    *,
    account_id: str,
    cash: Decimal,
    account_type: str = AccountType.MARGIN,
    members: Iterable = (),
    name: str = "",
    at: datetime | None = None,
) -> Account:
    """A PAPER account with a starting deposit: a cash flow, so returns do not count it as a gain."""
    from trading.models import CashFlow, CashFlowKind, ExecutionSource
    from trading.services.ledger import ledger_recompute

    if cash <= 0:
        raise ValueError(f"the starting cash must be more than 0, got {cash}")
    if Account.objects.filter(account_id=account_id).exists():
        raise ValueError(f"account {account_id} exists already")
    at = at or timezone.now()
    with transaction.atomic():
        account = Account.objects.create(
            account_id=account_id, name=name, mode=AccountMode.PAPER, account_type=account_type
        )
        account.users.add(*members)
        CashFlow.objects.create(
            account=account,
            flow_id="PAPER-OPENING",
            kind=CashFlowKind.DEPOSIT,
            amount=cash,
            currency=account.base_currency,
            at=at,
            source=ExecutionSource.PAPER,
            note="paper account's starting deposit",
        )
        ledger_recompute(account=account, affected={}, cash_changed=True)
    return account
