"""Default periodic tasks, created once by name in django-celery-beat's tables.

Each installed app may list its defaults in ``<app>/schedules.py`` as ``PERIODIC_TASKS``; the
registry finds them through the app registry, so it names no app above it. Creation is
get-or-create by name: a task that exists is never touched, so an interval or crontab that staff
changed in the admin survives every deploy and every beat start. Nothing is declared in
``CELERY_BEAT_SCHEDULE``.
"""

import json
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from core.registry import app_contributions


@dataclass(frozen=True)
class PeriodicTaskSpec:
    name: str
    task: str
    description: str
    every_seconds: int | None = None
    crontab: dict[str, str] | None = None  # minute, hour, day_of_week, day_of_month, month_of_year
    # The zone the crontab's fields are read in: "America/New_York" for a time after the NYSE close
    # that follows daylight saving time. Beat evaluates the crontab in this zone.
    crontab_timezone: str = "UTC"
    expire_seconds: int | None = None  # a tick not started by then is dropped
    kwargs: dict = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        if (self.every_seconds is None) == (self.crontab is None):
            raise ValueError(f"{self.name}: give exactly one of every_seconds or crontab")
        if self.crontab is None and self.crontab_timezone != "UTC":
            raise ValueError(f"{self.name}: crontab_timezone applies to a crontab only")
        try:
            ZoneInfo(self.crontab_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{self.name}: unknown time zone {self.crontab_timezone!r}") from exc


def default_periodic_tasks() -> list[PeriodicTaskSpec]:
    """Every installed app's ``schedules.PERIODIC_TASKS``, in the order of INSTALLED_APPS."""
    return app_contributions("schedules", "PERIODIC_TASKS")


def _schedule_for(spec: PeriodicTaskSpec, *, using: str = "default") -> dict:
    if spec.every_seconds is not None:
        # No unique constraint on this table: staff may have made duplicates, so take the first.
        fields = {"every": spec.every_seconds, "period": IntervalSchedule.SECONDS}
        interval = IntervalSchedule.objects.using(using).filter(**fields).order_by("pk").first()
        return {"interval": interval or IntervalSchedule.objects.using(using).create(**fields)}
    fields = {
        "minute": "*",
        "hour": "*",
        "day_of_week": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        **(spec.crontab or {}),
    }
    zone = spec.crontab_timezone
    crontab = CrontabSchedule.objects.using(using).filter(timezone=zone, **fields).order_by("pk").first()
    if crontab is None:
        crontab = CrontabSchedule.objects.using(using).create(timezone=zone, **fields)
    return {"crontab": crontab}


def periodic_tasks_ensure(*, specs: list[PeriodicTaskSpec] | None = None, using: str = "default") -> list[str]:
    """Create the missing default periodic tasks; return the names created this time."""
    created: list[str] = []
    for spec in specs if specs is not None else default_periodic_tasks():
        with transaction.atomic(using=using):
            if PeriodicTask.objects.using(using).filter(name=spec.name).exists():
                continue
            PeriodicTask.objects.using(using).create(
                name=spec.name,
                task=spec.task,
                description=spec.description,
                kwargs=json.dumps(spec.kwargs),
                expire_seconds=spec.expire_seconds,
                enabled=spec.enabled,
                **_schedule_for(spec, using=using),
            )
            created.append(spec.name)
    return created
