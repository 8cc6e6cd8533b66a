"""The runs: each ingest, aggregation and confluence pass is single-flight (a task lock per source)
and journalled (a ``SyncRun`` without an account, its message starting with the source's name).

A source that cannot be read, or lacks its credentials, makes its run SKIPPED with the reason; a
source that stopped early on a rate limit makes it SUCCESS with a warning, keeping what came (the
next run resumes from the cursor the source keeps).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.brokers import BrokerError, BrokerUnavailable
from core.journal import broker_skip, sync_run_fail, sync_run_finish, sync_run_skip, sync_run_start
from core.locks import single_flight
from core.models import SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus
from sentiment.selectors import options_known_volumes, tracked_symbols
from sentiment.services.aggregation import hour_floor, sentiment_aggregate
from sentiment.services.confluence import confluence_compute
from sentiment.services.options import options_flow_ingest, session_of
from sentiment.services.posts import posts_ingest
from sentiment.sources import SourceDisabled, SourceUnavailable, get_source

logger = logging.getLogger(__name__)
CURSOR_KEY = "sentiment.cursor.{source}"
# How many days back the broker's already-reported day volumes are read (a long weekend and then some).
KNOWN_VOLUME_DAYS = 7


def _skip(*, kind: SyncKind, reason: SyncReason, skip_reason: SkipReason, message: str) -> SyncRun:
    logger.info("%s: %s", kind, message)
    return sync_run_skip(kind=kind, account=None, reason=reason, skip_reason=skip_reason, message=message)


def sentiment_ingest_run(*, source: str, reason: SyncReason = SyncReason.SCHEDULE) -> SyncRun:
    """One source's ingest run: fetch, store and score, then aggregate the hours it changed."""
    with single_flight(f"sentiment.ingest.{source}") as acquired:
        if not acquired:
            return _skip(
                kind=SyncKind.SENTIMENT,
                reason=reason,
                skip_reason=SkipReason.ANOTHER_RUNNING,
                message=f"{source}: another ingest of this source is running",
            )
        try:
            client = get_source(source)
        except SourceDisabled as exc:
            return _skip(kind=SyncKind.SENTIMENT, reason=reason, skip_reason=SkipReason.DISABLED, message=str(exc))
        run, _ = sync_run_start(kind=SyncKind.SENTIMENT, account=None, reason=reason)
        try:
            since = cache.get(CURSOR_KEY.format(source=source))
            batch = client.fetch(symbols=tracked_symbols(), since=since)
        except SourceUnavailable as exc:
            return sync_run_finish(
                run=run, status=SyncStatus.SKIPPED, skip_reason=SkipReason.SOURCE_UNAVAILABLE, message=f"{exc}"
            )
        except Exception as exc:
            sync_run_fail(run=run, exc=exc)
            raise
        try:
            counts = posts_ingest(source=source, posts=batch.posts, deletions=batch.deletions)
            if counts.earliest_change is not None:
                sentiment_aggregate(since=counts.earliest_change)
        except Exception as exc:
            sync_run_fail(run=run, exc=exc, warnings=list(batch.warnings))
            raise
        if batch.resume:
            cache.set(CURSOR_KEY.format(source=source), batch.resume.get("since"), timeout=None)
        warnings = list(batch.warnings)
        if not batch.complete:
            warnings.append(f"{source}: stopped early on a rate limit; the next run resumes")
        return sync_run_finish(
            run=run,
            status=SyncStatus.SUCCESS,
            message=(
                f"{source}: {counts.created} new, {counts.updated} edited, {counts.unchanged} unchanged, "
                f"{counts.deleted} deleted posts; {len(batch.warnings)} rows skipped"
            ),
            warnings=warnings,
            created=counts.created,
            updated=counts.updated,
            closed=counts.deleted,
            unchanged=counts.unchanged,
        )


def options_flow_ingest_run(*, reason: SyncReason = SyncReason.SCHEDULE) -> SyncRun:
    """Prints for the tracked underlyings from OPTIONS_FLOW_SOURCE (the feed file or the broker)."""
    source = settings.OPTIONS_FLOW_SOURCE
    with single_flight("sentiment.options_flow") as acquired:
        if not acquired:
            return _skip(
                kind=SyncKind.OPTIONS_FLOW,
                reason=reason,
                skip_reason=SkipReason.ANOTHER_RUNNING,
                message=f"{source}: another options flow ingest is running",
            )
        run, _ = sync_run_start(kind=SyncKind.OPTIONS_FLOW, account=None, reason=reason)
        try:
            batch = _options_batch(source)
        except SourceUnavailable as exc:
            return sync_run_finish(
                run=run, status=SyncStatus.SKIPPED, skip_reason=SkipReason.SOURCE_UNAVAILABLE, message=str(exc)
            )
        except (BrokerUnavailable, BrokerError) as exc:
            skip_reason, message = broker_skip(exc)
            return sync_run_finish(run=run, status=SyncStatus.SKIPPED, skip_reason=skip_reason, message=message)
        except Exception as exc:
            sync_run_fail(run=run, exc=exc)
            raise
        try:
            counts = options_flow_ingest(source=source, prints=batch.prints)
        except Exception as exc:
            sync_run_fail(run=run, exc=exc, warnings=list(batch.warnings))
            raise
        return sync_run_finish(
            run=run,
            status=SyncStatus.SUCCESS,
            message=(
                f"{source}: {counts.created} new, {counts.updated} changed, {counts.unchanged} unchanged prints; "
                f"{counts.patterns} patterns in {len(counts.sessions)} sessions; {len(batch.warnings)} rows skipped"
            ),
            warnings=list(batch.warnings),
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
        )


def _options_batch(source: str):
    if source == "broker":
        from sentiment.sources.broker import BrokerOptionsSource

        underlyings = tracked_symbols()
        # The sessions a poll can still see (IBKR keeps a day's volume until its next session starts).
        since = session_of(timezone.now()) - timedelta(days=KNOWN_VOLUME_DAYS)
        known = options_known_volumes(source="broker", underlyings=underlyings, since=since)
        return BrokerOptionsSource().options_flow(underlyings=underlyings, known_volumes=known)
    return get_source("file").options_flow(underlyings=tracked_symbols())


def sentiment_aggregate_run(*, since: datetime | None = None, reason: SyncReason = SyncReason.SCHEDULE) -> SyncRun:
    with single_flight("sentiment.aggregate") as acquired:
        if not acquired:
            return _skip(
                kind=SyncKind.SENTIMENT_AGG,
                reason=reason,
                skip_reason=SkipReason.ANOTHER_RUNNING,
                message="another aggregation is running",
            )
        run, _ = sync_run_start(kind=SyncKind.SENTIMENT_AGG, account=None, reason=reason)
        try:
            # The hourly pass redoes the last two hours: late posts of the previous hour land there.
            counts = sentiment_aggregate(since=since or hour_floor(run.started_at) - timedelta(hours=2))
        except Exception as exc:
            sync_run_fail(run=run, exc=exc)
            raise
        return sync_run_finish(
            run=run,
            status=SyncStatus.SUCCESS,
            message=f"{counts.hours} hours: {counts.hourly_rows} hourly rows, {counts.window_rows} window rows",
            created=counts.hourly_rows + counts.window_rows,
        )


def confluence_run(*, symbols: list[str] | None = None, reason: SyncReason = SyncReason.SCHEDULE) -> SyncRun:
    with single_flight("sentiment.confluence") as acquired:
        if not acquired:
            return _skip(
                kind=SyncKind.CONFLUENCE,
                reason=reason,
                skip_reason=SkipReason.ANOTHER_RUNNING,
                message="another confluence pass is running",
            )
        run, _ = sync_run_start(kind=SyncKind.CONFLUENCE, account=None, reason=reason)
        try:
            with transaction.atomic():
                rows = confluence_compute(symbols=symbols)
        except Exception as exc:
            sync_run_fail(run=run, exc=exc)
            raise
        partial = sum(1 for r in rows if r.missing)
        return sync_run_finish(
            run=run,
            status=SyncStatus.SUCCESS,
            message=f"{len(rows)} symbols scored, {partial} with a missing component",
            created=len(rows),
        )
