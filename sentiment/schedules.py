from core.scheduling import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="Sentiment ingest",
        task="sentiment.ingest",
        description="Posts from each source of SENTIMENT_SOURCES (a run per source), scored and aggregated.",
        every_seconds=300,
        expire_seconds=240,
    ),
    PeriodicTaskSpec(
        name="Options flow ingest",
        task="sentiment.options_flow",
        description="Options prints of the watched and held underlyings (OPTIONS_FLOW_SOURCE) and their patterns.",
        # Every 5 minutes of the NYSE session (09:30-16:00 New York, with the half hours around it).
        crontab={"minute": "*/5", "hour": "9-16", "day_of_week": "1-5"},
        crontab_timezone="America/New_York",
        expire_seconds=240,
    ),
    PeriodicTaskSpec(
        name="Sentiment aggregation",
        task="sentiment.aggregate",
        description="Hourly and 1 h / 24 h / 7 d sentiment per symbol, redone for the last two hours.",
        crontab={"minute": "2"},
        expire_seconds=1800,
    ),
    PeriodicTaskSpec(
        name="Confluence",
        task="sentiment.confluence",
        description="Confluence score (sentiment, options flow, momentum) of every symbol with recent data.",
        crontab={"minute": "5"},
        expire_seconds=1800,
    ),
]
