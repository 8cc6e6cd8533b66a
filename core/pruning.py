"""Retention: rows past their keeping time are deleted in small batches, each its own transaction.

Each installed app may list what it prunes in ``<app>/retention.py`` as ``PRUNE_STEPS``; the
registry finds them through the app registry (as ``core.scheduling`` finds ``schedules.py``), so
core names no app above it and each app states the rules for its own tables. A step gives a model
and, for a moment ``now``, the queryset of its rows to delete.

Rows are deleted by primary key, ``PRUNE_BATCH`` keys per DELETE, lowest keys first and none read
twice (keyset), each batch in its own transaction: a first prune of a year of data holds its locks
for a batch at a time, and a prune stopped half-way (time budget, time limit, deploy) has deleted
whole batches only and simply goes on the next time. In its transaction a batch is read again with
its rule and locked (FOR UPDATE SKIP LOCKED), so a row that changed since it was read (a lapsed lock
taken over) is not deleted unchecked, and a row someone is changing right now waits for next time.

What refers to a pruned row is handled as its foreign key says, the way Django's delete would
(CASCADE deletes, SET_NULL unlinks), without loading the rows: the rule of a relation declared in
an app above core is honoured without core importing it. A cascade is followed down to
``MAX_CASCADE_DEPTH`` levels (an alert, its deliveries, their attempts), the deepest rows first, each
level's rows found from the batch's keys by nested subqueries. A step whose rows something PROTECTs,
whose cascade goes deeper or in a cycle, or whose models have delete signals is refused when the
plan is made (``prune_plan``), before any row is touched.
"""

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models.signals import post_delete, pre_delete
from django.utils import timezone

from core.registry import app_contributions

PRUNE_BATCH = 10_000
MAX_CASCADE_DEPTH = 3  # levels of CASCADE below a pruned model that a plan follows


@dataclass(frozen=True)
class PruneStep:
    """Rows of ``model`` to delete, as ``select(now)`` (a queryset of that model) says."""

    name: str
    model: type[models.Model]
    select: Callable[[datetime], models.QuerySet]
    rule: str  # one line for people: what goes, what stays


class PruneRefusedError(Exception):
    """A step cannot be pruned by key batches without breaking what refers to its rows."""


@dataclass(frozen=True)
class _Dependent:
    """A foreign key to the pruned model and what pruning does to its rows: delete them, or unlink."""

    fk: models.ForeignKey
    action: str  # "delete" (CASCADE) or "unlink" (SET_NULL)
    children: tuple["_Dependent", ...] = ()  # what deleting these rows does in turn (CASCADE only)

    @property
    def model(self) -> type[models.Model]:
        return self.fk.model

    @property
    def label(self) -> str:
        return self.model._meta.label if self.action == "delete" else f"{self.model._meta.label}.{self.fk.name}"


@dataclass
class PruneReport:
    """What a prune deleted (or, in a dry run, would delete) per table, and what it unlinked."""

    dry_run: bool
    now: datetime
    deleted: dict[str, int] = field(default_factory=dict)  # model label -> rows
    unlinked: dict[str, int] = field(default_factory=dict)  # "model label.field" -> rows set to NULL
    complete: bool = True  # False when the time budget ran out first (the next prune goes on)
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)  # step name -> time it took

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "complete": self.complete,
            "deleted": self.deleted,
            "unlinked": self.unlinked,
            "seconds": round(self.seconds, 3),
            "step_seconds": {name: round(seconds, 3) for name, seconds in self.step_seconds.items()},
        }


def prune_steps() -> list[PruneStep]:
    """Every installed app's ``retention.PRUNE_STEPS``, in the order of INSTALLED_APPS."""
    return app_contributions("retention", "PRUNE_STEPS")


def retention_cutoff(now: datetime, setting: str) -> datetime | None:
    """``now`` less the days of ``setting``; None when the setting is 0 (that rule keeps forever)."""
    days = getattr(settings, setting)
    return None if days == 0 else now - timedelta(days=days)


def prune_plan(model: type[models.Model], *, _above: tuple = ()) -> list[_Dependent]:
    """What must happen to other tables when rows of ``model`` go, from the foreign keys to it (and,
    for a cascade, to the rows it deletes in turn).

    Raises ``PruneRefusedError`` for what key batches cannot do faithfully: PROTECT or RESTRICT (the rows
    are meant to stay), SET_DEFAULT or SET(...), a cascade deeper than ``MAX_CASCADE_DEPTH`` or in a
    cycle, many-to-many fields, multi-table inheritance, and delete signals (which a bulk delete skips).
    """
    if model._meta.parents or model._meta.many_to_many:
        raise PruneRefusedError(f"{model._meta.label}: multi-table inheritance and many-to-many are not pruned by key")
    _refuse_signals(model)
    plan: list[_Dependent] = []
    for relation in _relations_to(model):
        child, fk = relation.related_model, relation.field
        on_delete = relation.on_delete
        if on_delete is models.DO_NOTHING:
            continue
        if fk.target_field != model._meta.pk:
            raise PruneRefusedError(f"{model._meta.label}: {child._meta.label}.{fk.name} refers to another field")
        if on_delete is models.CASCADE:
            _refuse_signals(child)
            chain = (*_above, model)
            if child in chain or len(chain) >= MAX_CASCADE_DEPTH:
                raise PruneRefusedError(
                    f"{chain[0]._meta.label}: deleting it cascades to {child._meta.label} "
                    f"{'in a cycle' if child in chain else f'more than {MAX_CASCADE_DEPTH} levels deep'}"
                )
            plan.append(_Dependent(fk, "delete", tuple(prune_plan(child, _above=chain))))
        elif on_delete is models.SET_NULL:
            plan.append(_Dependent(fk, "unlink"))
        else:
            raise PruneRefusedError(
                f"{model._meta.label}: {child._meta.label}.{fk.name} is {on_delete.__name__}; not pruned by key"
            )
    return plan


def plan_walk(plan: list[_Dependent]) -> Iterator[tuple[_Dependent, tuple[_Dependent, ...]]]:
    """Every dependent of a plan with the chain that leads to it from the pruned model (itself last),
    deepest first: the order in which their rows are deleted or unlinked."""

    def walk(dependent: _Dependent, chain: tuple[_Dependent, ...]):
        for child in dependent.children:
            yield from walk(child, (*chain, child))
        yield dependent, chain

    for dependent in plan:
        yield from walk(dependent, (dependent,))


def _relations_to(model: type[models.Model]) -> Iterable:
    # What Django's deletion collector looks at: reverse one-to-one and many-to-one, hidden ones too.
    return [
        f
        for f in model._meta.get_fields(include_hidden=True)
        if f.auto_created and not f.concrete and (f.one_to_one or f.one_to_many)
    ]


def _refuse_signals(model: type[models.Model]) -> None:
    if pre_delete.has_listeners(model) or post_delete.has_listeners(model):
        raise PruneRefusedError(f"{model._meta.label} has delete signal receivers, which a bulk delete would skip")


def prune(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = PRUNE_BATCH,
    steps: list[PruneStep] | None = None,
    time_budget: float | None = None,
) -> PruneReport:
    """Run every step (or those given); a dry run reads the same batches and deletes nothing.

    ``time_budget`` (seconds) stops between batches once spent; the report then says incomplete.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.monotonic()
    deadline = None if time_budget is None else started + time_budget
    report = PruneReport(dry_run=dry_run, now=now or timezone.now())
    steps = prune_steps() if steps is None else steps
    plans = [(step, prune_plan(step.model)) for step in steps]  # refuse before deleting anything
    for step, plan in plans:
        report.deleted.setdefault(step.model._meta.label, 0)
        for dependent, _ in plan_walk(plan):
            (report.deleted if dependent.action == "delete" else report.unlinked).setdefault(dependent.label, 0)
    for step, plan in plans:
        step_started = time.monotonic()
        done = _prune_step(step, plan, report=report, batch_size=batch_size, deadline=deadline)
        report.step_seconds[step.name] = time.monotonic() - step_started
        if not done:
            report.complete = False
            break
    report.seconds = time.monotonic() - started
    return report


def _prune_step(
    step: PruneStep, plan: list[_Dependent], *, report: PruneReport, batch_size: int, deadline: float | None
) -> bool:
    """Delete the step's rows batch by batch; False when the deadline came first."""
    model = step.model
    using = router.db_for_write(model)
    connection = connections[using]
    # A batch's keys are the parameters of one statement on SQLite: no more than it takes.
    size = min(batch_size, connection.features.max_query_params or batch_size)
    selected = step.select(report.now).using(using).order_by("pk")
    last = None
    while True:
        if deadline is not None and time.monotonic() > deadline:
            return False
        after = selected if last is None else selected.filter(pk__gt=last)
        keys = list(after.values_list("pk", flat=True)[:size])
        if not keys:
            return True
        if report.dry_run:
            counts = _count_batch(model, plan, keys, using=using)
        else:
            with transaction.atomic(using=using):
                # Read again and locked: a row changed since (a lock taken over) is not deleted unchecked,
                # and one that someone else is changing right now is left for the next prune. The batch
                # is the rows of its key range that the rule still picks.
                locked = after.filter(pk__lte=keys[-1]).select_for_update(skip_locked=True)
                counts = _delete_batch(model, plan, list(locked.values_list("pk", flat=True)), using=using)
        for label, rows in counts.items():
            target = report.unlinked if label in report.unlinked else report.deleted
            target[label] += rows
        if len(keys) < size:
            return True
        last = keys[-1]


def _any(connection, column: str, keys: list) -> tuple[str, list]:
    """``column`` is one of ``keys``: one array parameter on PostgreSQL (10,000 placeholders take
    longer to parse and plan than to run), a list of placeholders elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [keys]
    return f"{column} IN ({', '.join(['%s'] * len(keys))})", keys


def _chain_where(connection, chain: tuple[_Dependent, ...], keys: list) -> tuple[str, list]:
    """The rows of ``chain[-1]`` that deleting the batch reaches: its foreign key in the keys of the rows
    one level up, found the same way (nested subqueries down from the batch's keys)."""
    qn = connection.ops.quote_name
    where, params = _any(connection, qn(chain[0].fk.column), keys)
    for above, dependent in pairwise(chain):
        rows = f"SELECT {qn(above.model._meta.pk.column)} FROM {qn(above.model._meta.db_table)} WHERE {where}"  # noqa: S608
        where = f"{qn(dependent.fk.column)} IN ({rows})"
    return where, params


def _delete_batch(model: type[models.Model], plan: list[_Dependent], keys: list, *, using: str) -> dict[str, int]:
    connection = connections[using]
    qn = connection.ops.quote_name
    counts: dict[str, int] = {}
    if not keys:
        return counts
    with connection.cursor() as cursor:
        for dependent, chain in plan_walk(plan):
            table = qn(dependent.model._meta.db_table)
            where, params = _chain_where(connection, chain, keys)
            if dependent.action == "delete":
                cursor.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608
            else:
                cursor.execute(f"UPDATE {table} SET {qn(dependent.fk.column)} = NULL WHERE {where}", params)  # noqa: S608
            counts[dependent.label] = counts.get(dependent.label, 0) + cursor.rowcount
        where, params = _any(connection, qn(model._meta.pk.column), keys)
        cursor.execute(f"DELETE FROM {qn(model._meta.db_table)} WHERE {where}", params)  # noqa: S608
        counts[model._meta.label] = cursor.rowcount
    return counts


def _count_batch(model: type[models.Model], plan: list[_Dependent], keys: list, *, using: str) -> dict[str, int]:
    connection = connections[using]
    qn = connection.ops.quote_name
    counts = {model._meta.label: len(keys)}
    with connection.cursor() as cursor:
        for dependent, chain in plan_walk(plan):
            where, params = _chain_where(connection, chain, keys)
            cursor.execute(f"SELECT count(*) FROM {qn(dependent.model._meta.db_table)} WHERE {where}", params)  # noqa: S608
            counts[dependent.label] = counts.get(dependent.label, 0) + cursor.fetchone()[0]
    return counts
