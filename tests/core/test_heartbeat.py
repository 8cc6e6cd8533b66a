import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.celery import app as celery_app
from core.heartbeat import HEARTBEAT_COUNT_KEY, HEARTBEAT_LAST_KEY, heartbeat_status
from core.schedules import PERIODIC_TASKS
from core.scheduling import periodic_tasks_ensure
from core.tasks import heartbeat_task


@pytest.fixture(autouse=True)
def _locmem_cache(settings):
    # A private in-process cache even when REDIS_URL points the suite at Redis.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "test-heartbeat"}
    }
    cache.clear()


def test_heartbeat_records_an_aware_utc_time_and_returns_it():
    before = timezone.now()

    result = heartbeat_task.delay().get()

    last = cache.get(HEARTBEAT_LAST_KEY)
    assert last.utcoffset() == timedelta(0)
    assert before <= last <= timezone.now()
    assert result == last.isoformat()
    assert datetime.fromisoformat(result) == last


def test_heartbeat_counts_every_tick():
    heartbeat_task()
    heartbeat_task()
    heartbeat_task()

    assert cache.get(HEARTBEAT_COUNT_KEY) == 3


def test_an_old_heartbeat_is_still_readable_so_its_age_shows(monkeypatch):
    heartbeat_task()
    # A day later (far past the cache's default timeout) the keys are still there.
    one_day_later = time.time() + 86400
    monkeypatch.setattr("django.core.cache.backends.locmem.time.time", lambda: one_day_later)

    status = heartbeat_status(now=timezone.now() + timedelta(days=1))

    assert status["count"] == 1
    assert status["age_seconds"] == pytest.approx(86400, abs=5)


def test_status_before_the_first_tick():
    assert heartbeat_status() == {"last": None, "count": 0, "age_seconds": None}


def test_status_after_ticks_reports_last_time_count_and_age():
    heartbeat_task()
    heartbeat_task()
    last = cache.get(HEARTBEAT_LAST_KEY)

    status = heartbeat_status(now=last + timedelta(seconds=90))

    assert status == {"last": last, "count": 2, "age_seconds": 90.0}


def test_status_age_is_never_negative_when_the_worker_clock_runs_ahead():
    cache.set(HEARTBEAT_LAST_KEY, datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC))

    status = heartbeat_status(now=datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC))

    assert status["age_seconds"] == 0.0


def test_default_schedule_points_at_the_registered_task_and_drops_stale_ticks():
    (spec,) = [s for s in PERIODIC_TASKS if s.task == "core.heartbeat"]

    assert spec.task in celery_app.tasks
    assert spec.expire_seconds < spec.every_seconds


@pytest.mark.django_db
def test_default_periodic_task_is_created_once_and_staff_changes_survive():
    PeriodicTask.objects.filter(name="Beat heartbeat").delete()

    assert "Beat heartbeat" in periodic_tasks_ensure()
    task = PeriodicTask.objects.get(name="Beat heartbeat")
    assert (task.task, task.interval.every, task.interval.period) == (
        "core.heartbeat",
        60,
        IntervalSchedule.SECONDS,
    )
    assert task.expire_seconds == 55
    assert task.enabled

    task.interval, _ = IntervalSchedule.objects.get_or_create(every=120, period=IntervalSchedule.SECONDS)
    task.save()
    assert "Beat heartbeat" not in periodic_tasks_ensure()
    assert PeriodicTask.objects.get(name="Beat heartbeat").interval.every == 120


@pytest.mark.django_db
def test_health_endpoint_reports_database_and_beat(client):
    body = client.get("/healthz").json()
    assert body["database"] == "ok"
    assert body["beat"]["status"] == "stale" and body["beat"]["last"] is None
    heartbeat_task()
    body = client.get("/healthz").json()
    assert body["beat"]["status"] == "ok" and body["beat"]["age_seconds"] < 60
