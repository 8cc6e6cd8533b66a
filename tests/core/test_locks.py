"""Single-flight locks: taken or skipped, never waited for; released only by their holder."""

import logging
import zlib
from datetime import timedelta

import pytest
from django.utils import timezone

from core.holders import TASK_LOCKS, Holder
from core.locks import lock_acquire, lock_release, single_flight
from core.models import TaskLock

pytestmark = pytest.mark.django_db


class TestLockAcquire:
    def test_acquire_free_lock(self):
        token = lock_acquire(name="sync", ttl_seconds=60)

        lock = TaskLock.objects.get(name="sync")
        assert token
        assert lock.owner == token
        assert lock.expires_at - lock.acquired_at == timedelta(seconds=60)

    def test_default_ttl_comes_from_settings(self, settings):
        settings.SINGLE_FLIGHT_LOCK_TTL = 1234

        lock_acquire(name="sync")

        lock = TaskLock.objects.get(name="sync")
        assert lock.expires_at - lock.acquired_at == timedelta(seconds=1234)

    def test_held_lock_is_skipped(self):
        first = lock_acquire(name="sync")

        second = lock_acquire(name="sync")

        assert second is None
        assert TaskLock.objects.get(name="sync").owner == first

    def test_locks_are_independent_by_name(self):
        assert lock_acquire(name="positions") is not None
        assert lock_acquire(name="snapshots") is not None

    def test_tokens_are_unique_per_holder(self):
        first = lock_acquire(name="a")
        lock_release(name="a", token=first)

        second = lock_acquire(name="a")

        assert second != first

    def test_expired_lock_can_be_taken_over(self):
        stale = lock_acquire(name="sync", ttl_seconds=60)
        TaskLock.objects.filter(name="sync").update(expires_at=timezone.now() - timedelta(seconds=1))

        fresh = lock_acquire(name="sync", ttl_seconds=60)

        assert fresh is not None
        assert fresh != stale
        assert TaskLock.objects.get(name="sync").owner == fresh

    def test_lock_not_yet_expired_is_not_taken_over(self):
        holder = lock_acquire(name="sync", ttl_seconds=60)
        TaskLock.objects.filter(name="sync").update(expires_at=timezone.now() + timedelta(seconds=5))

        assert lock_acquire(name="sync") is None
        assert TaskLock.objects.get(name="sync").owner == holder


class TestDeadHolder:
    """A lock left by a process that died (a killed worker) does not block until its expiry (issue #16)."""

    def left_by(self, other_process, *, alive: bool) -> str:
        owner = other_process.holder(namespace=TASK_LOCKS, key=zlib.crc32(b"sync"), alive=alive)
        now = timezone.now()
        TaskLock.objects.create(name="sync", owner=owner, acquired_at=now, expires_at=now + timedelta(seconds=360))
        return owner

    def test_a_lock_whose_holder_is_gone_is_taken_over_at_once(self, other_process, caplog):
        dead = self.left_by(other_process, alive=False)

        with caplog.at_level(logging.WARNING, logger="core.locks"):
            token = lock_acquire(name="sync")

        assert token is not None and TaskLock.objects.get(name="sync").owner == token
        assert f"its holder {dead} is gone" in caplog.text

    def test_a_lock_whose_holder_is_alive_is_skipped(self, other_process):
        alive = self.left_by(other_process, alive=True)

        assert lock_acquire(name="sync") is None
        assert TaskLock.objects.get(name="sync").owner == alive

    def test_a_lock_taken_by_code_that_did_not_record_holders_waits_for_its_expiry(self):
        now = timezone.now()
        TaskLock.objects.create(name="sync", owner="9f" * 16, acquired_at=now, expires_at=now + timedelta(seconds=360))

        assert lock_acquire(name="sync") is None

    def test_the_holder_is_this_process(self):
        token = lock_acquire(name="sync")

        assert Holder.parse(token).is_this_process


class TestLockRelease:
    def test_owner_releases(self):
        token = lock_acquire(name="sync")

        assert lock_release(name="sync", token=token) is True
        assert not TaskLock.objects.filter(name="sync").exists()
        assert lock_acquire(name="sync") is not None

    def test_only_the_owner_releases(self, caplog):
        token = lock_acquire(name="sync")

        with caplog.at_level(logging.WARNING, logger="core.locks"):
            released = lock_release(name="sync", token="someone-else")

        assert released is False
        assert TaskLock.objects.get(name="sync").owner == token
        assert "no longer held" in caplog.text

    def test_holder_whose_lock_lapsed_does_not_release_the_new_holder(self):
        stale = lock_acquire(name="sync", ttl_seconds=60)
        TaskLock.objects.filter(name="sync").update(expires_at=timezone.now() - timedelta(seconds=1))
        fresh = lock_acquire(name="sync", ttl_seconds=60)

        assert lock_release(name="sync", token=stale) is False
        assert TaskLock.objects.get(name="sync").owner == fresh

    def test_releasing_twice(self):
        token = lock_acquire(name="sync")
        lock_release(name="sync", token=token)

        assert lock_release(name="sync", token=token) is False


class TestSingleFlight:
    def test_runs_and_releases(self):
        with single_flight("sync") as acquired:
            assert acquired is True
            assert TaskLock.objects.filter(name="sync").exists()

        assert not TaskLock.objects.filter(name="sync").exists()

    def test_yields_false_when_held_and_leaves_the_holder_alone(self):
        holder = lock_acquire(name="sync")

        with single_flight("sync") as acquired:
            assert acquired is False

        assert TaskLock.objects.get(name="sync").owner == holder

    def test_nested_single_flight_is_skipped(self):
        with single_flight("sync") as outer, single_flight("sync") as inner:
            assert (outer, inner) == (True, False)
            assert TaskLock.objects.filter(name="sync").exists()

        assert not TaskLock.objects.filter(name="sync").exists()

    def test_released_when_the_work_fails(self):
        with pytest.raises(RuntimeError), single_flight("sync") as acquired:
            assert acquired
            raise RuntimeError("the sync blew up")

        assert not TaskLock.objects.filter(name="sync").exists()

    def test_ttl_is_passed_on(self):
        with single_flight("sync", ttl_seconds=42):
            lock = TaskLock.objects.get(name="sync")
            assert lock.expires_at - lock.acquired_at == timedelta(seconds=42)
