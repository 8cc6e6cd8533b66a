from core.scheduling import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="Accounts sync",
        task="trading.accounts_sync",
        description="Create accounts the broker reports; refresh their type and currency.",
        every_seconds=3600,
        expire_seconds=600,
    ),
    PeriodicTaskSpec(
        name="Execution ingest",
        task="trading.ingest_executions",
        description="Store every fill once (with late commissions) and cash flows; recompute the ledger.",
        every_seconds=60,
        expire_seconds=55,
    ),
    PeriodicTaskSpec(
        name="Settlement update",
        task="trading.settlements_update",
        description="Mark pending settlements whose settlement date has come as settled.",
        crontab={"minute": "5", "hour": "5"},  # 00:05 or 01:05 in New York: the new trade date has begun
        expire_seconds=3600,
    ),
    PeriodicTaskSpec(
        name="Order expiry",
        task="trading.orders_expire",
        description="Paper DAY orders still working after their session's close (early closes too) expire.",
        every_seconds=300,
        expire_seconds=290,
    ),
    PeriodicTaskSpec(
        name="Order status sync",
        task="trading.orders_status_sync",
        description="Reconcile working live orders with the broker, including orders whose answer was lost.",
        every_seconds=30,
        expire_seconds=25,
    ),
    PeriodicTaskSpec(
        name="Paper trade monitor",
        task="trading.paper_trades_monitor",
        description="Close open paper trades at their stop, target or before the session's close; expire signals.",
        every_seconds=60,
        expire_seconds=55,
    ),
]
