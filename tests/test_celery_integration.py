"""A real beat and a real worker, against Redis and the test database.

Proves the deployment's scheduling contract end to end: beat's DatabaseScheduler sends the
heartbeat on the interval stored in django-celery-beat's tables, a worker runs it, and an interval
that staff change in the admin takes effect without restarting beat.

Isolation from anything else using the same Redis: the periodic task goes to a queue of its own
that only this test's worker consumes, and the cache keys carry a prefix of their own.
"""

import itertools
import math
import os
import time
import uuid
from datetime import datetime

import pytest
import redis
from django.core.cache import cache
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from core.heartbeat import HEARTBEAT_COUNT_KEY, HEARTBEAT_LAST_KEY, heartbeat_status
from tests.processes import POLL, Process, redis_unavailable_reason, subprocess_database_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FIRST_EVERY = 2  # seconds between heartbeats before the change
SECOND_EVERY = 6  # and after it: clearly different, so the two regimes cannot be confused
STARTUP_TIMEOUT = 30


class _HeartbeatWatch:
    """Polls the heartbeat the worker writes and keeps the worker-side time of every tick seen."""

    def __init__(self, processes: list[Process]) -> None:
        self.processes = processes
        self.ticks: list[tuple[int, datetime]] = []  # (count, time the worker ran it)
        self._count = heartbeat_status()["count"]

    def poll(self) -> None:
        for process in self.processes:
            process.assert_running()
        status = heartbeat_status()
        if status["count"] != self._count:
            self._count = status["count"]
            self.ticks.append((status["count"], status["last"]))

    def spacings(self, *, since: int = 0) -> list[float]:
        """Seconds between consecutive ticks from index ``since``; a tick missed by polling breaks a pair."""
        ticks = self.ticks[since:]
        return [
            (later - earlier).total_seconds()
            for (n1, earlier), (n2, later) in itertools.pairwise(ticks)
            if n2 == n1 + 1
        ]

    def wait_until(self, done, *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; ticks: {self.ticks}")
            time.sleep(POLL)
            self.poll()


def test_beat_runs_the_heartbeat_and_follows_an_interval_changed_in_the_admin(settings, tmp_path):
    reason = redis_unavailable_reason()
    if reason:
        pytest.skip(f"needs Redis for the cache and the Celery broker: {reason}")
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("needs a test database other processes can open (PostgreSQL); this one is in-memory SQLite")

    run_id = uuid.uuid4().hex[:12]
    queue = f"test-heartbeat-{run_id}"
    cache_prefix = f"test-heartbeat-{run_id}"
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": cache_prefix}}
    max_loop = settings.CELERY_BEAT_MAX_LOOP_INTERVAL

    # Nothing else may run against the test database: only the task under test stays enabled.
    PeriodicTask.objects.update(enabled=False)
    every_first, _ = IntervalSchedule.objects.get_or_create(every=FIRST_EVERY, period=IntervalSchedule.SECONDS)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=SECOND_EVERY, period=IntervalSchedule.SECONDS)
    heartbeat = PeriodicTask.objects.create(
        name=f"Beat heartbeat (integration test {run_id})",
        task="core.heartbeat",
        interval=every_first,
        queue=queue,
        # Generous: a tick dropped on a busy machine would look like a longer interval.
        expire_seconds=30,
    )

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV_FILE": str(tmp_path / "no.env"),  # only what this test passes, not a developer's .env
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CACHE_KEY_PREFIX": cache_prefix,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_BEAT_MAX_LOOP_INTERVAL": str(max_loop),
        "VAR_DIR": str(tmp_path / "var"),
        "BROKER_STATE_FILE": str(tmp_path / "broker_state.json"),
        "DEMO_MODE": "false",
        "PYTHONUNBUFFERED": "1",
    }
    started = time.monotonic()
    processes: list[Process] = []
    watch: _HeartbeatWatch | None = None
    failed = True
    try:
        # The worker first: a backlog sent before it is ready would run back to back and blur the spacing.
        worker_args = ["-Q", queue, "-n", f"{queue}@%h", "--without-mingle", "--without-gossip", "--without-heartbeat"]
        worker_args = ["worker", "--pool=solo", "-l", "INFO", *worker_args]
        worker = Process.celery("worker", worker_args, env=env, log_dir=tmp_path)
        processes.append(worker)
        worker.wait_for_log(" ready.", timeout=STARTUP_TIMEOUT)
        schedule_file = str(tmp_path / "celerybeat-schedule")  # unused by DatabaseScheduler, kept out of the repo
        beat = Process.celery("beat", ["beat", "-l", "INFO", "--schedule", schedule_file], env=env, log_dir=tmp_path)
        processes.append(beat)
        watch = _HeartbeatWatch(processes)

        # Three ticks give two spacings at the first interval.
        watch.wait_until(lambda: len(watch.ticks) >= 3, timeout=STARTUP_TIMEOUT + 3 * FIRST_EVERY, what="3 ticks")
        first_spacings = watch.spacings()
        assert first_spacings, watch.ticks
        for spacing in first_spacings:
            assert FIRST_EVERY * 0.5 <= spacing <= FIRST_EVERY + 1.5, first_spacings

        # What the admin's change form does: load the task, pick another interval, save. save()
        # marks PeriodicTasks changed, which beat notices at its next wake-up, without a restart.
        heartbeat = PeriodicTask.objects.get(pk=heartbeat.pk)
        heartbeat.interval = every_second
        heartbeat.save()
        changed_at_tick = len(watch.ticks) - 1  # the last tick before the change anchors the first spacing

        threshold = (FIRST_EVERY + SECOND_EVERY) / 2

        def new_spacings_seen() -> int:
            return sum(s > threshold for s in watch.spacings(since=changed_at_tick))

        watch.wait_until(
            lambda: new_spacings_seen() >= 2,
            timeout=max_loop + FIRST_EVERY + 3 * SECOND_EVERY + 5,
            what=f"two heartbeats {SECOND_EVERY}s apart",
        )
        after = watch.spacings(since=changed_at_tick)
        first_new = next(i for i, s in enumerate(after) if s > threshold)
        # Old-interval ticks after the change: only those beat sent before its next look at the database.
        assert first_new <= math.ceil(max_loop / FIRST_EVERY) + 1, after
        for spacing in after[:first_new]:
            assert FIRST_EVERY * 0.5 <= spacing <= FIRST_EVERY + 1.5, after
        for spacing in after[first_new:]:
            assert SECOND_EVERY - 1.5 <= spacing <= SECOND_EVERY + 2.5, after
        # The same beat process re-read the database; it was never restarted.
        beat.assert_running()
        assert "DatabaseScheduler: Schedule changed." in beat.log()
        failed = False
    finally:
        for process in reversed(processes):  # beat first: no more ticks for a stopping worker
            process.stop()
        cache.delete_many([HEARTBEAT_LAST_KEY, HEARTBEAT_COUNT_KEY])
        # The queue's list is gone once drained; its binding tables are all kombu leaves in Redis.
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(
            f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )
        ticks = [f"{t:%H:%M:%S.%f}" for _, t in watch.ticks] if watch else []
        print(f"celery integration: {time.monotonic() - started:.1f}s with worker and beat, heartbeats at {ticks}")
        if failed:
            for process in processes:
                print(f"----- celery {process.name} log ({process.log_path}) -----\n{process.log()}")
