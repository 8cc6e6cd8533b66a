"""Celery tasks for sentiment: thin, each calls one run service (single-flight and journalled there)."""

from celery import shared_task
from django.conf import settings

from core.models import SyncReason
from sentiment.services.runs import (
    confluence_run,
    options_flow_ingest_run,
    sentiment_aggregate_run,
    sentiment_ingest_run,
)


def _summary(run) -> dict:
    return {"sync_run": run.pk, "status": run.status, "skip_reason": run.skip_reason, "message": run.message}


@shared_task(name="sentiment.ingest")
def sentiment_ingest_task(sources: list[str] | None = None) -> dict:
    """A run per source of SENTIMENT_SOURCES (or the ones named)."""
    return {"runs": [_summary(sentiment_ingest_run(source=s)) for s in sources or settings.SENTIMENT_SOURCES]}


@shared_task(name="sentiment.options_flow")
def options_flow_ingest_task() -> dict:
    return _summary(options_flow_ingest_run())


@shared_task(name="sentiment.aggregate")
def sentiment_aggregate_task() -> dict:
    return _summary(sentiment_aggregate_run())


@shared_task(name="sentiment.confluence")
def confluence_task() -> dict:
    return _summary(confluence_run(reason=SyncReason.SCHEDULE))
