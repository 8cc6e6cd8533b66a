"""Reads for positions and sync status, with the joins they need and a fixed number of queries."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from portfolio.models import (
    AccountSnapshot,
    AccountStatus,
    MetricsWindow,
    PerformanceMetrics,
    Position,
    PositionEvent,
    PositionStatus,
)
from trading.calendars import trade_date_of
from trading.models import Account, CashFlow, CashFlowKind, Execution, SyncKind, SyncRun, SyncStatus


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


def snapshot_list(*, user, interval: str = "hour") -> QuerySet:
    """Snapshots of visible accounts, oldest first; ``interval=day`` keeps the last one of each trade
    date (the close snapshot where there is one)."""
    snapshots = AccountSnapshot.objects.filter(account__in=Account.objects.visible_to(user)).select_related("account")
    if interval == "day":
        last_of_day = (
            AccountSnapshot.objects.filter(account=OuterRef("account"), trade_date=OuterRef("trade_date"))
            .order_by("-taken_at")
            .values("taken_at")[:1]
        )
        snapshots = snapshots.filter(taken_at=Subquery(last_of_day))
    return snapshots.order_by("account__account_id", "taken_at")


def metrics_get(*, account: Account, window: str) -> PerformanceMetrics | None:
    return PerformanceMetrics.objects.filter(account=account, window=window).order_by("-as_of").first()


@dataclass(frozen=True)
class PortfolioSummary:
    account: Account
    portfolio_value: Decimal | None
    cash_balance: Decimal | None
    positions_count: int
    daily_pnl: Decimal | None
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal
    win_rate: Decimal | None
    total_trades: int
    last_synced_at: datetime | None
    stale: bool
    source: str


def portfolio_summary_get(*, account: Account) -> PortfolioSummary:
    """The account's figures from the database only (never the broker): fast whether or not it is up."""
    status = AccountStatus.objects.filter(account=account).first()
    positions = Position.objects.filter(account=account, status=PositionStatus.OPEN).aggregate(
        count=Count("id"), unrealized=Sum("unrealized_pnl")
    )
    fills = Execution.objects.filter(account=account).aggregate(count=Count("id"), realized=Sum("realized_pnl"))
    last_success = (
        SyncRun.objects.filter(account=account, kind=SyncKind.POSITIONS, status=SyncStatus.SUCCESS)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    stale = last_success is None or last_success < timezone.now() - timedelta(
        seconds=settings.POSITION_SYNC_STALE_AFTER
    )
    metrics = metrics_get(account=account, window=MetricsWindow.ALL)
    value = status.net_liquidation if status else None
    return PortfolioSummary(
        account=account,
        portfolio_value=value,
        cash_balance=status.total_cash if status else None,
        positions_count=positions["count"],
        daily_pnl=_daily_pnl(account, value),
        unrealized_pnl=positions["unrealized"],
        realized_pnl=fills["realized"] or Decimal(0),
        win_rate=metrics.win_rate if metrics else None,
        total_trades=fills["count"],
        last_synced_at=last_success,
        stale=stale,
        source="database" if stale else "broker",
    )


def _daily_pnl(account: Account, value: Decimal | None) -> Decimal | None:
    """The change in value since the last snapshot of an earlier trade date (the previous close), less
    the deposits and withdrawals since then: a deposit is not a gain."""
    if value is None:
        return None
    today = trade_date_of(timezone.now())
    previous = (
        AccountSnapshot.objects.filter(account=account, trade_date__lt=today, net_liquidation__isnull=False)
        .order_by("-taken_at")
        .values_list("taken_at", "net_liquidation")
        .first()
    )
    if previous is None:
        return None
    since, previous_value = previous
    flows = CashFlow.objects.filter(account=account, at__gt=since).aggregate(
        deposits=Sum("amount", filter=Q(kind=CashFlowKind.DEPOSIT)),
        withdrawals=Sum("amount", filter=Q(kind=CashFlowKind.WITHDRAWAL)),
    )
    net_flow = (flows["deposits"] or Decimal(0)) - (flows["withdrawals"] or Decimal(0))
    return value - previous_value - net_flow


def metrics_history(*, account: Account, window: str = MetricsWindow.ALL, since=None) -> QuerySet:
    """Daily metrics rows (for the equity curve, drawdown and P&L charts), oldest first."""
    rows = PerformanceMetrics.objects.filter(account=account, window=window)
    if since is not None:
        rows = rows.filter(as_of__gte=since)
    return rows.order_by("as_of")
