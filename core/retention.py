"""What core prunes (``core.pruning`` runs it): old sync runs, old alerts, expired sessions, lapsed locks.

Ages come from the RETENTION_* settings; 0 turns a rule off. Nothing else of core is pruned.
"""

import operator
from datetime import datetime
from functools import reduce

from django.apps import apps
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber

from core.models import Alert, DeliveryStatus, SyncKind, SyncRun, SyncStatus, TaskLock
from core.pruning import PruneStep, retention_cutoff


def old_sync_runs(now: datetime) -> QuerySet:
    """Runs started before RETENTION_SYNC_RUNS_DAYS (FAILED ones: RETENTION_FAILED_RUNS_DAYS) ago,
    except each account's last run of each kind, whatever its age: it says when that kind of work
    last ran for the account. "Last" is the latest start (the higher id on a tie); runs without an
    account are a group of their own per kind. Events that point at a pruned run keep existing with
    no run (``PositionEvent.sync_run`` is SET_NULL).
    """
    runs_before = retention_cutoff(now, "RETENTION_SYNC_RUNS_DAYS")
    failed_before = retention_cutoff(now, "RETENTION_FAILED_RUNS_DAYS")
    old = []
    if runs_before is not None:
        old.append(Q(started_at__lt=runs_before) & ~Q(status=SyncStatus.FAILED))
    if failed_before is not None:
        old.append(Q(started_at__lt=failed_before, status=SyncStatus.FAILED))
    if not old:
        return SyncRun.objects.none()
    return SyncRun.objects.filter(reduce(operator.or_, old)).exclude(pk__in=last_runs())


def last_runs() -> list[int]:
    """The ids of each account's last run of each kind, and of the last run of each kind without one.

    Read once per prune, in two queries: per account an index probe per kind
    (``syncrun_account_kind_started``), and the few runs without an account ranked by kind. Asking
    for each old run whether a later one exists instead made a first prune of a year a hundred
    times slower, and a NOT IN subquery hid from the planner how many rows a batch would find.
    """
    accounts = SyncRun._meta.get_field("account").related_model._base_manager
    latest = ("-started_at", "-pk")
    per_kind = {
        f"last_{kind}": Subquery(
            SyncRun.objects.filter(kind=kind, account=OuterRef("pk")).order_by(*latest).values("pk")[:1]
        )
        for kind in SyncKind.values
    }
    ids = [pk for row in accounts.annotate(**per_kind).values_list(*per_kind) for pk in row if pk is not None]
    rank = Window(RowNumber(), partition_by=[F("kind")], order_by=[F("started_at").desc(), F("pk").desc()])
    ids += SyncRun.objects.filter(account__isnull=True).annotate(rank=rank).filter(rank=1).values_list("pk", flat=True)
    return ids


def lapsed_locks(now: datetime) -> QuerySet:
    """Single-flight locks whose holder died: past their expiry nobody holds them (``core.locks``)."""
    return TaskLock.objects.filter(expires_at__lt=now)


def old_alerts(now: datetime) -> QuerySet:
    """Alerts created before RETENTION_ALERTS_DAYS ago, with their deliveries and attempts (the cascade),
    except one with a delivery still PENDING: it is being tried and goes once it is done."""
    before = retention_cutoff(now, "RETENTION_ALERTS_DAYS")
    if before is None:
        return Alert.objects.none()
    return Alert.objects.filter(created_at__lt=before).exclude(deliveries__status=DeliveryStatus.PENDING)


PRUNE_STEPS = [
    PruneStep(
        name="sync runs",
        model=SyncRun,
        select=old_sync_runs,
        rule=(
            "older than RETENTION_SYNC_RUNS_DAYS (FAILED: RETENTION_FAILED_RUNS_DAYS); each account's last run "
            "of each kind is kept"
        ),
    ),
    PruneStep(
        name="alerts",
        model=Alert,
        select=old_alerts,
        rule="older than RETENTION_ALERTS_DAYS, with their deliveries and attempts; one still being delivered is kept",
    ),
    PruneStep(name="lapsed locks", model=TaskLock, select=lapsed_locks, rule="single-flight locks past expires_at"),
]

if apps.is_installed("django.contrib.sessions"):
    from django.contrib.sessions.models import Session

    def expired_sessions(now: datetime) -> QuerySet:
        """What ``manage.py clearsessions`` deletes with the database session engine."""
        return Session.objects.filter(expire_date__lt=now)

    PRUNE_STEPS.append(
        PruneStep(name="expired sessions", model=Session, select=expired_sessions, rule="past their expiry date")
    )
