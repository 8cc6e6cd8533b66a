from marketdata.scheduling import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="Position sync",
        task="portfolio.sync_positions",
        description="Persist every broker position with its lifecycle (POSITION_SYNC_* settings).",
        every_seconds=300,
        expire_seconds=240,
    ),
]
