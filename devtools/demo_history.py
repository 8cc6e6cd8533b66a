"""A believable past for the demo: hourly account snapshots and a CLOSE per NYSE session, so the value
charts and the performance metrics have something to show on the first run.

The account's value follows a deterministic random walk (Decimal steps from ``random.Random(seed +
account pk)``) that moves only while the market is open and ends at the account's current value.
Deposits and withdrawals are the account's own ``CashFlow`` rows: a flow changes the value by its
amount, and the market moves on top of it, so the time-weighted return with the flow at the start
of its period, r = (V_end - V_start - flow) / (V_start + flow), is exactly the walk's move. A flow
made while the market is closed (the demo's are at 09:00 New York) is therefore also exact for
daily returns taken close to close.

The walk runs backwards from the end, so it cannot invent money: when the value just before a
deposit would be under a tenth of it, that deposit funded the account and the history starts just
after it. Position rows are not written for the history (two thousand snapshots a year per account
would need tens of thousands of them); the snapshots carry ``positions_count`` and
``positions_value`` that follow a walk of their own and end at what the account holds now.
"""

import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from core.fields import quantize_money
from portfolio.models import AccountSnapshot, AccountStatus, Position, PositionStatus, SnapshotKind, SnapshotSource
from trading.calendars import nyse_sessions, session_close, trade_date_of
from trading.models import Account, CashFlow

NOTE = "demo history"
HOURS_UTC = range(14, 22)  # 14:00 to 21:00 UTC: every US session from open to close, winter and summer
SESSION_OPEN = time(9, 30)
DEFAULT_VALUE = Decimal("100000.00")
DEFAULT_EXPOSURE = Decimal("0.70")
DEFAULT_POSITIONS = 5
FUNDING_SHARE = Decimal("0.10")  # under a tenth of a deposit before it: that deposit funded the account
ZERO = Decimal(0)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class DemoHistory:
    account_id: str
    created: int
    first: datetime | None  # the oldest snapshot written (None when nothing was written)
    last: datetime | None
    funded_at: datetime | None  # the deposit the history starts after, when the account was empty before it


@dataclass(frozen=True)
class _Instant:
    at: datetime
    kind: SnapshotKind


class _Sessions:
    """NYSE sessions' open and close times, looked up once per day."""

    def __init__(self, start: datetime, stop: datetime) -> None:
        zone = ZoneInfo(settings.EXCHANGE_TIME_ZONE)
        self.days = nyse_sessions(trade_date_of(start), trade_date_of(stop))
        self.hours = {
            day: (datetime.combine(day, SESSION_OPEN, tzinfo=zone).astimezone(UTC), session_close(day))
            for day in self.days
        }

    def instants(self, start: datetime, stop: datetime, *, include_stop: bool) -> list[_Instant]:
        """Every hour 14:00-21:00 UTC of each session, and its close (which may land on one of them)."""
        found = []
        for day in self.days:
            close = self.hours[day][1]
            for at in sorted({datetime.combine(day, time(hour), tzinfo=UTC) for hour in HOURS_UTC} | {close}):
                if start <= at < stop or (include_stop and at == stop):
                    found.append(_Instant(at=at, kind=SnapshotKind.CLOSE if at == close else SnapshotKind.HOURLY))
        return found

    def open_between(self, after: datetime, until: datetime) -> bool:
        """Whether the market traded at some moment of (after, until]."""
        days = self.days[bisect_left(self.days, trade_date_of(after)) : bisect_right(self.days, trade_date_of(until))]
        return any(self.hours[day][0] < until and self.hours[day][1] > after for day in days)


def _step(rng: random.Random) -> Decimal:
    """An hour's market move: about 0.25% standard deviation, a slight upward drift."""
    return Decimal(rng.randint(-60, 61) + rng.randint(-60, 61)) / Decimal(20000)


def _anchor(account: Account, end: datetime) -> tuple[datetime, Decimal, bool]:
    """Where the history ends: just before the account's first snapshot (so that history and real
    snapshots never interleave, and a second run adds nothing), or at ``end`` with the current value."""
    first = AccountSnapshot.objects.filter(account=account, taken_at__lte=end).order_by("taken_at").first()
    if first is not None and first.net_liquidation is not None:
        return first.taken_at, first.net_liquidation, False
    if first is not None:
        end = first.taken_at
    status = AccountStatus.objects.filter(account=account).first()
    value = status.net_liquidation if status and status.net_liquidation is not None else DEFAULT_VALUE
    return end, value, first is None


def _holdings_now(account: Account, value: Decimal) -> tuple[Decimal, int]:
    """What the account holds now, as the history's end point: share of value in positions, count."""
    count = Position.objects.filter(account=account, status=PositionStatus.OPEN).count() or DEFAULT_POSITIONS
    status = AccountStatus.objects.filter(account=account).first()
    exposure = DEFAULT_EXPOSURE
    if status and status.total_cash is not None and value > 0:
        exposure = min(max((value - status.total_cash) / value, Decimal("0.05")), Decimal("1.50"))
    return exposure, count


def demo_history_build(*, account: Account, end: datetime, days: int = 365, seed: int = 7) -> DemoHistory:
    """Write the account's hourly and CLOSE snapshots for ``days`` before ``end``; return what was written."""
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError(f"end must be timezone-aware, got naive {end.isoformat()}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    end = end.astimezone(UTC).replace(microsecond=0)
    stop, stop_value, include_stop = _anchor(account, end)
    start = end - timedelta(days=days)
    if stop < start or stop_value <= 0:
        return DemoHistory(account.account_id, 0, None, None, None)
    sessions = _Sessions(start, stop)
    instants = sessions.instants(start, stop, include_stop=include_stop)
    if not instants:
        return DemoHistory(account.account_id, 0, None, None, None)

    # Points: the instants, then the stop. From the last instant to the stop the market moves only
    # when the stop is a real snapshot; the current value (include_stop) is what the last instant shows.
    points = [instant.at for instant in instants] + [stop]
    rng = random.Random(seed + account.pk)
    moves = [ZERO] + [_step(rng) for _ in points[1:]]
    for i in range(1, len(points)):
        if not sessions.open_between(points[i - 1], points[i]) or (include_stop and i == len(points) - 1):
            moves[i] = ZERO
    flows = list(
        CashFlow.objects.filter(account=account, at__gt=points[0], at__lte=stop)
        .order_by("at")
        .values_list("at", "kind", "amount")
    )

    # Backwards from the stop: V(i-1) = V(i) / (1 + move(i)) - flows in (t(i-1), t(i)].
    values = [ZERO] * len(points)
    values[-1] = stop_value
    first, funded_at = 0, None
    for i in range(len(points) - 1, 0, -1):
        flow = _flows_in(flows, points[i - 1], points[i])
        before = values[i] / (1 + moves[i]) - flow
        if flow > 0 and before < flow * FUNDING_SHARE:
            first = i
            funded_at = next(at for at, _, _ in reversed(flows) if points[i - 1] < at <= points[i])
            break
        values[i - 1] = before
    if first == len(instants):  # funded after the last instant: nothing to show before it
        return DemoHistory(account.account_id, 0, None, None, funded_at)

    rows = _rows(account, instants[first:], values[first:-1], rng)
    before_count = AccountSnapshot.objects.filter(account=account).count()
    AccountSnapshot.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    created = AccountSnapshot.objects.filter(account=account).count() - before_count
    return DemoHistory(account.account_id, created, rows[0].taken_at, rows[-1].taken_at, funded_at)


def _flows_in(flows: list[tuple[datetime, str, Decimal]], after: datetime, until: datetime) -> Decimal:
    """Net flows in (after, until]: deposits positive."""
    return sum((amount if kind == "DEPOSIT" else -amount for at, kind, amount in flows if after < at <= until), ZERO)


def _rows(account: Account, instants: list[_Instant], values: list[Decimal], rng: random.Random) -> list:
    """The snapshots, with positions count and exposure walking backwards from what is held now."""
    exposure, count = _holdings_now(account, values[-1])
    low, high = min(Decimal("0.40"), exposure), max(Decimal("0.95"), exposure)
    exposures, counts = [ZERO] * len(instants), [0] * len(instants)
    for i in range(len(instants) - 1, -1, -1):
        exposures[i], counts[i] = exposure, count
        exposure = min(max(exposure + Decimal(rng.randint(-2, 2)) / 100, low), high)
        if rng.randrange(8) == 0:
            count = min(max(count + rng.choice((-1, 1)), 1), 12)
    rows = []
    for instant, value, share, held in zip(instants, values, exposures, counts, strict=True):
        net = quantize_money(value.quantize(CENT))  # whole cents, as a broker reports them
        positions_value = quantize_money((value * share).quantize(CENT))
        rows.append(
            AccountSnapshot(
                account=account,
                taken_at=instant.at,
                kind=instant.kind,
                trade_date=trade_date_of(instant.at),
                source=SnapshotSource.BROKER,
                currency=account.base_currency,
                net_liquidation=net,
                total_cash=net - positions_value,
                settled_cash=net - positions_value,
                positions_value=positions_value,
                positions_count=held,
                note=NOTE,
            )
        )
    return rows
