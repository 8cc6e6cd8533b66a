"""Default periodic tasks live in the database, are created once by name, and staff edits survive."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from config.celery import app as celery_app
from core.scheduling import PeriodicTaskSpec, default_periodic_tasks, periodic_tasks_ensure

pytestmark = pytest.mark.django_db


def _default_names() -> list[str]:
    return [spec.name for spec in default_periodic_tasks()]


class TestDefaultSpecs:
    def test_accounts_sync_is_a_default(self):
        specs = {spec.name: spec for spec in default_periodic_tasks()}

        assert specs["Accounts sync"].task == "trading.accounts_sync"

    def test_names_are_unique(self):
        names = _default_names()

        assert len(names) == len(set(names))

    def test_every_default_has_an_expiry_shorter_than_its_interval(self):
        for spec in default_periodic_tasks():
            assert spec.expire_seconds, f"{spec.name} has no expire_seconds"
            if spec.every_seconds is not None:
                assert spec.expire_seconds <= spec.every_seconds, spec.name

    def test_every_default_names_a_registered_task(self):
        # Import the task modules as a worker does, so a typo in a spec's task name shows up here.
        celery_app.loader.import_default_modules()

        for spec in default_periodic_tasks():
            assert spec.task in celery_app.tasks, f"{spec.name}: {spec.task} is not a registered task"

    @pytest.mark.parametrize("kwargs", [{}, {"every_seconds": 60, "crontab": {"minute": "0"}}], ids=["neither", "both"])
    def test_spec_needs_exactly_one_schedule(self, kwargs):
        with pytest.raises(ValueError, match="exactly one"):
            PeriodicTaskSpec(name="x", task="x", description="x", **kwargs)


class TestPeriodicTasksEnsure:
    def test_migrate_created_the_defaults(self):
        # The test database was just migrated: the post_migrate hook must have run the ensure.
        names = _default_names()

        assert sorted(PeriodicTask.objects.filter(name__in=names).values_list("name", flat=True)) == sorted(names)

    def test_creates_the_defaults_by_name(self):
        PeriodicTask.objects.all().delete()

        created = periodic_tasks_ensure()

        names = _default_names()
        assert created == names
        tasks = {t.name: t for t in PeriodicTask.objects.filter(name__in=names)}
        assert set(tasks) == set(names)
        for spec in default_periodic_tasks():
            task = tasks[spec.name]
            assert task.task == spec.task
            assert task.enabled is spec.enabled
            assert task.expire_seconds == spec.expire_seconds
            assert task.expire_seconds is not None
            assert json.loads(task.kwargs) == spec.kwargs
            if spec.every_seconds is not None:
                assert (task.interval.every, task.interval.period) == (spec.every_seconds, IntervalSchedule.SECONDS)
                assert task.crontab is None

    def test_accounts_sync_schedule(self):
        periodic_tasks_ensure()

        task = PeriodicTask.objects.get(name="Accounts sync")
        assert task.task == "trading.accounts_sync"
        assert task.interval.every == 3600
        assert task.expire_seconds == 600

    def test_second_run_creates_nothing(self):
        periodic_tasks_ensure()
        counts = (PeriodicTask.objects.count(), IntervalSchedule.objects.count(), CrontabSchedule.objects.count())

        created = periodic_tasks_ensure()

        assert created == []
        assert counts == (
            PeriodicTask.objects.count(),
            IntervalSchedule.objects.count(),
            CrontabSchedule.objects.count(),
        )

    def test_staff_edits_survive_a_second_run(self):
        periodic_tasks_ensure()
        every_15_minutes = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.MINUTES)
        task = PeriodicTask.objects.get(name="Accounts sync")
        task.interval = every_15_minutes
        task.expire_seconds = 120
        task.enabled = False
        task.save()

        periodic_tasks_ensure()

        task.refresh_from_db()
        assert task.interval == every_15_minutes
        assert task.expire_seconds == 120
        assert task.enabled is False

    def test_task_deleted_by_staff_is_recreated(self):
        periodic_tasks_ensure()
        PeriodicTask.objects.filter(name="Accounts sync").delete()

        assert periodic_tasks_ensure() == ["Accounts sync"]

    def test_existing_interval_is_reused(self):
        existing = IntervalSchedule.objects.create(every=7200, period=IntervalSchedule.SECONDS)

        periodic_tasks_ensure(specs=[_interval_spec("a", 7200), _interval_spec("b", 7200)])

        assert IntervalSchedule.objects.filter(every=7200, period=IntervalSchedule.SECONDS).count() == 1
        assert set(PeriodicTask.objects.filter(name__in=["a", "b"]).values_list("interval", flat=True)) == {existing.pk}

    def test_duplicate_intervals_made_in_the_admin_do_not_break_ensure(self):
        IntervalSchedule.objects.create(every=7200, period=IntervalSchedule.SECONDS)
        IntervalSchedule.objects.create(every=7200, period=IntervalSchedule.SECONDS)

        created = periodic_tasks_ensure(specs=[_interval_spec("two-hourly job", 7200)])

        assert created == ["two-hourly job"]

    def test_crontab_spec(self):
        CrontabSchedule.objects.all().delete()
        spec = PeriodicTaskSpec(
            name="Retention",
            task="marketdata.retention",
            description="Prune old rows.",
            crontab={"minute": "15", "hour": "3"},
            expire_seconds=3600,
        )

        assert periodic_tasks_ensure(specs=[spec]) == ["Retention"]
        assert periodic_tasks_ensure(specs=[spec]) == []

        task = PeriodicTask.objects.get(name="Retention")
        assert task.interval is None
        assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("15", "3", "*")
        assert str(task.crontab.timezone) == "UTC"
        assert CrontabSchedule.objects.count() == 1

    def test_existing_crontab_is_reused(self):
        CrontabSchedule.objects.all().delete()
        crontab = dict(minute="0", hour="*/6", day_of_week="*", day_of_month="*", month_of_year="*")
        existing = CrontabSchedule.objects.create(timezone="UTC", **crontab)
        spec = PeriodicTaskSpec(
            name="Six-hourly", task="x.y", description="", crontab={"minute": "0", "hour": "*/6"}, expire_seconds=60
        )

        periodic_tasks_ensure(specs=[spec])

        assert PeriodicTask.objects.get(name="Six-hourly").crontab == existing
        assert CrontabSchedule.objects.count() == 1

    def test_crontab_in_another_zone(self):
        CrontabSchedule.objects.all().delete()
        crontab = dict(minute="30", hour="16", day_of_week="1-5", day_of_month="*", month_of_year="*")
        in_utc = CrontabSchedule.objects.create(timezone="UTC", **crontab)  # same fields, other zone: not reused
        spec = PeriodicTaskSpec(
            name="After the close",
            task="x.y",
            description="",
            crontab={"minute": "30", "hour": "16", "day_of_week": "1-5"},
            crontab_timezone="America/New_York",
            expire_seconds=60,
        )

        periodic_tasks_ensure(specs=[spec])

        task = PeriodicTask.objects.get(name="After the close")
        assert task.crontab != in_utc
        assert str(task.crontab.timezone) == "America/New_York"

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"crontab": {"minute": "0"}, "crontab_timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
            ({"every_seconds": 60, "crontab_timezone": "America/New_York"}, "applies to a crontab only"),
        ],
    )
    def test_crontab_timezone_is_checked(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            PeriodicTaskSpec(name="x", task="x", description="x", **kwargs)


class TestBackupSchedule:
    """The "Backup" task: 16:30 in New York, Monday to Friday, half an hour after the NYSE close all year."""

    @pytest.mark.parametrize(
        ("last_run", "next_run"),
        [
            # Winter (EST, UTC-5): 21:30 UTC the same day.
            ("2026-01-14T12:00:00+00:00", "2026-01-14T21:30:00+00:00"),
            # Summer (EDT, UTC-4): 20:30 UTC.
            ("2026-07-14T12:00:00+00:00", "2026-07-14T20:30:00+00:00"),
            # After Friday's run (EST), across the weekend when clocks change: Monday at 16:30 EDT.
            ("2026-03-06T22:00:00+00:00", "2026-03-09T20:30:00+00:00"),
        ],
    )
    def test_runs_after_the_close_on_weekdays(self, last_run, next_run):
        periodic_tasks_ensure()
        schedule = PeriodicTask.objects.get(name="Backup").crontab.schedule

        local_last, delta, _ = schedule.remaining_delta(datetime.fromisoformat(last_run))

        assert (local_last + delta).astimezone(UTC) == datetime.fromisoformat(next_run)

    def test_spec(self):
        periodic_tasks_ensure()

        task = PeriodicTask.objects.get(name="Backup")
        assert task.task == "core.backup"
        assert str(task.crontab.timezone) == "America/New_York"
        assert task.expire_seconds == 6 * 3600


def _interval_spec(name: str, every: int) -> PeriodicTaskSpec:
    return PeriodicTaskSpec(name=name, task="x.y", description="", every_seconds=every, expire_seconds=every // 2)


class TestPostMigrateHook:
    def test_migrating_one_app_on_a_fresh_database(self, tmp_path):
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "marketdata", "--noinput"],
            cwd=Path(__file__).resolve().parents[2],
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "DJANGO_ENV_FILE": str(tmp_path / "no-such.env"),
                "VAR_DIR": str(tmp_path / "var"),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert result.returncode == 0, result.stderr[-2000:]


class TestSetupPeriodicTasksCommand:
    def test_creates_then_leaves_unchanged(self, capsys):
        PeriodicTask.objects.all().delete()
        call_command("setup_periodic_tasks")
        first = capsys.readouterr().out
        call_command("setup_periodic_tasks")
        second = capsys.readouterr().out

        names = _default_names()
        assert PeriodicTask.objects.filter(name__in=names).count() == len(names)
        for name in names:
            assert f"{name}: created" in first
            assert f"{name}: exists, left unchanged" in second
        assert "created" not in second.replace("exists, left unchanged", "")

    def test_keeps_a_staff_edited_interval(self):
        call_command("setup_periodic_tasks")
        daily = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.DAYS)
        PeriodicTask.objects.filter(name="Accounts sync").update(interval=daily)

        call_command("setup_periodic_tasks")

        assert PeriodicTask.objects.get(name="Accounts sync").interval == daily


class TestBeatSchedulesLiveInTheDatabase:
    def test_no_beat_schedule_in_settings(self):
        assert not getattr(settings, "CELERY_BEAT_SCHEDULE", None)

    def test_no_beat_schedule_in_the_celery_app(self):
        # Task modules are imported the way a worker imports them, so one that adds a schedule shows up.
        celery_app.loader.import_default_modules()

        assert not celery_app.conf.beat_schedule

    def test_beat_uses_the_database_scheduler(self):
        assert settings.CELERY_BEAT_SCHEDULER == "django_celery_beat.schedulers:DatabaseScheduler"
        assert celery_app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
