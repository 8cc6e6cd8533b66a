from marketdata.scheduling import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="Accounts sync",
        task="trading.accounts_sync",
        description="Create accounts the broker reports; refresh their type and currency.",
        every_seconds=3600,
        expire_seconds=600,
    ),
]
