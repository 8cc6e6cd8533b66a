"""Django's Redis cache, without building a Redis client object for every cache call.

``django.core.cache.backends.redis.RedisCacheClient.get_client`` makes a new ``redis.Redis`` for each
get or set, and its constructor fills a table of about 170 response callbacks: 0.1-0.2 ms of CPU a call,
as much as the round trip to Redis itself on this machine. A ``redis.Redis`` is only a facade over its
connection pool (which is what holds the connections, and is already kept per server), so one per pool is
kept here. Django keeps one cache object per thread, so nothing is shared between threads that was not
shared before.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, servers, **options) -> None:
        super().__init__(servers, **options)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
