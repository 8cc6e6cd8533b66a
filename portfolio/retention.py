"""What portfolio prunes (``core.pruning`` runs it): hourly snapshots, thinned to one a day.

Nothing else of portfolio is pruned: positions, their events, account status, CLOSE and MANUAL
snapshots and performance metrics are kept for good.
"""

from datetime import datetime

from django.db.models import Exists, OuterRef, QuerySet

from core.pruning import PruneStep, retention_cutoff
from portfolio.models import AccountSnapshot, SnapshotKind


def old_hourly_snapshots(now: datetime) -> QuerySet:
    """HOURLY snapshots taken before RETENTION_HOURLY_SNAPSHOTS_DAYS ago whose day keeps another value.

    A day keeps its CLOSE snapshot; a day without one with a value (weekends, holidays, a close the
    broker missed) keeps its last snapshot with a value. That is the snapshot the daily returns are
    computed from (``portfolio.services.metrics``), so metrics recomputed after a prune are the same.
    Their ``PositionSnapshot`` rows go with them (CASCADE); nothing else refers to a snapshot.
    """
    cutoff = retention_cutoff(now, "RETENTION_HOURLY_SNAPSHOTS_DAYS")
    if cutoff is None:
        return AccountSnapshot.objects.none()
    same_day = AccountSnapshot.objects.filter(
        account=OuterRef("account"), trade_date=OuterRef("trade_date"), net_liquidation__isnull=False
    )
    # Two EXISTS, each an equality probe of the (account, kind, trade_date) index.
    close = same_day.filter(kind=SnapshotKind.CLOSE)
    later = same_day.filter(kind__in=[SnapshotKind.HOURLY, SnapshotKind.MANUAL], taken_at__gt=OuterRef("taken_at"))
    return AccountSnapshot.objects.filter(kind=SnapshotKind.HOURLY, taken_at__lt=cutoff).filter(
        Exists(close) | Exists(later)
    )


PRUNE_STEPS = [
    PruneStep(
        name="hourly snapshots",
        model=AccountSnapshot,
        select=old_hourly_snapshots,
        rule=(
            "HOURLY older than RETENTION_HOURLY_SNAPSHOTS_DAYS, thinned to the day's CLOSE (or its last value); "
            "their position snapshots with them"
        ),
    ),
]
