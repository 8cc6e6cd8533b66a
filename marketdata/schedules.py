from core.scheduling import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="Quotes",
        task="marketdata.sync_quotes",
        description="The latest quote of every watched instrument (and open position), while the NYSE is open.",
        every_seconds=60,
        expire_seconds=55,
    ),
    PeriodicTaskSpec(
        name="Intraday bars",
        task="marketdata.sync_bars",
        description="The missing intraday bars (1m, 5m, 15m, 1h) of every watched instrument.",
        every_seconds=300,
        expire_seconds=290,
        kwargs={"bar_sizes": ["1m", "5m", "15m", "1h"]},
    ),
    PeriodicTaskSpec(
        name="Daily bars",
        task="marketdata.sync_bars",
        description="The missing daily bars of every watched instrument and open position, after each NYSE close.",
        # 16:15 and 17:15 New York, Monday to Friday: after the close (13:00 on early closes), a second
        # time for a late bar. Holidays find nothing missing and ask nothing.
        crontab={"minute": "15", "hour": "16,17", "day_of_week": "1-5"},
        crontab_timezone="America/New_York",
        expire_seconds=3000,
        kwargs={"bar_sizes": ["1d"]},
    ),
    PeriodicTaskSpec(
        name="Market data retention",
        task="marketdata.prune",
        description="Deletes bars past MARKETDATA_RETENTION (manage.py prune_market_data).",
        crontab={"minute": "45", "hour": "5"},
        expire_seconds=3600,
    ),
    PeriodicTaskSpec(
        name="FX rates",
        task="marketdata.sync_fx_rates",
        description=(
            "Backfills the missing past daily exchange rates of every currency the ledger holds, to each "
            "account's base currency (manage.py sync_fx_rates)."
        ),
        # 01:30 New York: the currency market's day (it closes at 17:00 New York) is complete.
        crontab={"minute": "30", "hour": "1"},
        crontab_timezone="America/New_York",
        expire_seconds=6 * 3600,
    ),
]
