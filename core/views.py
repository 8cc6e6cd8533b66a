"""Operational health: the database answers, and beat plus a worker are alive (heartbeat age)."""

from django.db import connection
from django.http import HttpRequest, JsonResponse

from core.heartbeat import heartbeat_status

# Beat sends the heartbeat every 60 s by default; three missed ticks means beat or the workers are down.
HEARTBEAT_STALE_AFTER = 180


def health(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except Exception as exc:  # the point of a health check is to report any failure
        database = f"error: {type(exc).__name__}"
    beat = heartbeat_status()
    age = beat["age_seconds"]
    body = {
        "database": database,
        "beat": {
            "last": beat["last"].isoformat() if beat["last"] else None,
            "age_seconds": round(age, 1) if age is not None else None,
            "status": "ok" if age is not None and age <= HEARTBEAT_STALE_AFTER else "stale",
        },
    }
    # Only the database decides liveness of the web process; a stale beat is reported, not fatal.
    return JsonResponse(body, status=200 if database == "ok" else 503)
