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
        name="Option expiries",
        task="portfolio.option_expiries",
        description="Shortly after the close (13:00 on early closes, 16:00 otherwise) and into the evening: sync "
        "the accounts holding options past expiry, so those the broker dropped are settled as expired, exercised "
        "or assigned.",
        crontab={"minute": "20", "hour": "13,16,17,18,20,22", "day_of_week": "1-6"},
        crontab_timezone="America/New_York",
        expire_seconds=1800,
    ),
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
