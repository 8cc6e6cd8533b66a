"""Accounts from the broker: upserted by broker account id."""

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from trading.brokers import Broker
from trading.models import Account

logger = logging.getLogger(__name__)


@dataclass
class AccountsSyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def accounts_sync(*, broker: Broker) -> AccountsSyncResult:
    """Create accounts the broker reports and refresh their type and currency.

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
                Account.objects.create(
                    account_id=remote.account_id,
                    account_type=remote.account_type,
                    base_currency=remote.base_currency,
                    seen_at_broker_at=now,
                )
                result.created.append(remote.account_id)
                continue
            changed = (account.account_type, account.base_currency) != (
                remote.account_type,
                remote.base_currency,
            )
            if changed:
                account.account_type = remote.account_type
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
