from core.scheduling import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="Position sync",
        task="portfolio.sync_positions",
        description="Persist every broker position with its lifecycle (POSITION_SYNC_* settings).",
        every_seconds=300,
        expire_seconds=240,
    ),
]

PERIODIC_TASKS += [
    PeriodicTaskSpec(
        name="Portfolio snapshot",
        task="portfolio.snapshot_portfolio",
        description="Every account's value and open positions on the hour (COMPUTED when the broker is away).",
        crontab={"minute": "0"},
        expire_seconds=1800,
    ),
    PeriodicTaskSpec(
        name="Daily close snapshot",
        task="portfolio.close_snapshot",
        description="After each NYSE close (early closes included): the CLOSE snapshot used for daily returns.",
        every_seconds=600,
        expire_seconds=500,
    ),
    PeriodicTaskSpec(
        name="Performance metrics",
        task="portfolio.compute_metrics",
        description="Today's performance metrics; opens and resolves risk events (RISK_* settings).",
        every_seconds=3600,
        expire_seconds=3300,
    ),
]

PERIODIC_TASKS += [
    PeriodicTaskSpec(
        name="Option Greeks",
        task="portfolio.refresh_greeks",
        description=(
            "While the NYSE is open: the open option positions' Greeks, the broker's model values or computed "
            "(RISK_FREE_RATE, GREEKS_DIVIDEND_YIELDS); manage.py refresh_greeks at any hour."
        ),
        every_seconds=30,
        expire_seconds=25,
    ),
]
