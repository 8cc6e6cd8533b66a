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
]
