"""Celery tasks for trading: thin interfaces that take a lock and call one service."""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import DatabaseError, transaction

from core.brokers import BrokerUnavailable, get_broker
from core.locks import single_flight
from core.models import SkipReason, SyncReason, SyncStatus
from trading.hooks import after_fills_notify
from trading.services.accounts import ACCOUNTS_SYNC_LOCK, accounts_sync
from trading.services.executions import executions_ingest_accounts
from trading.services.ledger import settlements_mark_settled

logger = logging.getLogger(__name__)
# An ingest the listener asked for and found busy is tried again this many times, 2 s apart.
BROKER_EVENT_RETRIES = 5


@shared_task(bind=True, name="trading.accounts_sync", max_retries=3)
def accounts_sync_task(self) -> dict:
    with single_flight(ACCOUNTS_SYNC_LOCK) as acquired:
        if not acquired:
            logger.info("accounts sync: another accounts sync is running, skipping")
            return {"status": "SKIPPED", "message": "another accounts sync is running"}
        try:
            result = accounts_sync(broker=get_broker())
        except BrokerUnavailable as exc:
            # Transient by nature (gateway restart, network blip): retry with backoff.
            raise self.retry(exc=exc, countdown=min(300, 15 * 2**self.request.retries)) from exc
    return {
        "status": "SUCCESS",
        "created": result.created,
        "updated": result.updated,
        "unchanged": len(result.unchanged),
        "warnings": result.warnings,
    }


@shared_task(bind=True, name="trading.ingest_executions", max_retries=BROKER_EVENT_RETRIES)
def executions_ingest_task(self, account_ids: list[str] | None = None, reason: str = SyncReason.SCHEDULE) -> dict:
    """Ingest fills and cash flows of every active account (or the ones named); a run per account.

    Accounts that got new or changed fills are announced through ``trading.hooks`` after commit (the
    position sync registers there) so positions pick up the real realized P&L at once. An ingest the
    event listener asked for that met another ingest of the account running (which may have asked the
    broker before the fill) is tried again shortly for those accounts, so the fill is not left to the
    next periodic ingest.
    """
    runs = executions_ingest_accounts(broker=get_broker(), reason=SyncReason(reason), account_ids=account_ids)
    changed = [r.account.account_id for r in runs if r.status == SyncStatus.SUCCESS and (r.created or r.updated)]
    if changed:
        transaction.on_commit(lambda: after_fills_notify(account_ids=changed))
    busy = [r.account.account_id for r in runs if r.skip_reason == SkipReason.ANOTHER_RUNNING]
    if reason == SyncReason.BROKER_EVENT and busy and self.request.retries < BROKER_EVENT_RETRIES:
        executions_ingest_task.apply_async(
            kwargs={"account_ids": busy, "reason": reason}, countdown=2, retries=self.request.retries + 1
        )
    return {
        "status": "DONE",
        "runs": [
            {
                "sync_run": r.pk,
                "account": r.account.account_id,
                "status": r.status,
                "created": r.created,
                "updated": r.updated,
                "message": r.message,
            }
            for r in runs
        ],
    }


@shared_task(name="trading.settlements_update")
def settlements_update_task() -> dict:
    """Mark settlements whose date has come as SETTLED (daily)."""
    with single_flight("trading.settlements_update") as acquired:
        if not acquired:
            return {"status": "SKIPPED", "message": "another settlement update is running"}
        return {"status": "SUCCESS", "settled": settlements_mark_settled()}


# --- orders ------------------------------------------------------------------------------------
@shared_task(name="trading.paper_orders_on_quotes")
def paper_orders_on_quotes_task(instrument_ids: list[int]) -> dict:
    """New quotes were stored (marketdata's after-quotes hook): fill the resting paper orders they cross."""
    from trading.services.orders import paper_orders_on_quotes

    return {"status": "SUCCESS", "fills": paper_orders_on_quotes(instrument_ids=instrument_ids)}


@shared_task(name="trading.orders_expire")
def orders_expire_task() -> dict:
    """Paper DAY orders still working after their session's close become EXPIRED."""
    from trading.services.orders import orders_expire

    with single_flight("trading.orders_expire") as acquired:
        if not acquired:
            return {"status": "SKIPPED", "message": "another order expiry is running"}
        return {"status": "SUCCESS", "expired": orders_expire()}


@shared_task(bind=True, name="trading.orders_status_sync", max_retries=3)
def orders_status_sync_task(self) -> dict:
    """Reconcile working live orders with the broker (statuses, fills, orders whose answer was lost)."""
    from trading.services.orders import orders_status_sync_all

    with single_flight("trading.orders_status_sync") as acquired:
        if not acquired:
            return {"status": "SKIPPED", "message": "another order status sync is running"}
        return {"status": "SUCCESS", "accounts": orders_status_sync_all(broker=get_broker())}


# --- signals and paper trades ------------------------------------------------------------------
@shared_task(name="trading.paper_trades_monitor")
def paper_trades_monitor_task() -> dict:
    """Every minute: while the market is open (or for trades allowed outside regular hours), single-flight."""
    from trading.services.signals import MONITOR_LOCK, paper_trades_monitor

    with single_flight(MONITOR_LOCK) as acquired:
        if not acquired:
            logger.info("paper trade monitor: another monitor is running, skipping")
            return {"status": "SKIPPED", "message": "another paper trade monitor is running"}
        return {"status": "SUCCESS", **paper_trades_monitor().as_dict()}


@worker_ready.connect
def trading_session_on_worker_start(**kwargs) -> None:
    """The trading processes start: the session in force is recorded (or carried on) at once."""
    from trading.services.sessions import trading_session_current

    try:
        session = trading_session_current(started_by="worker")
    except DatabaseError as exc:  # not migrated yet, or no database: the first order starts it instead
        logger.warning("trading session: not started at worker start (%s)", exc)
        return
    logger.info("trading session in force: %s", session.session_id)
