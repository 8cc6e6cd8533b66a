"""Performance metrics per account and day (``PerformanceMetrics``) and the risk events their limits raise.

The figures follow docs/domain-rules.md, "Performance metrics"; the arithmetic is in
``portfolio.rules.metrics``. What this module decides is which data go in:

- The value of a day is the account's net liquidation at that trade date's close: its CLOSE
  snapshot, else its last snapshot (snapshots without a net liquidation are skipped). Only NYSE
  sessions count as days, so weekend snapshots of an idle account neither add zero-return days to
  Sharpe and Sortino nor split a week in two.
- A deposit or withdrawal belongs to the first day whose value was taken at or after it, at the
  start of that day's period. For a flow during a session this is its trade date; one booked after
  the day's close snapshot is not in that close, so it starts the next day's period instead.
- Round-trip statistics count the trips closed by the end of ``as_of`` (exchange time), all of
  them (window ALL) or the last 20 (window LAST_20); the return figures are the same in both rows.
  They are in the account's base currency: a trip in another currency converts at the rate of its
  closing day; one whose currency has no rate that day is left out and counted in
  ``round_trips_fx_missing`` (never added at 1). An account that trades only in its base currency keeps
  the one-scan aggregate.

Risk events (``trading.RiskEvent``) are written when a limit is first crossed and resolved when the
value comes back within it, so a run that sees the same crossing again writes nothing. They are
evaluated only for the account's current state (``as_of`` on or after its latest value): a
recompute of a past day must not open or resolve today's events.
"""

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Value, When, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from core.fields import quantize_money, quantize_ratio
from marketdata.fx import FxTable
from portfolio.models import AccountSnapshot, MetricsWindow, PerformanceMetrics, SnapshotKind
from portfolio.rules import metrics
from portfolio.rules.metrics import RoundTripStats, RoundTripTally
from trading.calendars import nyse_sessions, previous_sessions, trade_date_of
from trading.models import Account, CashFlow, CashFlowKind, RiskEvent, RiskEventKind, RiskSeverity, RoundTrip
from trading.services.alerts import risk_event_alert

logger = logging.getLogger(__name__)

LAST_WINDOW_SIZE = 20
UPSERT_BATCH = 1000
CRITICAL_MULTIPLE = Decimal("1.5")  # beyond 1.5 x a limit, the event is CRITICAL
DEFAULT_MAX_DRAWDOWN = Decimal("0.20")
DEFAULT_MAX_CONSECUTIVE_LOSSES = 5
DEFAULT_DAILY_LOSS_PCT = Decimal("0.03")

VALUE_FIELDS = ["daily_return", "daily_pnl", "twr", "twr_index", "drawdown", "max_drawdown", "mwr", "sharpe", "sortino"]
FIGURE_FIELDS = [
    *VALUE_FIELDS,
    "round_trips_fx_missing",
    "round_trips",
    "win_rate",
    "profit_factor",
    "expectancy",
    "gross_profit",
    "gross_loss",
    "current_consecutive_losses",
    "max_consecutive_losses",
]

# Everything about the round trips closed before a moment, in one scan (PostgreSQL). Gaps and
# islands: each trip gets its position in order of close and the position of the last trip up to it
# that was not a loss; the difference is the length of the run of losses ending there (0 on a
# non-loss). The longest run is the largest difference, the current one the difference at the end.
_ROUND_TRIP_TOTALS_SQL = """
SELECT COUNT(*),
       COUNT(*) FILTER (WHERE pnl > 0),
       COALESCE(SUM(pnl) FILTER (WHERE pnl > 0), 0),
       COALESCE(SUM(pnl) FILTER (WHERE pnl < 0), 0),
       COALESCE(MAX(pos - last_not_loss), 0),
       COALESCE(MAX(pos) - MAX(last_not_loss), 0)
FROM (
    SELECT pnl, pos,
           COALESCE(MAX(CASE WHEN pnl >= 0 THEN pos END)
                        OVER (ORDER BY closed_at, id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 0)
               AS last_not_loss
    FROM (
        SELECT closed_at, id, realized_pnl AS pnl, ROW_NUMBER() OVER (ORDER BY closed_at, id) AS pos
        FROM {table}
        WHERE account_id = %s AND closed_at < %s
    ) numbered
) runs
"""


@dataclass(frozen=True, slots=True)
class DailyValue:
    day: date
    taken_at: datetime
    value: Decimal


@dataclass(frozen=True, slots=True)
class Flow:
    """A deposit (+) or withdrawal (-), with the day whose period it starts (see the module docstring)."""

    trade_date: date
    period_day: date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class ValueFigures:
    """The account-value figures of one day, as stored."""

    day: date
    daily_return: Decimal | None
    daily_pnl: Decimal | None
    twr: Decimal
    twr_index: Decimal
    drawdown: Decimal
    max_drawdown: Decimal
    mwr: Decimal | None
    sharpe: Decimal | None
    sortino: Decimal | None


# --- public services -----------------------------------------------------------------------------
def metrics_compute(*, account: Account, as_of: date | None = None) -> list[PerformanceMetrics]:
    """Compute and store the ALL and LAST_20 rows of ``account`` for ``as_of``; update its risk events.

    ``as_of`` defaults to today's trade date, or the last NYSE session before it on a day without
    one. A fixed number of queries, whatever the number of snapshots and round trips.
    """
    as_of = as_of or _default_as_of()
    all_values = _daily_values(account)
    values = [v for v in all_values if v.day <= as_of]
    flows = _flows(account, values)
    figures = _value_figures(values, flows)
    if figures is not None and figures.day != as_of:  # no value on as_of: nothing to say about that day
        figures = _without_day(figures)
    cutoff = _end_of_trade_date(as_of)
    fx = _round_trip_fx(account)
    stats_all, missing_all = _round_trip_stats_all(account, cutoff, fx)
    last = RoundTrip.objects.filter(account=account, closed_at__lt=cutoff).order_by("-closed_at", "-id")
    last_rows = list(last.values_list("closed_at", "realized_pnl", "instrument__currency")[:LAST_WINDOW_SIZE])
    last_pnls, missing_last = _pnls_in_base(reversed(last_rows), fx)
    stats_last = metrics.round_trip_stats(last_pnls)
    rows = [
        _row(account, as_of, MetricsWindow.ALL, figures, stats_all, missing_all),
        _row(account, as_of, MetricsWindow.LAST_20, figures, stats_last, missing_last),
    ]
    is_current = not all_values or as_of >= all_values[-1].day
    with transaction.atomic():
        if is_current:
            _risk_events_update(account=account, as_of=as_of, figures=figures, stats=stats_all)
        _upsert(rows)
    return rows


def metrics_compute_series(*, account: Account, since: date | None = None) -> list[PerformanceMetrics]:
    """Compute and store both rows for every day with a value (from ``since`` on), for backfills.

    Each row is what :func:`metrics_compute` writes for that day. Risk events are evaluated once,
    for the last day (the current state): replaying history would open and resolve old crossings.
    Round trips are streamed once in order of close, so the queries do not grow with them.
    """
    values = _daily_values(account)
    flows = _flows(account, values)
    days = [v.day for v in values if since is None or v.day >= since]
    if not days:
        return []
    figures_by_day = dict(_value_figures_by_day(values, flows, since=days[0]))
    stats_by_day = _round_trip_stats_by_day(account, days, _round_trip_fx(account))
    rows = []
    for day in days:
        stats_all, stats_last, missing_all, missing_last = stats_by_day[day]
        rows.append(_row(account, day, MetricsWindow.ALL, figures_by_day[day], stats_all, missing_all))
        rows.append(_row(account, day, MetricsWindow.LAST_20, figures_by_day[day], stats_last, missing_last))
    last = days[-1]
    with transaction.atomic():
        _risk_events_update(account=account, as_of=last, figures=figures_by_day[last], stats=stats_by_day[last][0])
        _upsert(rows)
    return rows


# --- account value -------------------------------------------------------------------------------
def _default_as_of() -> date:
    return previous_sessions(trade_date_of(timezone.now()), 1)[0]


def _end_of_trade_date(day: date) -> datetime:
    """Midnight after ``day`` in the exchange's zone: trips closed before it are closed by ``day``."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=ZoneInfo(settings.EXCHANGE_TIME_ZONE))


def _daily_values(account: Account) -> list[DailyValue]:
    """One value per NYSE session with a snapshot, oldest first, picked by the database (one query)."""
    close_first = Case(When(kind=SnapshotKind.CLOSE, then=Value(0)), default=Value(1), output_field=IntegerField())
    snapshots = AccountSnapshot.objects.filter(account=account, net_liquidation__isnull=False)
    if connection.vendor == "postgresql":
        picked = snapshots.order_by("trade_date", close_first, "-taken_at").distinct("trade_date")
    else:
        picked = (
            snapshots.annotate(
                pick=Window(RowNumber(), partition_by=F("trade_date"), order_by=[close_first, F("taken_at").desc()])
            )
            .filter(pick=1)
            .order_by("trade_date")
        )
    rows = list(picked.values_list("trade_date", "taken_at", "net_liquidation"))
    if not rows:
        return []
    sessions = set(nyse_sessions(rows[0][0], rows[-1][0]))
    return [DailyValue(day, taken_at, value) for day, taken_at, value in rows if day in sessions]


def _flows(account: Account, values: list[DailyValue]) -> list[Flow]:
    """The account's deposits and withdrawals up to its last value, each with the period it starts."""
    if not values:
        return []
    out = []
    i = 0
    for at, kind, amount in (
        CashFlow.objects.filter(account=account, at__lte=values[-1].taken_at)
        .order_by("at", "id")
        .values_list("at", "kind", "amount")
    ):
        while values[i].taken_at < at:
            i += 1
        signed = amount if kind == CashFlowKind.DEPOSIT else -amount
        out.append(Flow(trade_date=trade_date_of(at), period_day=values[i].day, amount=signed))
    return out


def _value_figures(values: list[DailyValue], flows: list[Flow]) -> ValueFigures | None:
    """The figures of the last of ``values``, from the definitions in ``portfolio.rules.metrics``."""
    if not values:
        return None
    changes = metrics.daily_changes([(v.day, v.value) for v in values], [(f.period_day, f.amount) for f in flows])
    returns = [(c.day, c.ret) for c in changes if c.ret is not None]
    index = metrics.twr_index(returns)
    drawdowns = metrics.drawdowns(index)
    last = changes[-1] if changes else None
    return ValueFigures(
        day=values[-1].day,
        daily_return=quantize_ratio(last.ret) if last else None,
        daily_pnl=quantize_money(last.pnl) if last else None,
        twr=metrics.twr(returns),
        twr_index=quantize_ratio(index[-1][1] if index else metrics.ONE),
        drawdown=quantize_ratio(drawdowns[-1][1] if drawdowns else metrics.ZERO),
        max_drawdown=metrics.max_drawdown(index),
        mwr=metrics.xirr(_xirr_flows(values[0], flows, values[-1])),
        sharpe=metrics.sharpe(returns),
        sortino=metrics.sortino(returns),
    )


def _value_figures_by_day(
    values: list[DailyValue], flows: list[Flow], *, since: date
) -> Iterator[tuple[date, ValueFigures]]:
    """``(day, ValueFigures)`` for each value from ``since`` on: the same figures as :func:`_value_figures`
    on each prefix, in one pass (XIRR is solved per day, over the flows to that day)."""
    changes = metrics.daily_changes([(v.day, v.value) for v in values], [(f.period_day, f.amount) for f in flows])
    change_by_day = {c.day: c for c in changes}
    returns = [(c.day, c.ret) for c in changes if c.ret is not None]
    index = metrics.twr_index(returns)
    drawdowns = metrics.drawdowns(index)
    ratios = metrics.running_ratios(returns)
    j = -1  # the last return on or before the day
    worst = metrics.ZERO
    for value in values:
        while j + 1 < len(returns) and returns[j + 1][0] <= value.day:
            j += 1
            worst = min(worst, drawdowns[j][1])
        if value.day < since:
            continue
        change = change_by_day.get(value.day)
        ret = change.ret if change else None
        growth = index[j][1] if j >= 0 else metrics.ONE
        yield (
            value.day,
            ValueFigures(
                day=value.day,
                daily_return=quantize_ratio(ret) if ret is not None else None,
                daily_pnl=quantize_money(change.pnl) if change else None,
                twr=quantize_ratio(growth - metrics.ONE),
                twr_index=quantize_ratio(growth),
                drawdown=quantize_ratio(drawdowns[j][1] if j >= 0 else metrics.ZERO),
                max_drawdown=quantize_ratio(worst),
                mwr=metrics.xirr(_xirr_flows(values[0], [f for f in flows if f.period_day <= value.day], value)),
                sharpe=ratios[j][1] if j >= 0 else None,
                sortino=ratios[j][2] if j >= 0 else None,
            ),
        )


def _xirr_flows(first: DailyValue, flows: list[Flow], last: DailyValue) -> list[tuple[date, Decimal]]:
    """The investor's side: the first value and deposits in (negative), withdrawals and the last value out."""
    out = [(first.day, -first.value)]
    out.extend((f.trade_date, -f.amount) for f in flows if first.day < f.period_day <= last.day)
    out.append((last.day, last.value))
    return out


def _without_day(figures: ValueFigures) -> ValueFigures:
    return replace(figures, daily_return=None, daily_pnl=None)


# --- round trips ---------------------------------------------------------------------------------
def _round_trip_fx(account: Account) -> FxTable | None:
    """The rates of the account's round trips in other currencies than its base; None when it has none
    (then the figures add the trips' own P&L, with no conversion). One query, two with such trips."""
    base = account.base_currency
    foreign = set(
        RoundTrip.objects.filter(account=account)
        .exclude(instrument__currency=base)
        .order_by()
        .values_list("instrument__currency", flat=True)
        .distinct()
    )
    return FxTable.load(base=base, currencies=foreign) if foreign else None


def _pnls_in_base(rows: Iterable[tuple], fx: FxTable | None) -> tuple[list[Decimal], int]:
    """The P&Ls of ``(closed_at, pnl, currency)`` rows in base at each closing day's rate, and how many
    were left out for want of a rate."""
    pnls, missing = [], 0
    for closed_at, pnl, currency in rows:
        value = pnl if fx is None else _trip_in_base(fx, closed_at, pnl, currency)
        if value is None:
            missing += 1
        else:
            pnls.append(value)
    return pnls, missing


def _trip_in_base(fx: FxTable, closed_at: datetime, pnl: Decimal, currency: str) -> Decimal | None:
    return quantize_money(fx.convert(pnl, currency, trade_date_of(closed_at)).amount_base)


def _round_trip_stats_all(account: Account, cutoff: datetime, fx: FxTable | None) -> tuple[RoundTripStats, int]:
    """Every trip closed before ``cutoff``, in one query, and how many were left out for want of a rate.
    PostgreSQL aggregates (one scan, whatever the number of trips) when every trip is in the base currency;
    otherwise (and on SQLite, which sums decimals as floats) one ordered pass in Python keeps them exact."""
    if connection.vendor != "postgresql" or fx is not None:
        trips = (
            RoundTrip.objects.filter(account=account, closed_at__lt=cutoff)
            .order_by("closed_at", "id")
            .values_list("closed_at", "realized_pnl", "instrument__currency")
        )
        tally, missing = RoundTripTally(), 0
        for closed_at, pnl, currency in trips.iterator(chunk_size=10_000):
            value = pnl if fx is None else _trip_in_base(fx, closed_at, pnl, currency)
            if value is None:
                missing += 1
            else:
                tally.add(value)
        return tally.stats(), missing
    with connection.cursor() as cursor:
        cursor.execute(_ROUND_TRIP_TOTALS_SQL.format(table=RoundTrip._meta.db_table), [account.pk, cutoff])
        count, wins, gross_profit, gross_loss, longest, current = cursor.fetchone()
    stats = RoundTripStats.from_totals(
        count=count,
        wins=wins,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        current_consecutive_losses=current,
        max_consecutive_losses=longest,
    )
    return stats, 0


def _round_trip_stats_by_day(
    account: Account, days: list[date], fx: FxTable | None
) -> dict[date, tuple[RoundTripStats, RoundTripStats, int, int]]:
    """(ALL, LAST_20, left out of ALL, left out of LAST_20) at the end of each of ``days`` (ascending), from
    one ordered pass; a trip without a rate is left out of the figures and counted."""
    tally = RoundTripTally()
    last = deque(maxlen=LAST_WINDOW_SIZE)  # (pnl in base, or None without a rate)
    missing_all = 0
    trips = (
        RoundTrip.objects.filter(account=account, closed_at__lt=_end_of_trade_date(days[-1]))
        .order_by("closed_at", "id")
        .values_list("closed_at", "realized_pnl", "instrument__currency")
        .iterator(chunk_size=10_000)
    )
    pending = next(trips, None)
    out = {}
    for day in days:
        cutoff = _end_of_trade_date(day)
        while pending is not None and pending[0] < cutoff:
            closed_at, pnl, currency = pending
            value = pnl if fx is None else _trip_in_base(fx, closed_at, pnl, currency)
            if value is None:
                missing_all += 1
            else:
                tally.add(value)
            last.append(value)
            pending = next(trips, None)
        converted = [v for v in last if v is not None]
        out[day] = (tally.stats(), metrics.round_trip_stats(converted), missing_all, len(last) - len(converted))
    return out


# --- rows ----------------------------------------------------------------------------------------
def _row(
    account: Account,
    as_of: date,
    window: str,
    figures: ValueFigures | None,
    stats: RoundTripStats,
    fx_missing: int = 0,
) -> PerformanceMetrics:
    value_fields = {name: getattr(figures, name, None) for name in VALUE_FIELDS}  # all None without a value
    return PerformanceMetrics(
        account=account,
        as_of=as_of,
        window=window,
        **value_fields,
        round_trips=stats.count,
        win_rate=stats.win_rate,
        profit_factor=stats.profit_factor,
        expectancy=stats.expectancy,
        gross_profit=stats.gross_profit,
        gross_loss=stats.gross_loss,
        current_consecutive_losses=stats.current_consecutive_losses,
        max_consecutive_losses=stats.max_consecutive_losses,
        round_trips_fx_missing=fx_missing,
    )


def _upsert(rows: list[PerformanceMetrics]) -> None:
    PerformanceMetrics.objects.bulk_create(
        rows,
        batch_size=UPSERT_BATCH,
        update_conflicts=True,
        unique_fields=["account", "as_of", "window"],
        update_fields=[*FIGURE_FIELDS, "computed_at"],
    )


# --- risk events ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Check:
    kind: str
    value: Decimal | None  # None: not measurable now (no data), so an open event stays as it is
    threshold: Decimal
    breached: bool
    critical: bool
    message: str


def _limit(name: str, default):
    return type(default)(str(getattr(settings, name, default)))


def _risk_checks(figures: ValueFigures | None, stats: RoundTripStats) -> list[_Check]:
    max_drawdown = _limit("RISK_MAX_DRAWDOWN", DEFAULT_MAX_DRAWDOWN)
    max_losses = _limit("RISK_MAX_CONSECUTIVE_LOSSES", DEFAULT_MAX_CONSECUTIVE_LOSSES)
    daily_loss_pct = _limit("RISK_DAILY_LOSS_PCT", DEFAULT_DAILY_LOSS_PCT)
    checks = []
    # The current drawdown, not the all-time maximum: the maximum never comes back within the limit,
    # so it could neither resolve an event nor report a second crossing. Both cross at the same moment.
    drawdown = figures.drawdown if figures else None
    checks.append(
        _Check(
            kind=RiskEventKind.MAX_DRAWDOWN,
            value=drawdown,
            threshold=-max_drawdown,
            breached=drawdown is not None and drawdown < -max_drawdown,
            critical=drawdown is not None and drawdown < -max_drawdown * CRITICAL_MULTIPLE,
            message=(
                f"Drawdown {_pct(drawdown)} is beyond the limit of {_pct(-max_drawdown)} "
                f"(max drawdown {_pct(figures.max_drawdown)})"
                if figures
                else ""
            ),
        )
    )
    losses = stats.current_consecutive_losses
    checks.append(
        _Check(
            kind=RiskEventKind.CONSECUTIVE_LOSSES,
            value=Decimal(losses),
            threshold=Decimal(max_losses),
            breached=losses >= max_losses,
            critical=losses > max_losses * CRITICAL_MULTIPLE,
            message=f"{losses} losing round trips in a row (limit {max_losses})",
        )
    )
    # The start-of-day net liquidation is the previous close plus the flow at the start of the
    # period (domain rule), so the loss as a fraction of it is minus the day's return.
    daily_return = figures.daily_return if figures else None
    loss = -daily_return if daily_return is not None else None
    checks.append(
        _Check(
            kind=RiskEventKind.DAILY_LOSS,
            value=loss,
            threshold=daily_loss_pct,
            breached=loss is not None and figures.daily_pnl < 0 and loss >= daily_loss_pct,
            critical=loss is not None and loss > daily_loss_pct * CRITICAL_MULTIPLE,
            message=(
                f"Lost {-figures.daily_pnl:,.2f} on {figures.day.isoformat()}, {_pct(loss)} of the start-of-day "
                f"net liquidation (limit {_pct(daily_loss_pct)})"
                if loss is not None
                else ""
            ),
        )
    )
    return checks


def _risk_events_update(*, account: Account, as_of: date, figures: ValueFigures | None, stats: RoundTripStats) -> None:
    """Open an event when a limit is crossed and none of its kind is open; resolve open ones once back within."""
    checks = [c for c in _risk_checks(figures, stats) if c.value is not None]
    # The account row, locked first in the transaction, makes concurrent runs take turns, so two
    # cannot both see "none open" and both open an event.
    list(Account.objects.select_for_update().filter(pk=account.pk).values_list("pk", flat=True))
    open_events: dict[str, list[RiskEvent]] = {}
    for event in RiskEvent.objects.filter(account=account, resolved_at__isnull=True):
        open_events.setdefault(event.kind, []).append(event)
    opened, resolved = [], []
    for check in checks:
        if check.breached and check.kind not in open_events:
            opened.append(
                RiskEvent(
                    account=account,
                    kind=check.kind,
                    severity=RiskSeverity.CRITICAL if check.critical else RiskSeverity.WARNING,
                    value=quantize_ratio(check.value),
                    threshold=quantize_ratio(check.threshold),
                    as_of=as_of,
                    message=check.message[:255],
                )
            )
        elif not check.breached and check.kind in open_events:
            resolved.extend(open_events[check.kind])
    if opened:
        RiskEvent.objects.bulk_create(opened)
        for event in opened:
            logger.warning("risk event for %s: %s (%s)", account.account_id, event.message, event.severity)
            risk_event_alert(event=event)
    if resolved:
        RiskEvent.objects.filter(pk__in=[e.pk for e in resolved], resolved_at__isnull=True).update(
            resolved_at=timezone.now()
        )
        logger.info("risk events resolved for %s: %s", account.account_id, [e.pk for e in resolved])
        for event in resolved:
            event.account = account
            risk_event_alert(event=event, resolved=True)


def _pct(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"
