from core.scheduling import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="Beat heartbeat",
        task="core.heartbeat",
        description=(
            "Proves that beat schedules and a worker runs: stores the time of the last tick and a "
            "running count in the cache, shown on the health page."
        ),
        every_seconds=60,
        # A tick older than its successor's due time says nothing about now: drop it.
        expire_seconds=55,
    ),
    PeriodicTaskSpec(
        name="Retention",
        task="core.prune",
        description=(
            "Deletes what is past its keeping time (RETENTION_* settings; manage.py prune): old sync runs, "
            "hourly snapshots thinned to the close, expired sessions, lapsed locks."
        ),
        crontab={"minute": "15", "hour": "6"},  # 01:15 or 02:15 in New York: markets closed
        expire_seconds=3600,
    ),
]
