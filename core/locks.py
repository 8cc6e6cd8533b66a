"""Single-flight locks: when one is held the work is skipped, never waited for.

A lock's owner is its holder (``core.holders``): a lock left by a process that died (a killed
worker) is taken over at once by the next one that wants it, instead of blocking until its expiry.
The expiry stays as the backstop for a holder that cannot be judged or hangs.
"""

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.holders import TASK_LOCKS, holder_new, work_hold, work_holder_alive, work_release
from core.models import TaskLock

logger = logging.getLogger(__name__)


def _key(name: str) -> int:
    # Two names with one key only make a dead holder look alive: the expiry then decides, as before.
    return zlib.crc32(name.encode())


def lock_acquire(*, name: str, ttl_seconds: int | None = None) -> str | None:
    """Take the lock ``name``; return an owner token, or None when someone else holds it.

    Must run outside a transaction so that other processes see the lock at once.
    """
    ttl = ttl_seconds if ttl_seconds is not None else settings.SINGLE_FLIGHT_LOCK_TTL
    now = timezone.now()
    token = holder_new()
    # A lock whose holder died lapses at its expiry, or as soon as its holder is seen to be gone.
    TaskLock.objects.filter(name=name, expires_at__lte=now).delete()
    for attempt in range(2):
        try:
            with transaction.atomic():
                TaskLock.objects.create(
                    name=name, owner=token, acquired_at=now, expires_at=now + timedelta(seconds=ttl)
                )
                work_hold(namespace=TASK_LOCKS, key=_key(name), holder=token)
        except IntegrityError:
            if attempt == 0 and _take_from_dead_holder(name):
                continue
            return None
        return token
    return None


def _take_from_dead_holder(name: str) -> bool:
    owner = TaskLock.objects.filter(name=name).values_list("owner", flat=True).first()
    if owner is None:
        return True  # released meanwhile
    if work_holder_alive(namespace=TASK_LOCKS, key=_key(name), holder=owner) is not False:
        return False
    deleted, _ = TaskLock.objects.filter(name=name, owner=owner).delete()
    if deleted:
        logger.warning("lock %s: its holder %s is gone, taking it over", name, owner)
    return True


def lock_release(*, name: str, token: str) -> bool:
    """Release the lock if this holder still owns it; a lapsed-and-retaken lock is left alone."""
    deleted, _ = TaskLock.objects.filter(name=name, owner=token).delete()
    work_release(namespace=TASK_LOCKS, key=_key(name), holder=token)
    if not deleted:
        logger.warning("lock %s was no longer held by this holder at release", name)
    return bool(deleted)


@contextmanager
def single_flight(name: str, *, ttl_seconds: int | None = None) -> Iterator[bool]:
    """``with single_flight("x") as acquired:``; ``acquired`` is False when another holder runs."""
    token = lock_acquire(name=name, ttl_seconds=ttl_seconds)
    try:
        yield token is not None
    finally:
        if token is not None:
            lock_release(name=name, token=token)


def lock_extend(*, name: str, token: str, ttl_seconds: int) -> bool:
    """Push a held lock's expiry out (a long-lived holder, such as the listener's client id); False when
    this holder no longer owns it."""
    expires = timezone.now() + timedelta(seconds=ttl_seconds)
    return bool(TaskLock.objects.filter(name=name, owner=token).update(expires_at=expires))
