"""Celery tasks for portfolio: thin interfaces that take ids, a lock, and call one service."""

import logging
from datetime import datetime

from celery import shared_task
from django.utils import timezone

from core.brokers import get_broker
from core.journal import sync_run_claim, sync_run_isolated
from core.locks import single_flight
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from portfolio.models import SnapshotKind
from portfolio.selectors import positions_past_expiry
from portfolio.services.greeks import greeks_refresh
from portfolio.services.holdings import positions_build_pending
from portfolio.services.metrics import metrics_compute
from portfolio.services.snapshots import close_snapshot_due, close_snapshots_take, snapshots_take_all
from portfolio.services.sync import positions_sync_accounts, positions_sync_execute
from trading.calendars import market_is_open
from trading.models import Account, AccountMode

logger = logging.getLogger(__name__)


def _summary(run: SyncRun) -> dict:
    return {
        "sync_run": run.pk,
        "account": run.account.account_id if run.account else None,
        "status": run.status,
        "message": run.message,
    }


@shared_task(name="portfolio.sync_positions")
def positions_sync_task(account_ids: list[str] | None = None, reason: str = SyncReason.SCHEDULE) -> dict:
    """Sync positions of every active account (or the ones named). Each account is its own run.

    Broker outages are recorded as SKIPPED runs, not retried here: the next tick retries.
    """
    with single_flight("portfolio.sync_positions" + (":" + ",".join(sorted(account_ids)) if account_ids else "")) as ok:
        if not ok:
            logger.info("position sync: another sync of these accounts is running, skipping")
            return {"status": "SKIPPED", "message": "another sync is running"}
        runs = positions_sync_accounts(broker=get_broker(), reason=SyncReason(reason), account_ids=account_ids)
    return {"status": "DONE", "runs": [_summary(run) for run in runs]}


@shared_task(name="portfolio.option_expiries")
def option_expiries_task(now: str | None = None) -> dict:
    """Shortly after the close: sync the accounts holding options past their expiry session's close, so
    the ones the broker no longer lists are settled (expired, exercised or assigned) without waiting
    for the next position sync. ``now`` (ISO 8601 with a zone) replays a given moment."""
    moment = datetime.fromisoformat(now) if now else timezone.now()
    account_ids = sorted({p.account.account_id for p in positions_past_expiry(now=moment)})
    if not account_ids:
        return {"status": "NOT_DUE"}
    with single_flight("portfolio.option_expiries") as acquired:
        if not acquired:
            logger.info("option expiries: another run is going on, skipping")
            return {"status": "SKIPPED", "message": "another option expiries run is going on"}
        runs = positions_sync_accounts(broker=get_broker(), reason=SyncReason.SCHEDULE, account_ids=account_ids)
    return {"status": "DONE", "runs": [_summary(run) for run in runs]}


@shared_task(name="portfolio.sync_positions_run")
def positions_sync_run_task(sync_run_id: int) -> dict:
    """Carry out a run that the API or the admin queued (and answered with its id).

    Delivered twice (a worker died and Redis handed the task on), it carries on a run whose holder
    is gone and leaves alone one that a live worker still has.
    """
    run = SyncRun.objects.select_related("account").filter(pk=sync_run_id).first()
    if run is None or run.status != SyncStatus.RUNNING:
        return {"sync_run": sync_run_id, "status": "SKIPPED", "message": "run is not RUNNING any more"}

    def carry_out() -> SyncRun:
        if not sync_run_claim(run=run):
            return run
        return positions_sync_execute(run=run, broker=get_broker())

    done = sync_run_isolated(carry_out, kind=SyncKind.POSITIONS, account=run.account, reason=SyncReason(run.reason))
    if done.status == SyncStatus.RUNNING:
        return {"sync_run": sync_run_id, "status": "SKIPPED", "message": "another worker is carrying the run out"}
    return _summary(done)


@shared_task(name="portfolio.after_fills")
def positions_after_fills_task(account_ids: list[str], sync: bool = True) -> dict:
    """New fills arrived: build the accounts' positions from them, after a position sync when
    POSITION_SYNC_ON_TRADE is on (the sync builds first, then compares with the broker)."""
    runs = []
    # A PAPER account's fills are the paper engine's: there is no broker to sync it with.
    live_ids = list(
        Account.objects.filter(account_id__in=account_ids)
        .exclude(mode=AccountMode.PAPER)
        .values_list("account_id", flat=True)
    )
    if sync and live_ids:
        runs = positions_sync_accounts(broker=get_broker(), reason=SyncReason.AFTER_TRADE, account_ids=live_ids)
    # Whatever the sync did not catch up on (it was skipped, or is off); nothing left costs a query.
    built, failed = {}, []
    for account in Account.objects.filter(account_id__in=account_ids).order_by("account_id"):
        try:
            result = positions_build_pending(account=account)
        except Exception:
            logger.exception("building the positions of %s from its fills failed", account.account_id)
            failed.append(account.account_id)
            continue
        built[account.account_id] = {"created": result.created, "changed": result.changed, "closed": result.closed}
    return {
        "status": "DONE" if not failed else "PARTIAL",
        "runs": [_summary(run) for run in runs],
        "built": built,
        "failed": failed,
    }


# --- account snapshots -------------------------------------------------------------------------
def _snapshot_summary(snapshot) -> dict:
    return {
        "snapshot": snapshot.pk,
        "account": snapshot.account.account_id,
        "taken_at": snapshot.taken_at.isoformat(),
        "kind": snapshot.kind,
        "source": snapshot.source,
        "net_liquidation": None if snapshot.net_liquidation is None else str(snapshot.net_liquidation),
    }


@shared_task(name="portfolio.snapshot_portfolio")
def portfolio_snapshot_task(account_ids: list[str] | None = None) -> dict:
    """Hourly: snapshot every active account (or the ones named). A broker outage gives COMPUTED
    snapshots, not retries: they are what the account was worth as far as anyone can tell."""
    with single_flight("portfolio.snapshot_portfolio") as acquired:
        if not acquired:
            logger.info("portfolio snapshot: another snapshot run is going on, skipping")
            return {"status": "SKIPPED", "message": "another snapshot run is going on"}
        snapshots = snapshots_take_all(broker=get_broker(), kind=SnapshotKind.HOURLY, account_ids=account_ids)
    return {"status": "DONE", "snapshots": [_snapshot_summary(s) for s in snapshots]}


@shared_task(name="portfolio.close_snapshot")
def close_snapshot_task(now: str | None = None) -> dict:
    """Every few minutes: once the NYSE session has closed, the CLOSE snapshot of each account that
    lacks one, stamped at the close. ``now`` (ISO 8601 with a zone) replays a given moment."""
    moment = datetime.fromisoformat(now) if now else timezone.now()
    if close_snapshot_due(now=moment) is None:
        return {"status": "NOT_DUE"}
    with single_flight("portfolio.close_snapshot") as acquired:
        if not acquired:
            logger.info("close snapshot: another close snapshot run is going on, skipping")
            return {"status": "SKIPPED", "message": "another close snapshot run is going on"}
        snapshots = close_snapshots_take(broker=get_broker(), now=moment)
    if snapshots:
        # A new close is a new day of returns: bring the metrics up to date right away.
        metrics_compute_task.delay(account_ids=sorted({s.account.account_id for s in snapshots}))
    return {"status": "DONE", "snapshots": [_snapshot_summary(s) for s in snapshots]}


# --- performance metrics -----------------------------------------------------------------------
@shared_task(name="portfolio.compute_metrics")
def metrics_compute_task(account_ids: list[str] | None = None) -> dict:
    """Today's PerformanceMetrics of every active account (or the ones named); opens and resolves
    risk events. One account's failure is logged and does not stop the others."""
    with single_flight("portfolio.compute_metrics") as acquired:
        if not acquired:
            logger.info("metrics: another metrics run is going on, skipping")
            return {"status": "SKIPPED", "message": "another metrics run is going on"}
        accounts = Account.objects.filter(is_active=True)
        if account_ids:
            accounts = accounts.filter(account_id__in=account_ids)
        done, failed = [], []
        for account in accounts.order_by("account_id"):
            try:
                metrics_compute(account=account)
                done.append(account.account_id)
            except Exception:
                logger.exception("metrics of %s failed", account.account_id)
                failed.append(account.account_id)
    return {"status": "DONE" if not failed else "PARTIAL", "computed": done, "failed": failed}


# --- option Greeks -----------------------------------------------------------------------------
GREEKS_LOCK = "portfolio.refresh_greeks"


@shared_task(name="portfolio.refresh_greeks")
def greeks_refresh_task(account_ids: list[str] | None = None, force: bool = False) -> dict:
    """Every 30 s: the Greeks of the open option positions, while the NYSE is open (``force``: at any
    hour). Single-flight: a tick that finds the last one still running is skipped."""
    if not force and not market_is_open(timezone.now()):
        return {"status": "NOT_DUE", "message": "the market is closed"}
    with single_flight(GREEKS_LOCK) as acquired:
        if not acquired:
            logger.info("option Greeks: another refresh is running, skipping")
            return {"status": "SKIPPED", "message": "another Greeks refresh is running"}
        result = greeks_refresh(broker=get_broker(), account_ids=account_ids)
    return {"status": "DONE", **result.as_dict()}
