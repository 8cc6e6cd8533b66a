"""The backfill of past daily exchange rates: every currency pair the ledger holds, from its first fill.

The pairs come from ``marketdata.hooks.fx_needs`` (portfolio lists the non-base currencies of every
account's fills, positions and cash balances with the day of the account's first fill). Gap-free like
the bars: the days a pair should have a rate are the weekdays from its first day to yesterday, except
1 January and 25 December (the currency market does not trade on weekends and those two days); a
*gap* is such a day without a stored ``FxRate``. Consecutive gap days are asked of the broker as one
range (``Broker.fx_history``), cut into chunks of at most ``FX_HISTORY_CHUNK_DAYS``, and only gap days
are written: a rate already stored (the broker's own rate of that day, a staff correction) is never
overwritten, and a second run with nothing missing asks the broker for nothing.

Today's rate is not backfilled: the position sync and the snapshots store the broker's current rate
as today's. Each run is one ``SyncRun`` (kind FX_RATES). A pacing refusal leaves that chunk for the next
run with a warning; an unreachable broker ends the run SKIPPED, keeping what was stored before; any
other broker error skips that pair with a warning. Days still missing are listed as ``gap: ...``.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.utils import timezone

from core.brokers import Broker, BrokerError, BrokerUnavailable
from core.brokers.base import PacingViolation
from core.journal import broker_skip, sync_run_fail, sync_run_finish, sync_run_start
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from marketdata.hooks import fx_needs
from marketdata.models import FxRate

logger = logging.getLogger(__name__)

FX_HISTORY_CHUNK_DAYS = 365  # IBKR's longest duration for 1-day bars in one request
FX_CLOSED_DAYS = {(1, 1), (12, 25)}  # (month, day): no currency trading
Progress = Callable[[int, int, str], None]


@dataclass
class FxSyncResult:
    created: int = 0
    asked: int = 0
    pairs: int = 0
    warnings: list[str] = field(default_factory=list)


def fx_trading_days(start: date, end: date) -> list[date]:
    """The days in [start, end] a currency pair has a daily rate: weekdays but 1 January and 25 December."""
    days = []
    day = start
    while day <= end:
        if day.weekday() < 5 and (day.month, day.day) not in FX_CLOSED_DAYS:
            days.append(day)
        day += timedelta(days=1)
    return days


def fx_gaps(*, currency: str, base: str, since: date, until: date) -> list[tuple[date, date]]:
    """The ranges [first, last] of days from ``since`` to ``until`` without a stored rate, consecutive
    trading days merged (a weekend inside a range is asked with it), chunked. One query."""
    expected = fx_trading_days(since, until)
    if not expected:
        return []
    stored = set(
        FxRate.objects.filter(currency=currency, base=base, day__gte=since, day__lte=until).values_list(
            "day", flat=True
        )
    )
    index = {day: i for i, day in enumerate(expected)}
    runs: list[list[date]] = []
    for day in expected:
        if day in stored:
            continue
        if runs and index[day] == index[runs[-1][-1]] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    ranges = []
    span = timedelta(days=FX_HISTORY_CHUNK_DAYS - 1)
    for run in runs:
        first, last = run[0], run[-1]
        while first <= last:
            ranges.append((first, min(first + span, last)))
            first += span + timedelta(days=1)
    return ranges


def _store_history(*, currency: str, base: str, rates: dict[date, object], source: str, now: datetime) -> int:
    """Insert the missing days' rates; a day stored meanwhile (a sync, staff) is kept as it is."""
    rows = [
        FxRate(currency=currency, base=base, day=day, rate=rate, source=source, fetched_at=now)
        for day, rate in sorted(rates.items())
    ]
    before = FxRate.objects.filter(currency=currency, base=base, day__in=list(rates)).count()
    FxRate.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows) - before


def fx_rates_sync(
    *,
    broker: Broker,
    since: date | None = None,
    reason: SyncReason = SyncReason.SCHEDULE,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> SyncRun:
    """Backfill the missing past daily rates of every pair the ledger holds (from ``since`` when given,
    else from each pair's first day) up to yesterday; one run."""
    run, started = sync_run_start(kind=SyncKind.FX_RATES, account=None, reason=reason)
    if not started:
        return run
    now = now or timezone.now()
    yesterday = timezone.localdate(now) - timedelta(days=1)
    result = FxSyncResult()
    try:
        needs = fx_needs()
        result.pairs = len(needs)
        plan = []
        for (currency, base), first in sorted(needs.items()):
            start = since or first
            plan.extend(
                (currency, base, a, b) for a, b in fx_gaps(currency=currency, base=base, since=start, until=yesterday)
            )
        _backfill(broker, plan, now=now, result=result, progress=progress)
    except (BrokerUnavailable, BrokerError) as exc:
        skip_reason, message = broker_skip(exc)
        return sync_run_finish(
            run=run,
            status=SyncStatus.SKIPPED,
            skip_reason=skip_reason,
            message=f"{message} (kept what was stored before: {result.created} rates new)",
            warnings=result.warnings,
            created=result.created,
        )
    except Exception as exc:
        logger.exception("exchange rates sync failed")
        return sync_run_fail(run=run, exc=exc, warnings=result.warnings)
    return sync_run_finish(
        run=run,
        status=SyncStatus.SUCCESS,
        message=(
            f"daily rates of {result.pairs} currency pair(s): {result.created} new, "
            f"{result.asked} range(s) asked of the broker"
        ),
        warnings=result.warnings,
        created=result.created,
    )


def _backfill(broker: Broker, plan: list, *, now: datetime, result: FxSyncResult, progress: Progress | None) -> None:
    failed: set[tuple[str, str]] = set()
    for done, (currency, base, first, last) in enumerate(plan, start=1):
        label = f"{currency}/{base} {first}..{last}"
        if (currency, base) in failed:
            result.warnings.append(f"gap: {label} (not asked: the pair failed earlier in this run)")
            continue
        try:
            result.asked += 1
            fetched = broker.fx_history(currency, base, first, last)
        except PacingViolation as exc:
            result.warnings.append(f"gap: {label} left for the next run: {exc}")
            continue
        except BrokerUnavailable:
            raise
        except BrokerError as exc:
            failed.add((currency, base))
            result.warnings.append(f"gap: {label}: {exc}")
            continue
        result.warnings.extend(fetched.warnings)
        wanted = set(fx_trading_days(first, last))
        rates = {
            row.day: row.rate
            for row in fetched.items
            if row.day in wanted and row.currency == currency and row.base == base and row.rate > 0
        }
        missing = sorted(wanted - set(rates))
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            shown = ", ".join(str(d) for d in missing[:5]) + more
            result.warnings.append(f"gap: {currency}/{base}: the broker has no rate for {shown}")
        if rates:
            result.created += _store_history(currency=currency, base=base, rates=rates, source=broker.name, now=now)
        if progress is not None:
            progress(done, len(plan), label)


FX_SOURCE_ADMIN = "admin"


def fx_rate_save(*, rate: FxRate, reason: str, now: datetime | None = None) -> FxRate:
    """A staff correction (or addition) of a daily rate: kept with who, when and why in its history, and
    marked ``admin`` so neither the broker's rate of the day nor the backfill replaces it."""
    rate.currency, rate.base = rate.currency.upper(), rate.base.upper()
    rate.source = FX_SOURCE_ADMIN
    rate.fetched_at = now or timezone.now()
    rate._change_reason = reason
    rate.save()
    return rate
