"""The market-data sync: the missing bars and the latest quote of every watched instrument.

Gap-free: the bars a series should have come from the NYSE calendar (``core.calendars``: regular
hours, early closes, holidays). A *gap* is a session with fewer stored bars than its regular hours
hold (for daily bars: a session without its bar), or whose newest bar was fetched before it closed
(the bar was still forming). Consecutive gap sessions are asked for as one range, cut into chunks no
longer than the broker allows for the bar size (``MAX_REQUEST_SPAN``), so a steady sync asks the
broker for nothing but the current session.

Each sync is one ``SyncRun`` (kind MARKET_DATA). A pacing refusal (IBKR error 162, or the shared
limiter's ``PacingLimited``) leaves that chunk for the next run with a warning; an unreachable broker
ends the run SKIPPED, keeping what was stored before; any other broker error skips that series with a
warning. Gaps that remain after the run are listed in its warnings (``gap: ...``).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, Max
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.brokers import Broker, BrokerError, BrokerUnavailable
from core.brokers.base import MAX_REQUEST_SPAN, PacingViolation
from core.brokers.contracts import InstrumentSpec, SecType
from core.calendars import CALENDAR_START, exchange_zone, nyse_sessions, session_close, session_open
from core.journal import broker_skip, sync_run_fail, sync_run_finish, sync_run_start
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from marketdata.hooks import implicitly_watched_ids
from marketdata.models import Bar, BarSize, Instrument, WatchedInstrument
from marketdata.services.bars import BarsStoreResult, bars_store
from marketdata.services.instruments import instruments_resolve
from marketdata.services.quotes import quotes_store

logger = logging.getLogger(__name__)

STEP = {
    BarSize.ONE_MINUTE: timedelta(minutes=1),
    BarSize.FIVE_MINUTES: timedelta(minutes=5),
    BarSize.FIFTEEN_MINUTES: timedelta(minutes=15),
    BarSize.ONE_HOUR: timedelta(hours=1),
}
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SyncTarget:
    instrument: Instrument
    bar_sizes: tuple[str, ...]
    backfill_start: date | None = None


def backfill_days() -> dict[str, int]:
    """``MARKETDATA_BACKFILL_DAYS`` (``1m=5,...,1d=365``) as days per bar size."""
    days = {}
    for part in filter(None, (p.strip() for p in settings.MARKETDATA_BACKFILL_DAYS.split(","))):
        size, _, value = part.partition("=")
        days[size.strip()] = int(value)
    return days


def sync_targets(*, symbols: list[str] | None = None, bar_sizes: list[str] | None = None) -> list[SyncTarget]:
    """What a sync works through: the named stocks (created when unknown), else every enabled watched
    instrument plus every instrument watched implicitly (open positions: daily bars). ``bar_sizes``:
    for named stocks the sizes to fetch; otherwise only those of each target's sizes (its quote is
    fetched whatever they are)."""
    watches = {w.instrument_id: w for w in WatchedInstrument.objects.select_related("instrument")}
    targets: dict[int, SyncTarget] = {}
    if symbols:
        specs = [InstrumentSpec(symbol=s.strip().upper()) for s in symbols if s.strip()]
        stocks = Instrument.objects.filter(symbol__in=[s.symbol for s in specs], sec_type=SecType.STOCK)
        by_symbol = {i.symbol: i for i in stocks}
        unknown = [s for s in specs if s.symbol not in by_symbol]
        by_symbol.update({i.symbol: i for i in instruments_resolve(specs=unknown).values()})
        for spec in specs:
            instrument = by_symbol[spec.symbol]
            watch = watches.get(instrument.pk)
            sizes = bar_sizes or (watch.bar_sizes if watch else [BarSize.ONE_DAY])
            targets[instrument.pk] = SyncTarget(instrument, tuple(sizes), watch.backfill_start if watch else None)
        return list(targets.values())

    def kept(sizes: list[str]) -> tuple[str, ...]:
        return tuple(s for s in sizes if not bar_sizes or s in bar_sizes)

    for watch in watches.values():
        if watch.enabled:
            sizes = kept(watch.bar_sizes or [BarSize.ONE_DAY])
            targets[watch.instrument_id] = SyncTarget(watch.instrument, sizes, watch.backfill_start)
    implicit = implicitly_watched_ids() - set(watches)  # a watch row, even disabled, is staff's word
    # Only stocks' bars and quotes are fetched: an open option position is not a target of its own.
    for instrument in Instrument.objects.filter(pk__in=implicit, sec_type=SecType.STOCK).order_by("pk"):
        targets[instrument.pk] = SyncTarget(instrument, kept([BarSize.ONE_DAY]))
    return sorted(targets.values(), key=lambda t: t.instrument.symbol)


# --- gaps ---------------------------------------------------------------------------------------
def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _expected_starts(bar_size: str, opens: datetime, closes: datetime) -> int:
    """How many bars of ``bar_size`` regular hours [opens, closes) hold: the first at the open, the others
    on the step's boundaries (an hourly series: 09:30, 10:00, 11:00, ...)."""
    step = STEP[bar_size]
    seconds = int(step.total_seconds())
    first_boundary = datetime.fromtimestamp(-(-int(opens.timestamp()) // seconds) * seconds, tz=UTC)
    if first_boundary >= closes:
        return 1
    count = 1 if first_boundary > opens else 0
    return count + -(-int((closes - first_boundary).total_seconds()) // seconds)


def bar_gaps(*, instrument_id: int, bar_size: str, since: date, now: datetime) -> list[tuple[datetime, datetime]]:
    """The ranges [start, end) of sessions from ``since`` to now that lack bars, consecutive ones merged."""
    today = now.astimezone(exchange_zone()).date()
    if since > today:
        return []
    sessions = [d for d in nyse_sessions(max(since, CALENDAR_START), today) if session_open(d) <= now]
    if not sessions:
        return []
    series = Bar.objects.filter(instrument_id=instrument_id, bar_size=bar_size)
    missing: list[date] = []
    if bar_size == BarSize.ONE_DAY:
        stored = dict(series.filter(start__gte=_midnight(sessions[0])).values_list("start", "fetched_at"))
        for day in sessions:
            fetched = stored.get(_midnight(day))
            if fetched is None or fetched < min(session_close(day), now):
                missing.append(day)
    else:
        first = session_open(sessions[0])
        counts = dict(
            series.filter(start__gte=first)
            .annotate(day=TruncDate("start", tzinfo=exchange_zone()))
            .values("day")
            .annotate(n=Count("id"), fetched=Max("fetched_at"))
            .values_list("day", "n")
        )
        newest = series.filter(start__gte=first).order_by("-start").values_list("start", "fetched_at").first()
        for day in sessions:
            opens, closes = session_open(day), session_close(day)
            if counts.get(day, 0) < _expected_starts(bar_size, opens, min(closes, now)):
                missing.append(day)
        if newest is not None:
            day = newest[0].astimezone(exchange_zone()).date()
            bar_end = min(newest[0] + STEP[bar_size], session_close(day)) if day in sessions else newest[0]
            if newest[1] < min(bar_end, now) and day not in missing and day in sessions:
                missing.append(day)  # the newest bar was still forming when it was fetched
        missing.sort()
    return _ranges(missing, sessions, bar_size, now)


def _ranges(missing: list[date], sessions: list[date], bar_size: str, now: datetime) -> list[tuple[datetime, datetime]]:
    index = {day: i for i, day in enumerate(sessions)}
    runs: list[list[date]] = []
    for day in missing:
        if runs and index[day] == index[runs[-1][-1]] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    ranges = []
    span = MAX_REQUEST_SPAN[bar_size]
    for run in runs:
        if bar_size == BarSize.ONE_DAY:
            start, end = _midnight(run[0]), _midnight(run[-1]) + timedelta(days=1)
        else:
            start, end = session_open(run[0]), min(session_close(run[-1]), now + STEP[bar_size])
        while start < end:
            ranges.append((start, min(start + span, end)))
            start += span
    return ranges


# --- the sync -----------------------------------------------------------------------------------
def market_data_sync(
    *,
    broker: Broker,
    symbols: list[str] | None = None,
    bar_sizes: list[str] | None = None,
    since: date | None = None,
    bars: bool = True,
    quotes: bool = True,
    reason: SyncReason = SyncReason.SCHEDULE,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> SyncRun:
    """Store the missing bars and the latest quote of the named (or every watched) instrument; one run."""
    run, started = sync_run_start(kind=SyncKind.MARKET_DATA, account=None, reason=reason)
    if not started:
        return run
    now = now or timezone.now()
    stored = BarsStoreResult()
    quotes_changed = quotes_unchanged = 0
    warnings: list[str] = []
    try:
        targets = [t for t in sync_targets(symbols=symbols, bar_sizes=bar_sizes) if _is_stock(t, warnings)]
        if bars:
            _sync_bars(broker, targets, since=since, now=now, stored=stored, warnings=warnings, progress=progress)
        if quotes:
            quotes_changed, quotes_unchanged = _sync_quotes(broker, targets, now=now, warnings=warnings)
    except (BrokerUnavailable, BrokerError) as exc:
        skip_reason, message = broker_skip(exc)
        return sync_run_finish(
            run=run,
            status=SyncStatus.SKIPPED,
            skip_reason=skip_reason,
            message=f"{message} (kept what was stored before: {stored.created} bars new, {stored.updated} revised)",
            warnings=warnings + stored.warnings,
            created=stored.created,
            updated=stored.updated,
            unchanged=stored.unchanged,
        )
    except Exception as exc:
        logger.exception("market data sync failed")
        return sync_run_fail(run=run, exc=exc, warnings=warnings + stored.warnings)
    what = " and ".join(w for w, on in (("bars", bars), ("quotes", quotes)) if on)
    message = (
        f"{what} of {len(targets)} instrument(s): {stored.created} bars new, {stored.updated} revised, "
        f"{stored.unchanged} unchanged; {quotes_changed} quotes changed, {quotes_unchanged} unchanged"
    )
    return sync_run_finish(
        run=run,
        status=SyncStatus.SUCCESS,
        message=message,
        warnings=warnings + stored.warnings,
        created=stored.created,
        updated=stored.updated + quotes_changed,
        unchanged=stored.unchanged + quotes_unchanged,
    )


def _is_stock(target: SyncTarget, warnings: list[str]) -> bool:
    if target.instrument.sec_type == SecType.STOCK:
        return True
    warnings.append(f"{target.instrument}: only stocks' bars and quotes are fetched; skipped")
    return False


def _sync_bars(
    broker: Broker,
    targets: list[SyncTarget],
    *,
    since: date | None,
    now: datetime,
    stored: BarsStoreResult,
    warnings: list[str],
    progress: Progress | None,
) -> None:
    days = backfill_days()
    today = now.astimezone(exchange_zone()).date()
    plan: list[tuple[SyncTarget, str, datetime, datetime]] = []
    for target in targets:
        for bar_size in target.bar_sizes:
            if bar_size not in BarSize.values:
                warnings.append(f"{target.instrument.symbol}: bar size {bar_size!r} is unknown; skipped")
                continue
            first = since or target.backfill_start or today - timedelta(days=days.get(bar_size, 365))
            gaps = bar_gaps(instrument_id=target.instrument.pk, bar_size=bar_size, since=first, now=now)
            plan.extend((target, bar_size, start, end) for start, end in gaps)
    failed_series: set[tuple[int, str]] = set()
    for done, (target, bar_size, start, end) in enumerate(plan, start=1):
        symbol, series = target.instrument.symbol, (target.instrument.pk, bar_size)
        label = f"{symbol} {bar_size} {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}"
        if series in failed_series:
            warnings.append(f"gap: {label} (not asked: the series failed earlier in this run)")
            continue
        try:
            fetched = broker.bars(symbol, bar_size, start=start, end=end)
        except PacingViolation as exc:
            warnings.append(f"gap: {label} left for the next run: {exc}")
            continue
        except BrokerUnavailable:
            raise
        except BrokerError as exc:
            failed_series.add(series)
            warnings.append(f"gap: {label}: {exc}")
            continue
        warnings.extend(fetched.warnings)
        wanted = [(target.instrument.pk, bar) for bar in fetched.items if start <= bar.start < end]
        if not wanted:
            warnings.append(f"gap: {label}: the broker has no bars there")
        stored.add(bars_store(bars=wanted, source=broker.name, now=now))
        if progress is not None:
            progress(done, len(plan), label)


def _sync_quotes(broker: Broker, targets: list[SyncTarget], *, now: datetime, warnings: list[str]) -> tuple[int, int]:
    found = []
    for target in targets:
        try:
            quote = broker.quote(target.instrument.symbol)
        except BrokerUnavailable:
            if found:
                break  # keep the quotes already fetched
            raise
        except BrokerError as exc:
            warnings.append(f"quote {target.instrument.symbol}: {exc}")
            continue
        if quote is None:
            warnings.append(f"quote {target.instrument.symbol}: the broker has none")
            continue
        found.append((target.instrument.pk, quote))
    result = quotes_store(quotes=found, source=broker.name, now=now)
    return len(result.changed), len(result.unchanged)
