"""Performance metrics on database rows: daily values, flows, round trips, both windows, risk events."""

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from itertools import count
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from portfolio.models import AccountSnapshot, MetricsWindow, PerformanceMetrics, SnapshotKind
from portfolio.rules.metrics import round_trip_stats
from portfolio.services.metrics import FIGURE_FIELDS, metrics_compute, metrics_compute_series
from tests.factories import AccountFactory, InstrumentFactory
from trading.calendars import session_close
from trading.models import (
    Account,
    CashFlow,
    CashFlowKind,
    Execution,
    RiskEvent,
    RiskEventKind,
    RiskSeverity,
    RoundTrip,
    RoundTripDirection,
    RoundTripOutcome,
    Side,
)

pytestmark = pytest.mark.django_db

D = Decimal
NEW_YORK = ZoneInfo("America/New_York")
OUTCOME = {1: RoundTripOutcome.WIN, -1: RoundTripOutcome.LOSS, 0: RoundTripOutcome.BREAKEVEN}
_FILL_IDS = count()
WEEK = [date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 5), date(2025, 3, 6), date(2025, 3, 7)]
NEXT_WEEK = [date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12), date(2025, 3, 13), date(2025, 3, 14)]


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.RISK_MAX_DRAWDOWN = Decimal("0.20")
    settings.RISK_MAX_CONSECUTIVE_LOSSES = 5
    settings.RISK_DAILY_LOSS_PCT = Decimal("0.03")


@pytest.fixture
def account():
    return AccountFactory()


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


def snapshot(account, at: datetime, value, kind=SnapshotKind.HOURLY) -> AccountSnapshot:
    return AccountSnapshot.objects.create(
        account=account,
        taken_at=at,
        kind=kind,
        trade_date=at.astimezone(NEW_YORK).date(),
        net_liquidation=None if value is None else D(str(value)),
    )


def closes(account, days: list[date], values: list) -> None:
    for day, value in zip(days, values, strict=True):
        snapshot(account, session_close(day), value, SnapshotKind.CLOSE)


def cash_flow(account, at: datetime, amount) -> CashFlow:
    amount = D(str(amount))
    return CashFlow.objects.create(
        account=account,
        flow_id=f"cf-{at.isoformat()}",
        kind=CashFlowKind.DEPOSIT if amount > 0 else CashFlowKind.WITHDRAWAL,
        amount=abs(amount),
        at=at,
    )


def round_trips(account, pnls: list, *, start: datetime | None = None, step=timedelta(minutes=10)) -> None:
    """Closed round trips with these P&Ls, in this order of close."""
    start = start or ny(WEEK[0], 10)
    instrument = InstrumentFactory()
    fills = [
        Execution.objects.create(
            exec_id=f"{account.account_id}-{side}-{next(_FILL_IDS)}",
            account=account,
            instrument=instrument,
            side=side,
            quantity=D(1),
            price=D(10),
            executed_at=start,
            trade_date=start.astimezone(NEW_YORK).date(),
        )
        for side in (Side.BUY, Side.SELL)
    ]
    trips = []
    for n, pnl in enumerate(pnls):
        pnl = D(str(pnl))
        closed_at = start + step * n
        trips.append(
            RoundTrip(
                account=account,
                instrument=instrument,
                direction=RoundTripDirection.LONG,
                opened_at=closed_at - timedelta(minutes=1),
                closed_at=closed_at,
                quantity=D(1),
                average_entry=D(10),
                average_exit=D(10) + pnl,
                realized_pnl=pnl,
                outcome=RoundTripOutcome.WIN
                if pnl > 0
                else RoundTripOutcome.LOSS
                if pnl < 0
                else RoundTripOutcome.BREAKEVEN,
                holding_seconds=60,
                opening_execution=fills[0],
                closing_execution=fills[1],
            )
        )
    RoundTrip.objects.bulk_create(trips)


def by_window(rows) -> dict[str, PerformanceMetrics]:
    return {row.window: row for row in rows}


def stored(account, as_of: date, window=MetricsWindow.ALL) -> PerformanceMetrics:
    return PerformanceMetrics.objects.get(account=account, as_of=as_of, window=window)


def events(account, kind=None):
    qs = RiskEvent.objects.filter(account=account).order_by("created_at", "id")
    return list(qs.filter(kind=kind) if kind else qs)


# --- daily values --------------------------------------------------------------------------------
def test_the_close_snapshot_is_the_value_of_an_early_close_day(account):
    wednesday, friday = date(2025, 11, 26), date(2025, 11, 28)  # Thanksgiving between; Friday closes at 13:00
    assert session_close(friday) == datetime(2025, 11, 28, 18, 0, tzinfo=UTC)
    snapshot(account, ny(wednesday, 10), 90)
    snapshot(account, ny(wednesday, 15), 100)  # only hourly snapshots that day: the last one counts
    snapshot(account, ny(friday, 10), 105)
    snapshot(account, session_close(friday), 110, SnapshotKind.CLOSE)
    snapshot(account, ny(friday, 15), 999)  # after the early close: later, but not the close
    snapshot(account, ny(date(2025, 11, 29), 12), 5)  # Saturday: not a trading day

    rows = by_window(metrics_compute(account=account, as_of=friday))

    assert rows[MetricsWindow.ALL].daily_return == D("0.1")
    assert rows[MetricsWindow.ALL].daily_pnl == D(10)
    assert rows[MetricsWindow.ALL].twr == D("0.1")


def test_a_snapshot_without_net_liquidation_is_skipped(account):
    closes(account, WEEK[:1], [100])
    snapshot(account, ny(WEEK[1], 15), 104)
    snapshot(account, session_close(WEEK[1]), None, SnapshotKind.CLOSE)

    row = by_window(metrics_compute(account=account, as_of=WEEK[1]))[MetricsWindow.ALL]

    assert row.daily_return == D("0.04")


def test_a_day_without_a_value_has_no_daily_figures_but_keeps_the_rest(account):
    closes(account, WEEK[:2], [100, 110])

    saturday = by_window(metrics_compute(account=account, as_of=date(2025, 3, 8)))[MetricsWindow.ALL]

    assert saturday.daily_return is None
    assert saturday.daily_pnl is None
    assert saturday.twr == D("0.1")
    assert saturday.twr_index == D("1.1")


def test_no_data_at_all(account):
    rows = by_window(metrics_compute(account=account, as_of=WEEK[0]))

    for row in rows.values():
        assert row.twr is None
        assert row.daily_return is None
        assert row.round_trips == 0
        assert row.win_rate is None
        assert row.profit_factor is None
        assert row.expectancy is None
    assert events(account) == []


def test_the_first_day_starts_the_index(account):
    closes(account, WEEK[:1], [100])

    row = by_window(metrics_compute(account=account, as_of=WEEK[0]))[MetricsWindow.ALL]

    assert row.twr == 0
    assert row.twr_index == 1
    assert row.drawdown == row.max_drawdown == 0
    assert row.daily_return is None
    assert row.mwr is None
    assert row.sharpe is None


# --- deposits and withdrawals --------------------------------------------------------------------
def test_worked_example_deposit_at_the_next_open(account):
    closes(account, WEEK[:3], [20000, 21000, 30450])
    cash_flow(account, ny(WEEK[2], 9, 30), 10000)

    row = by_window(metrics_compute(account=account, as_of=WEEK[2]))[MetricsWindow.ALL]

    assert row.twr == D("0.0313709677")
    assert row.daily_return == D("-0.0177419355")
    assert row.daily_pnl == D(-550)
    assert row.twr_index == D("1.0313709677")


def test_same_market_different_flows_same_twr():
    market = [D("0.01"), D("-0.04"), D("0.02"), D("-0.03"), D("0.05"), D("0.01"), D("-0.02"), D("0.03"), D("0")]
    days = WEEK + NEXT_WEEK
    flows = {2: D(25000), 5: D(-40000), 7: D(1234.5)}
    results = []
    for flows_of_day in ({}, flows):
        account = AccountFactory()
        value = D(50000)
        closes(account, days[:1], [value])
        for i, r in enumerate(market, start=1):
            flow = flows_of_day.get(i, D(0))
            if flow:
                cash_flow(account, ny(days[i], 11), flow)
            value = ((value + flow) * (1 + r)).quantize(D("0.0001"))
            closes(account, days[i : i + 1], [value])
        results.append(by_window(metrics_compute(account=account, as_of=days[-1]))[MetricsWindow.ALL])
    plain, funded = results
    market_twr = D(1)
    for r in market:
        market_twr *= 1 + r

    # Equal but for the rounding of the stored values to 0.0001.
    assert abs(plain.twr - (market_twr - 1)) < D("1E-8")
    assert abs(funded.twr - plain.twr) < D("1E-8")
    assert abs(funded.max_drawdown - plain.max_drawdown) < D("1E-8")
    assert abs(funded.sharpe - plain.sharpe) < D("1E-6")
    assert funded.mwr != plain.mwr  # the money-weighted return does depend on the flows


def test_a_withdrawal_is_not_a_drawdown(account):
    closes(account, WEEK[:3], [100000, 100000, 40000])
    cash_flow(account, ny(WEEK[2], 10), -60000)

    row = by_window(metrics_compute(account=account, as_of=WEEK[2]))[MetricsWindow.ALL]

    assert row.max_drawdown == 0
    assert row.drawdown == 0
    assert row.daily_pnl == 0
    assert events(account) == []


def test_a_flow_after_the_close_snapshot_starts_the_next_day(account):
    closes(account, WEEK[:2], [10000, 10100])
    cash_flow(account, ny(WEEK[1], 17, 30), 5000)  # trade date WEEK[1], but after its close snapshot

    first = by_window(metrics_compute(account=account, as_of=WEEK[1]))[MetricsWindow.ALL]
    closes(account, WEEK[2:3], [15150])
    second = by_window(metrics_compute(account=account, as_of=WEEK[2]))[MetricsWindow.ALL]

    # Taken at the start of WEEK[1] the deposit would make that day a 33% loss it never was.
    assert first.daily_return == D("0.01")
    assert first.daily_pnl == D(100)
    assert second.daily_pnl == D(50)
    assert second.daily_return == (D(50) / D(15100)).quantize(D("1E-10"))
    assert events(account) == []


def test_money_weighted_return_from_the_values_and_flows(account):
    day0, day1 = date(2024, 3, 1), date(2025, 3, 3)  # 367 days apart
    closes(account, [day0, day1], [1000, 1100])

    row = by_window(metrics_compute(account=account, as_of=day1))[MetricsWindow.ALL]

    assert abs(row.mwr - (D("1.1") ** (D(365) / D(367)) - 1)) < D("1E-9")


# --- round trips ---------------------------------------------------------------------------------
def test_round_trip_worked_example_in_both_windows(account):
    round_trips(account, [120, -80, -40, 200])

    rows = by_window(metrics_compute(account=account, as_of=WEEK[0]))

    for row in rows.values():
        assert row.round_trips == 4
        assert row.win_rate == D("0.5")
        assert row.profit_factor.quantize(D("0.0001")) == D("2.6667")
        assert row.expectancy == D("50")
        assert row.gross_profit == D(320)
        assert row.gross_loss == D(-120)
        assert row.max_consecutive_losses == 2
        assert row.current_consecutive_losses == 0


def test_last_20_window_holds_the_most_recent_round_trips(account):
    round_trips(account, [-1] * 6 + [10] * 14 + [-2, -3, 4, 5, 0, -1])

    rows = by_window(metrics_compute(account=account, as_of=WEEK[0]))
    everything, last = rows[MetricsWindow.ALL], rows[MetricsWindow.LAST_20]

    assert everything.round_trips == 26
    assert everything.max_consecutive_losses == 6
    assert everything.current_consecutive_losses == 1
    assert everything.gross_loss == D(-12)
    assert last.round_trips == 20
    assert last.max_consecutive_losses == 2
    assert last.current_consecutive_losses == 1
    assert last.win_rate == D(16) / D(20)
    assert last.gross_profit == D(149)
    assert last.gross_loss == D(-6)


def test_no_losses_has_no_profit_factor(account):
    round_trips(account, [5, 0, 7])

    row = by_window(metrics_compute(account=account, as_of=WEEK[0]))[MetricsWindow.ALL]

    assert row.profit_factor is None
    assert row.win_rate == (D(2) / D(3)).quantize(D("1E-10"))
    assert row.max_consecutive_losses == 0


def test_break_even_ends_a_run_of_losses(account):
    round_trips(account, [-1, -1, 0, -1, -1, -1, 0])

    row = by_window(metrics_compute(account=account, as_of=WEEK[0]))[MetricsWindow.ALL]

    assert row.max_consecutive_losses == 3
    assert row.current_consecutive_losses == 0
    assert row.win_rate == 0


def test_database_statistics_match_the_definitions(account):
    """PostgreSQL aggregates in SQL, SQLite in Python: both must give what the definitions give."""
    rng = random.Random(5)
    pnls = [D(rng.choice([-1, 1, 0, -1, -1])) * D(rng.randint(0, 50_000)) / 100 for _ in range(500)]
    round_trips(account, pnls, step=timedelta(seconds=30))

    rows = by_window(metrics_compute(account=account, as_of=WEEK[4]))

    for window, expected in (
        (MetricsWindow.ALL, round_trip_stats(pnls)),
        (MetricsWindow.LAST_20, round_trip_stats(pnls[-20:])),
    ):
        row = rows[window]
        assert row.round_trips == expected.count
        assert row.win_rate == expected.win_rate
        assert row.profit_factor == expected.profit_factor
        assert row.expectancy == expected.expectancy
        assert row.gross_profit == expected.gross_profit
        assert row.gross_loss == expected.gross_loss
        assert row.current_consecutive_losses == expected.current_consecutive_losses
        assert row.max_consecutive_losses == expected.max_consecutive_losses
    assert rows[MetricsWindow.ALL].max_consecutive_losses >= 4  # the data do have runs of losses


def test_round_trips_closing_at_the_same_moment_are_ordered_by_id(account):
    round_trips(account, [-1, -1, 5, -1], step=timedelta(0))

    row = by_window(metrics_compute(account=account, as_of=WEEK[0]))[MetricsWindow.ALL]

    assert row.max_consecutive_losses == 2
    assert row.current_consecutive_losses == 1


def test_round_trips_count_to_the_end_of_the_trade_date_in_exchange_time(account):
    round_trips(account, [-5, -7], start=ny(WEEK[0], 23, 30), step=timedelta(minutes=40))  # 23:30 and 00:10

    monday = by_window(metrics_compute(account=account, as_of=WEEK[0]))[MetricsWindow.ALL]
    tuesday = by_window(metrics_compute(account=account, as_of=WEEK[1]))[MetricsWindow.ALL]

    assert monday.round_trips == 1
    assert tuesday.round_trips == 2


# --- risk events ---------------------------------------------------------------------------------
def day_close(account, day: date, value) -> list[PerformanceMetrics]:
    """The day's close arrives and the daily run follows."""
    closes(account, [day], [value])
    return metrics_compute(account=account, as_of=day)


def test_drawdown_event_once_per_crossing_and_resolved(account):
    day_close(account, WEEK[0], 100)
    day_close(account, WEEK[1], 85)  # -15%: within
    assert events(account, RiskEventKind.MAX_DRAWDOWN) == []
    day_close(account, WEEK[2], 79)  # -21%: crossed
    metrics_compute(account=account, as_of=WEEK[2])  # the same crossing again
    day_close(account, WEEK[3], 75)  # -25%: still beyond
    [event] = events(account, RiskEventKind.MAX_DRAWDOWN)
    assert event.severity == RiskSeverity.WARNING
    assert event.value == D("-0.21")
    assert event.threshold == D("-0.20")
    assert event.as_of == WEEK[2]
    assert event.resolved_at is None

    day_close(account, WEEK[4], 79)  # -21% again, still beyond: nothing new
    assert len(events(account, RiskEventKind.MAX_DRAWDOWN)) == 1
    day_close(account, NEXT_WEEK[0], 90)  # -10%: back within the limit
    event.refresh_from_db()
    assert event.resolved_at is not None

    day_close(account, NEXT_WEEK[1], 70)  # -30%: a second crossing
    _, second = events(account, RiskEventKind.MAX_DRAWDOWN)
    assert second.resolved_at is None
    assert second.value == D("-0.3")
    assert second.severity == RiskSeverity.WARNING  # -30% is exactly 1.5 x the limit, not beyond


def test_drawdown_beyond_one_and_a_half_times_the_limit_is_critical(account):
    closes(account, WEEK[:2], [100, 69])

    metrics_compute(account=account, as_of=WEEK[1])

    [event] = events(account, RiskEventKind.MAX_DRAWDOWN)
    assert event.severity == RiskSeverity.CRITICAL


def test_consecutive_losses_event(account):
    round_trips(account, [10, -1, -1, -1, -1])
    metrics_compute(account=account, as_of=WEEK[0])
    assert events(account) == []

    RoundTrip.objects.all().delete()
    round_trips(account, [10, -1, -1, -1, -1, -1])
    metrics_compute(account=account, as_of=WEEK[0])
    metrics_compute(account=account, as_of=WEEK[0])
    [event] = events(account, RiskEventKind.CONSECUTIVE_LOSSES)
    assert event.value == 5
    assert event.threshold == 5
    assert event.severity == RiskSeverity.WARNING

    round_trips(account, [3], start=ny(WEEK[0], 15))
    metrics_compute(account=account, as_of=WEEK[0])
    event.refresh_from_db()
    assert event.resolved_at is not None


def test_consecutive_losses_beyond_one_and_a_half_times_the_limit_are_critical(account):
    round_trips(account, [-1] * 8)

    metrics_compute(account=account, as_of=WEEK[0])

    [event] = events(account, RiskEventKind.CONSECUTIVE_LOSSES)
    assert event.severity == RiskSeverity.CRITICAL
    assert event.value == 8


def test_daily_loss_event_against_start_of_day_net_liquidation(account):
    day_close(account, WEEK[0], 10000)
    day_close(account, WEEK[1], 9700)  # -3.00%: at the limit counts
    metrics_compute(account=account, as_of=WEEK[1])
    [event] = events(account, RiskEventKind.DAILY_LOSS)
    assert event.value == D("0.03")
    assert event.threshold == D("0.03")
    assert "300.00" in event.message

    day_close(account, WEEK[2], 9400)  # -3.09%: still beyond, the same event
    assert len(events(account, RiskEventKind.DAILY_LOSS)) == 1
    day_close(account, WEEK[3], 9500)  # a gain
    event.refresh_from_db()
    assert event.resolved_at is not None


def test_daily_loss_includes_the_flow_at_the_start_of_the_day(account):
    closes(account, WEEK[:2], [100000, 38000])
    cash_flow(account, ny(WEEK[1], 9), -60000)  # 40,000 left at work, 2,000 lost: 5%

    metrics_compute(account=account, as_of=WEEK[1])

    [event] = events(account, RiskEventKind.DAILY_LOSS)
    assert event.value == D("0.05")
    assert event.severity == RiskSeverity.CRITICAL  # beyond 4.5%


def test_limits_come_from_settings(account, settings):
    settings.RISK_DAILY_LOSS_PCT = Decimal("0.05")
    settings.RISK_MAX_DRAWDOWN = Decimal("0.5")
    closes(account, WEEK[:2], [10000, 9600])

    metrics_compute(account=account, as_of=WEEK[1])

    assert events(account) == []


def test_limits_have_defaults_before_the_settings_exist(account, settings):
    del settings.RISK_DAILY_LOSS_PCT
    del settings.RISK_MAX_DRAWDOWN
    del settings.RISK_MAX_CONSECUTIVE_LOSSES
    closes(account, WEEK[:2], [10000, 9650])

    metrics_compute(account=account, as_of=WEEK[1])

    assert [e.kind for e in events(account)] == [RiskEventKind.DAILY_LOSS]


def test_recomputing_a_past_day_leaves_risk_events_alone(account):
    closes(account, WEEK[:3], [10000, 9000, 9100])
    metrics_compute(account=account, as_of=WEEK[2])

    metrics_compute(account=account, as_of=WEEK[1])  # -10% that day, but not the current state

    assert events(account) == []
    assert stored(account, WEEK[1]).daily_return == D("-0.1")


# --- backfill ------------------------------------------------------------------------------------
def test_series_writes_every_day_as_the_daily_run_would(account):
    days = WEEK + NEXT_WEEK
    closes(account, days, [10000, 10100, 9800, 9900, 12000, 11500, 11800, 11700, 11900, 12100])
    snapshot(account, ny(date(2025, 3, 8), 12), 12345)  # a Saturday: not a day
    cash_flow(account, ny(WEEK[4], 10), 2000)
    cash_flow(account, ny(NEXT_WEEK[2], 11), -500)
    round_trips(account, [5, -3, -2, 8, -1, -1, -1, 4] * 3, start=ny(WEEK[0], 10), step=timedelta(hours=7))

    rows = metrics_compute_series(account=account)

    assert len(rows) == 2 * len(days)
    assert PerformanceMetrics.objects.filter(account=account).count() == 2 * len(days)
    series = {(r.as_of, r.window): [getattr(r, f) for f in FIGURE_FIELDS] for r in PerformanceMetrics.objects.all()}
    for day in days:
        for row in metrics_compute(account=account, as_of=day):
            assert [getattr(row, f) for f in FIGURE_FIELDS] == series[(day, row.window)], (day, row.window)


def test_series_since_and_idempotent(account):
    closes(account, WEEK, [100, 101, 102, 103, 104])

    metrics_compute_series(account=account)
    rows = metrics_compute_series(account=account, since=WEEK[3])

    assert {r.as_of for r in rows} == {WEEK[3], WEEK[4]}
    assert PerformanceMetrics.objects.filter(account=account).count() == 10
    assert stored(account, WEEK[4]).twr == D("0.04")
    assert metrics_compute_series(account=account, since=date(2025, 4, 1)) == []


def test_series_evaluates_risk_for_the_last_day_only(account):
    closes(account, WEEK[:4], [10000, 9000, 9100, 9200])  # a 10% daily loss on the second day

    metrics_compute_series(account=account)

    assert events(account) == []


# --- queries -------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [10, 200])
def test_query_count_does_not_grow_with_the_data(account, size, django_assert_num_queries):
    start = ny(date(2024, 1, 2), 10)
    for hour in range(size):
        at = start + timedelta(hours=hour * 5)
        snapshot(account, at, 10000 + hour)
    cash_flow(account, start + timedelta(hours=50), 100)
    round_trips(account, [1, -1, 2] * size, start=start)
    as_of = date(2024, 12, 31)
    metrics_compute(account=account, as_of=as_of)  # any risk events are written on the first run

    # 6 reads (values, flows, the trips' foreign currencies, round trips, last 20, open risk events), the
    # upsert, the account lock, and the savepoint and its release (the service's transaction inside the
    # test's own). Trips in another currency than the base add one: the rates (tests/portfolio/test_fx_aggregates.py).
    with django_assert_num_queries(10):
        metrics_compute(account=account, as_of=as_of)


def test_default_as_of_is_the_last_session(account):
    closes(account, WEEK, [100, 101, 102, 103, 104])
    saturday_noon = datetime(2025, 3, 8, 17, 0, tzinfo=UTC)

    with mock.patch("django.utils.timezone.now", return_value=saturday_noon):
        rows = metrics_compute(account=account)

    assert {r.as_of for r in rows} == {WEEK[4]}
    assert rows[0].daily_return == (D(104) / D(103) - 1).quantize(D("1E-10"))


# --- commands ------------------------------------------------------------------------------------
def test_compute_metrics_command(account):
    closes(account, WEEK, [100, 101, 102, 103, 104])
    round_trips(account, [120, -80, -40, 200])
    out = StringIO()

    call_command("compute_metrics", "--account", account.account_id, "--since", "2025-03-05", "--json", stdout=out)

    summary = json.loads(out.getvalue())["accounts"][0]
    assert summary["account"] == account.account_id
    assert summary["days"] == 3
    assert summary["as_of"] == "2025-03-07"
    assert summary["windows"]["all"]["twr"] == "0.0400000000"
    assert summary["windows"]["all"]["win_rate"] == "0.5000000000"
    text = StringIO()
    call_command("compute_metrics", "--account", account.account_id, "--since", "2025-03-05", stdout=text)
    assert "TWR 4.00%" in text.getvalue()


def test_compute_metrics_command_unknown_account():
    with pytest.raises(CommandError, match="unknown account"):
        call_command("compute_metrics", "--account", "NOPE")


def test_bench_metrics_command_runs_and_cleans_up():
    out = StringIO()

    call_command("bench_metrics", "--round-trips", "300", "--snapshots", "400", stdout=out)

    assert "metrics_compute (again)" in out.getvalue()
    assert not Account.objects.filter(account_id="BENCHMETRICS").exists()
    assert not RoundTrip.objects.exists()
    assert not AccountSnapshot.objects.exists()


@pytest.mark.django_db
def test_metrics_task_computes_every_active_account_and_is_single_flight():
    from core.locks import single_flight
    from portfolio.models import PerformanceMetrics
    from portfolio.tasks import metrics_compute_task

    first, second = AccountFactory(), AccountFactory()
    AccountFactory(is_active=False)
    result = metrics_compute_task.delay().get()
    assert sorted(result["computed"]) == sorted([first.account_id, second.account_id]) and not result["failed"]
    assert PerformanceMetrics.objects.filter(account=first).count() == 2  # the ALL and LAST_20 rows
    with single_flight("portfolio.compute_metrics"):
        assert metrics_compute_task.delay().get()["status"] == "SKIPPED"
