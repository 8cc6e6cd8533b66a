"""Reads for positions and sync status, with the joins they need and a fixed number of queries."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from portfolio.models import Position, PositionEvent, PositionStatus
from trading.models import Account, SyncKind, SyncRun, SyncStatus


def position_list(*, user, account_id: str | None = None, status: str = "open", symbol: str | None = None) -> QuerySet:
    positions = Position.objects.visible_to(user).select_related("account", "instrument")
    if status == "open":
        positions = positions.filter(status=PositionStatus.OPEN)
    elif status == "closed":
        positions = positions.filter(status=PositionStatus.CLOSED)
    if account_id:
        positions = positions.filter(account__account_id=account_id)
    if symbol:
        positions = positions.filter(instrument__symbol__iexact=symbol)
    return positions.order_by("account__account_id", "instrument__symbol", "-opened_at", "-id")


def position_event_list(*, position: Position) -> QuerySet:
    return PositionEvent.objects.filter(position=position).order_by("at", "id")


@dataclass(frozen=True)
class AccountSyncStatus:
    account: Account
    latest_run: SyncRun | None
    last_success_at: datetime | None
    in_progress: bool
    stale: bool


def sync_status_list(*, user, kind: SyncKind = SyncKind.POSITIONS) -> list[AccountSyncStatus]:
    """Per visible account: latest run, last success, whether one is running, and staleness."""
    runs = SyncRun.objects.filter(account=OuterRef("pk"), kind=kind)
    accounts = (
        Account.objects.visible_to(user)
        .annotate(
            latest_run_id=Subquery(runs.order_by("-started_at", "-id").values("pk")[:1]),
            last_success_at=Max("sync_runs__finished_at", filter=_success_filter(kind)),
            in_progress=Exists(runs.filter(status=SyncStatus.RUNNING)),
        )
        .order_by("account_id")
    )
    accounts = list(accounts)
    latest = SyncRun.objects.select_related("account").in_bulk([a.latest_run_id for a in accounts if a.latest_run_id])
    stale_before = timezone.now() - timedelta(seconds=settings.POSITION_SYNC_STALE_AFTER)
    return [
        AccountSyncStatus(
            account=a,
            latest_run=latest.get(a.latest_run_id),
            last_success_at=a.last_success_at,
            in_progress=a.in_progress,
            stale=a.last_success_at is None or a.last_success_at < stale_before,
        )
        for a in accounts
    ]


def _success_filter(kind: SyncKind) -> Q:
    return Q(sync_runs__kind=kind, sync_runs__status=SyncStatus.SUCCESS)
