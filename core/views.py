"""Operational health: the database answers, beat plus a worker are alive (heartbeat age), no run is
stuck, how many runs failed in the last hour, and how deep the Celery queue is."""

from celery import current_app
from django.db import connection
from django.http import HttpRequest, JsonResponse

from core.health import queue_depth, run_health
from core.heartbeat import heartbeat_status
from core.live import connection_status

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
    runs = run_health() if database == "ok" else None
    if runs and runs["oldest_running"]:
        runs["oldest_running"]["started_at"] = runs["oldest_running"]["started_at"].isoformat()
    body = {
        "database": database,
        "beat": {
            "last": beat["last"].isoformat() if beat["last"] else None,
            "age_seconds": round(age, 1) if age is not None else None,
            "status": "ok" if age is not None and age <= HEARTBEAT_STALE_AFTER else "stale",
        },
        "runs": runs,
        "queue": {"name": current_app.conf.task_default_queue, "depth": queue_depth()},
        # What the event listener (manage.py ibkr_listen) knows of each broker login it listens to.
        "broker_connections": [
            {
                "name": c["name"],
                "state": c["state"],
                "listening": c["listening"],
                "since": c["since"].isoformat(),
                "checked_at": c["checked_at"].isoformat(),
                "code": c["code"],
            }
            for c in (connection_status() if database == "ok" else [])
        ],
    }
    # Only the database decides liveness of the web process; a stale beat is reported, not fatal.
    return JsonResponse(body, status=200 if database == "ok" else 503)
