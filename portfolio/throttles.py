"""One limit on asking for syncs, however they are asked for.

``POST /api/sync/positions`` and the dashboard's "Sync now" form both start runs a worker must carry
out: they share one rate (``API_SYNC_THROTTLE``, DRF's "sync" scope) and one counter per user, so
neither is a way around the other.
"""

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class SyncRequestThrottle(SimpleRateThrottle):
    """Per user (per client address when anonymous), in the default cache like every DRF throttle."""

    scope = "sync"

    def get_rate(self) -> str | None:
        # Read at each request, not when the class is defined, so a changed setting applies.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view) -> str:
        ident = request.user.pk if request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
