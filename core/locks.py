"""Single-flight locks: when one is held the work is skipped, never waited for."""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import TaskLock

logger = logging.getLogger(__name__)


def lock_acquire(*, name: str, ttl_seconds: int | None = None) -> str | None:
    """Take the lock ``name``; return an owner token, or None when someone else holds it.

    Must run outside a transaction so that other processes see the lock at once.
    """
    ttl = ttl_seconds if ttl_seconds is not None else settings.SINGLE_FLIGHT_LOCK_TTL
    now = timezone.now()
    token = uuid.uuid4().hex
    # A lock whose holder died lapses at its expiry.
    TaskLock.objects.filter(name=name, expires_at__lte=now).delete()
    try:
        with transaction.atomic():
            TaskLock.objects.create(name=name, owner=token, acquired_at=now, expires_at=now + timedelta(seconds=ttl))
    except IntegrityError:
        return None
    return token


def lock_release(*, name: str, token: str) -> bool:
    """Release the lock if this holder still owns it; a lapsed-and-retaken lock is left alone."""
    deleted, _ = TaskLock.objects.filter(name=name, owner=token).delete()
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
