"""Sessions served from the cache (``SESSION_ENGINE`` ``cached_db``) and a replaced database.

A cached session is written through to the database, so emptying the cache logs nobody out. The other
way round needs care: a restore replaces the ``django_session`` table, and a session the restored
database does not hold (or holds in an older state) must not live on in the cache. ``backup_restore``
therefore forgets the cached copy of every session: those the database held before the restore, and
on Redis every cached session key (found by its prefix), so the next request reads the restored row.
"""

from collections.abc import Iterable

from django.conf import settings
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import DatabaseError

CACHED_DB = "django.contrib.sessions.backends.cached_db"


def sessions_cached() -> bool:
    return settings.SESSION_ENGINE == CACHED_DB and "django.contrib.sessions" in settings.INSTALLED_APPS


def session_keys_stored() -> list[str]:
    """Every session key in the database ([] when sessions are not cached, or there is no table yet)."""
    if not sessions_cached():
        return []
    from django.contrib.sessions.models import Session

    try:
        return list(Session.objects.values_list("session_key", flat=True))
    except DatabaseError:  # a fresh database restored into: nothing was stored
        return []


def sessions_cache_forget(*, keys: Iterable[str] = ()) -> int:
    """Drop the cached copies of the sessions ``keys`` (and, on Redis, of every session); the count asked."""
    if not sessions_cached():
        return 0
    cache = caches[settings.SESSION_CACHE_ALIAS]
    names = [KEY_PREFIX + key for key in keys]
    if names:
        cache.delete_many(names)
    forgotten = len(names)
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(write=True)
        found = list(client.scan_iter(match=cache.make_key(KEY_PREFIX + "*"), count=1000))
        for start in range(0, len(found), 1000):
            client.delete(*found[start : start + 1000])
        forgotten += len(found)
    return forgotten
