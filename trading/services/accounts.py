"""Accounts from the broker: upserted by broker account id."""

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from core.brokers import Broker
from trading.models import Account, AccountType

logger = logging.getLogger(__name__)


@dataclass
class AccountsSyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def accounts_sync(*, broker: Broker) -> AccountsSyncResult:
    """Create accounts the broker reports and refresh their type and currency.

    A type the broker does not state (IBKR rarely does) creates the account as MARGIN, with a warning
    to check it in the admin, and never overwrites the type of an existing account.

    Accounts the broker no longer lists are left alone: their history stays, and a broker that
    answered partially must not make an account disappear. Raises BrokerUnavailable unchanged.
    """
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
