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

PERIODIC_TASKS += [
    PeriodicTaskSpec(
        name="Backup",
        task="core.backup",
        description=(
            "Back up the database into BACKUP_DIR after the NYSE close (16:30 New York, Monday to Friday), "
            "then rotate: BACKUP_KEEP_DAILY/WEEKLY/MONTHLY."
        ),
        # In New York time, so it stays half an hour after the 16:00 close through daylight saving.
        crontab={"minute": "30", "hour": "16", "day_of_week": "1-5"},
        crontab_timezone="America/New_York",
        # Late (a busy or stopped worker) is still worth doing, up to the evening.
        expire_seconds=6 * 3600,
    ),
]

PERIODIC_TASKS += [
    PeriodicTaskSpec(
        name="Alerts check",
        task="core.check_alerts",
        description=(
            "Alerts for syncs failing ALERT_SYNC_FAILURES times in a row and for positions older than "
            "POSITION_SYNC_STALE_AFTER (once per streak, once per stale spell)."
        ),
        every_seconds=60,
        expire_seconds=55,
    ),
]
