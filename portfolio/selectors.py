"""Reads for positions and sync status, with the joins they need and a fixed number of queries."""

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Case, Count, Exists, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.fields import quantize_money
from core.models import SkipReason, SyncKind, SyncRun, SyncStatus
from marketdata.fx import FxTable
from marketdata.models import Instrument
from marketdata.selectors import bars_between
from portfolio.models import (
    AccountSnapshot,
    AccountStatus,
    MetricsWindow,
    PerformanceMetrics,
    Position,
    PositionEvent,
    PositionEventKind,
    PositionGreeks,
    PositionSnapshot,
    PositionStatus,
)
from portfolio.rules.expiries import is_past_expiry
from portfolio.rules.greeks import PortfolioRisk, PositionGreekValues, RiskRow, portfolio_risk, position_greeks
from sentiment.selectors import confluence_latest_by_symbol
from trading.calendars import exchange_zone, previous_sessions, trade_date_of
from trading.fx import FxTables, amount_base
from trading.models import Account, CashFlow, CashFlowKind, Execution, LedgerInstrument, RoundTrip
from trading.rules.daytrades import PDT_WINDOW_SESSIONS, PdtStatus
from trading.selectors import pdt_status_get, trade_frequency_by_session


def position_list(*, user, account_id: str | None = None, status: str = "open", symbol: str | None = None) -> QuerySet:
    positions = Position.objects.visible_to(user).select_related("account", "instrument", "greeks")
    if status == "open":
        positions = positions.filter(status=PositionStatus.OPEN)
    elif status == "closed":
        positions = positions.filter(status=PositionStatus.CLOSED)
    if account_id:
        positions = positions.filter(account__account_id=account_id)
    if symbol:
        positions = positions.filter(instrument__symbol__iexact=symbol)
    return positions.order_by("account__account_id", "instrument__symbol", "-opened_at", "-id")


def position_event_list(*, position: Position) -> QuerySet:
    return PositionEvent.objects.filter(position=position).order_by("at", "id")


@dataclass(frozen=True)
class AccountSyncStatus:
    account: Account
    latest_run: SyncRun | None
    last_success_at: datetime | None
    in_progress: bool
    stale: bool


def sync_status_list(*, user, kind: SyncKind = SyncKind.POSITIONS) -> list[AccountSyncStatus]:
    """Per visible account: latest run, last success, whether one is running, and staleness."""
    runs = SyncRun.objects.filter(account=OuterRef("pk"), kind=kind)
    accounts = (
        Account.objects.visible_to(user)
        .annotate(
            latest_run_id=Subquery(runs.order_by("-started_at", "-id").values("pk")[:1]),
            last_success_at=Max("sync_runs__finished_at", filter=_success_filter(kind)),
            in_progress=Exists(runs.filter(status=SyncStatus.RUNNING)),
        )
        .order_by("account_id")
    )
    accounts = list(accounts)
    latest = SyncRun.objects.select_related("account").in_bulk([a.latest_run_id for a in accounts if a.latest_run_id])
    stale_before = timezone.now() - timedelta(seconds=settings.POSITION_SYNC_STALE_AFTER)
    return [
        AccountSyncStatus(
            account=a,
            latest_run=latest.get(a.latest_run_id),
            last_success_at=a.last_success_at,
            in_progress=a.in_progress,
            stale=a.last_success_at is None or a.last_success_at < stale_before,
        )
        for a in accounts
    ]


def _success_filter(kind: SyncKind) -> Q:
    return Q(sync_runs__kind=kind, sync_runs__status=SyncStatus.SUCCESS)


def account_status_list(*, user) -> QuerySet:
    """The broker's latest account values of every visible account (one query)."""
    return (
        AccountStatus.objects.filter(account__in=Account.objects.visible_to(user))
        .select_related("account")
        .order_by("account__account_id")
    )


def snapshot_list(*, user, interval: str = "hour") -> QuerySet:
    """Snapshots of visible accounts, oldest first; ``interval=day`` keeps the last one of each trade
    date (the close snapshot where there is one)."""
    snapshots = AccountSnapshot.objects.filter(account__in=Account.objects.visible_to(user)).select_related("account")
    if interval == "day":
        last_of_day = (
            AccountSnapshot.objects.filter(account=OuterRef("account"), trade_date=OuterRef("trade_date"))
            .order_by("-taken_at")
            .values("taken_at")[:1]
        )
        snapshots = snapshots.filter(taken_at=Subquery(last_of_day))
    return snapshots.order_by("account__account_id", "taken_at")


def metrics_get(*, account: Account, window: str) -> PerformanceMetrics | None:
    return PerformanceMetrics.objects.filter(account=account, window=window).order_by("-as_of").first()


@dataclass(frozen=True)
class CashBalances:
    """The broker's cash per currency as last read, each in its own currency, and their total in the base
    currency (None when ``fx_missing`` lists currencies without a rate)."""

    balances: list[tuple[str, Decimal]]
    total_base: Decimal | None
    fx_missing: list[str]

    @classmethod
    def of(cls, row) -> "CashBalances | None":
        """From an AccountStatus or AccountSnapshot row; None when it kept no cash per currency."""
        if not row or not row.cash_balances:
            return None
        return cls(
            balances=[(currency, Decimal(amount)) for currency, amount in sorted(row.cash_balances.items())],
            total_base=row.cash_total_base,
            fx_missing=list(row.cash_fx_missing or []),
        )


@dataclass(frozen=True)
class PortfolioSummary:
    """An account's headline figures, every amount in its base currency (``currency``).

    ``unrealized_pnl`` is the broker's own base-currency figure when it gave one (IBKR converts with its
    rates), else the database's: the open positions' P&L each converted at the current rate.
    ``unrealized_pnl_database`` is the database's figure whatever the broker said, and
    ``unrealized_pnl_differs`` says whether the two disagree by more than a rounding (a cent per
    position). ``market_value`` and ``realized_pnl`` (each fill at the rate of its trade date) are the
    database's. A figure with a part in a currency without a known rate is None, and that currency is
    listed in ``fx_missing``: never a partial sum, never a rate of 1.
    """

    account: Account
    portfolio_value: Decimal | None
    cash_balance: Decimal | None
    positions_count: int
    daily_pnl: Decimal | None
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal | None
    win_rate: Decimal | None
    total_trades: int
    last_synced_at: datetime | None
    stale: bool
    source: str
    currency: str = "USD"
    market_value: Decimal | None = None
    unrealized_pnl_source: str = "database"  # "broker": the broker's BASE figure
    unrealized_pnl_database: Decimal | None = None
    unrealized_pnl_differs: bool = False
    fx_missing: list[str] = field(default_factory=list)
    cash: CashBalances | None = None  # cash per currency (the overview shows it under Cash)


# A cent per position: the broker's and the database's totals round each position apart.
SUMMARY_ROUNDING_PER_POSITION = Decimal("0.01")


def portfolio_summary_get(*, account: Account) -> PortfolioSummary:
    """The account's figures from the database only (never the broker): fast whether or not it is up.

    A fixed number of queries: the open positions are summed per currency and the fills' realized P&L
    per currency and (for a currency other than the base) per trade date, then converted with one load
    of the rates they need (none for an account that trades only in its base currency).
    """
    base = account.base_currency
    status = AccountStatus.objects.filter(account=account).first()
    by_currency = list(
        Position.objects.filter(account=account, status=PositionStatus.OPEN)
        .values("instrument__currency")
        .order_by("instrument__currency")
        .annotate(count=Count("id"), unrealized=Sum("unrealized_pnl"), market=Sum("market_value"))
    )
    foreign_day = Case(When(instrument__currency=base, then=Value(None)), default=F("trade_date"))
    fills = list(
        Execution.objects.filter(account=account)
        .annotate(fx_day=foreign_day)
        .values("instrument__currency", "fx_day")
        .order_by("instrument__currency", "fx_day")
        .annotate(count=Count("id"), realized=Sum("realized_pnl"))
    )
    last_success = (
        SyncRun.objects.filter(account=account, kind=SyncKind.POSITIONS, status=SyncStatus.SUCCESS)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    stale = last_success is None or last_success < timezone.now() - timedelta(
        seconds=settings.POSITION_SYNC_STALE_AFTER
    )
    metrics = metrics_get(account=account, window=MetricsWindow.ALL)
    currencies = {row["instrument__currency"] for row in by_currency} | {row["instrument__currency"] for row in fills}
    table = FxTable.load(base=base, currencies=currencies)
    unrealized = table.total((row["unrealized"], row["instrument__currency"], None) for row in by_currency)
    market = table.total((row["market"], row["instrument__currency"], None) for row in by_currency)
    realized = table.total(
        (row["realized"] or Decimal(0), row["instrument__currency"], row["fx_day"]) for row in fills if row["realized"]
    )
    positions_count = sum(row["count"] for row in by_currency)
    database_unrealized = quantize_money(unrealized.amount) if by_currency else None
    broker_unrealized = status.unrealized_pnl if status and status.currency == base else None
    differs = (
        broker_unrealized is not None
        and database_unrealized is not None
        and abs(broker_unrealized - database_unrealized) > SUMMARY_ROUNDING_PER_POSITION * max(positions_count, 1)
    )
    value = status.net_liquidation if status else None
    return PortfolioSummary(
        account=account,
        portfolio_value=value,
        cash_balance=status.total_cash if status else None,
        positions_count=positions_count,
        daily_pnl=_daily_pnl(account, value),
        unrealized_pnl=broker_unrealized if broker_unrealized is not None else database_unrealized,
        realized_pnl=quantize_money(realized.amount),
        win_rate=metrics.win_rate if metrics else None,
        total_trades=sum(row["count"] for row in fills),
        last_synced_at=last_success,
        stale=stale,
        source="database" if stale else "broker",
        currency=base,
        market_value=quantize_money(market.amount) if by_currency else None,
        unrealized_pnl_source="broker" if broker_unrealized is not None else "database",
        unrealized_pnl_database=database_unrealized,
        unrealized_pnl_differs=differs,
        fx_missing=sorted(unrealized.missing | market.missing | realized.missing),
        cash=CashBalances.of(status),
    )


def _daily_pnl(account: Account, value: Decimal | None) -> Decimal | None:
    """The change in value since the last snapshot of an earlier trade date (the previous close), less
    the deposits and withdrawals since then: a deposit is not a gain.

    One query whether or not there is such a snapshot: the flows since it are subqueries of the query
    that finds it. (A second query for them, run only when it is found, made the page's query count
    depend on how far back the account's snapshots go.)
    """
    if value is None:
        return None
    today = trade_date_of(timezone.now())
    previous = (
        AccountSnapshot.objects.filter(account=account, trade_date__lt=today, net_liquidation__isnull=False)
        .order_by("-taken_at")
        .annotate(
            deposits=_flows_since_snapshot(CashFlowKind.DEPOSIT),
            withdrawals=_flows_since_snapshot(CashFlowKind.WITHDRAWAL),
        )
        .values_list("net_liquidation", "deposits", "withdrawals")
        .first()
    )
    if previous is None:
        return None
    previous_value, deposits, withdrawals = previous
    return value - previous_value - ((deposits or Decimal(0)) - (withdrawals or Decimal(0)))


def _flows_since_snapshot(kind: CashFlowKind) -> Subquery:
    """The sum of the account's cash flows of ``kind`` after the outer snapshot was taken (None if none)."""
    flows = (
        CashFlow.objects.filter(account=OuterRef("account"), kind=kind, at__gt=OuterRef("taken_at"))
        .order_by()
        .values("account")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Subquery(flows)


def metrics_history(*, account: Account, window: str = MetricsWindow.ALL, since=None) -> QuerySet:
    """Daily metrics rows (for the equity curve, drawdown and P&L charts), oldest first."""
    rows = PerformanceMetrics.objects.filter(account=account, window=window)
    if since is not None:
        rows = rows.filter(as_of__gte=since)
    return rows.order_by("as_of")


# --- Reads for the dashboard pages (Compliance, Performance) -------------------------------------
# Appended below the shared header while others edit this module; the imports can be hoisted later.


@dataclass(frozen=True)
class AccountPdt:
    status: PdtStatus | None
    error: str | None  # why there is no status (a date outside the exchange calendar)
    broker_day_trades_remaining: int | None  # IBKR's DayTradesRemaining, as last read
    broker_read_at: datetime | None
    equity: Decimal | None
    sessions: list[tuple[date, int, int]]  # the window: (session, trades, day trades)


def account_pdt_get(*, account: Account, today: date) -> AccountPdt:
    """Where ``account`` stands today against the pattern-day-trader rule in force for it, with the
    broker's own DayTradesRemaining figure (what it enforces) when it reported one, and the window's
    sessions one by one."""
    broker = AccountStatus.objects.filter(account=account).values_list(
        "day_trades_remaining", "net_liquidation", "read_at"
    ).first() or (None, None, None)
    remaining, equity, read_at = broker
    try:
        status = pdt_status_get(account=account, as_of=today, broker_day_trades_remaining=remaining, equity=equity)
        sessions = previous_sessions(today, PDT_WINDOW_SESSIONS)
    except ValueError as exc:  # outside the exchange calendar's range
        return AccountPdt(None, str(exc), remaining, read_at, equity, [])
    return AccountPdt(
        status=status,
        error=None,
        broker_day_trades_remaining=remaining,
        broker_read_at=read_at,
        equity=equity,
        sessions=trade_frequency_by_session(account=account, sessions=sessions),
    )


def account_pdt_status_get(*, account: Account, as_of: date | None = None) -> dict:
    """The PDT status of ``account`` on ``as_of`` (default: today, exchange time) as the API answers it:
    ``account`` (its id), ``date`` and the fields of ``PdtStatus``. Only for today does it carry the
    broker's DayTradesRemaining and equity: they are figures for now, not for a past date.

    Raises ValueError for a date outside the exchange calendar's range.
    """
    today = trade_date_of(timezone.now())
    as_of = as_of or today
    broker_figure = equity = None
    if as_of == today:
        broker_figure, equity = AccountStatus.objects.filter(account=account).values_list(
            "day_trades_remaining", "net_liquidation"
        ).first() or (None, None)
    status = pdt_status_get(account=account, as_of=as_of, broker_day_trades_remaining=broker_figure, equity=equity)
    return {"account": account.account_id, "date": as_of, **asdict(status)}


@dataclass(frozen=True)
class PerformanceSeries:
    """Chart data, numbers as strings (never floats): one point per day and one bar per month."""

    points: list[dict]  # {"date", "twr_index", "twr", "drawdown", "daily_pnl"}
    monthly_pnl: list[dict]  # {"month": "2026-11", "pnl", "days"}


def performance_series_get(*, account: Account) -> PerformanceSeries:
    """The equity curve (TWR index), drawdown and monthly P&L of ``account`` from its daily metrics.

    Monthly P&L is the sum of the days' ``daily_pnl``: the change in account value less deposits and
    withdrawals, so it includes unrealized gains and losses, and it adds up to the equity curve (a
    sum of realized P&L by close month would not). Days without a figure add nothing.
    """
    rows = metrics_history(account=account).values_list("as_of", "twr_index", "twr", "drawdown", "daily_pnl")
    points, months, days = [], {}, {}
    for as_of, twr_index, twr, drawdown, daily_pnl in rows:
        points.append(
            {
                "date": as_of.isoformat(),
                "twr_index": _plain(twr_index),
                "twr": _plain(twr),
                "drawdown": _plain(drawdown),
                "daily_pnl": _plain(daily_pnl),
            }
        )
        if daily_pnl is not None:
            month = f"{as_of:%Y-%m}"
            months[month] = months.get(month, Decimal(0)) + daily_pnl
            days[month] = days.get(month, 0) + 1
    monthly = [{"month": m, "pnl": _plain(total), "days": days[m]} for m, total in months.items()]
    return PerformanceSeries(points=points, monthly_pnl=monthly)


def _plain(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


# --- Reads for the dashboard pages (Overview, Positions, Sync health) ----------------------------
# Appended while others edit this module; the imports can be hoisted later.


def _broker_down() -> Q:
    return Q(status=SyncStatus.SKIPPED, skip_reason__in=SkipReason.broker_down())


def broker_unreachable_since(*, account: Account) -> datetime | None:
    """When the broker stopped answering this account's position syncs; None while it answers.

    The broker is unreachable when a position sync was SKIPPED because of it after the last successful
    one (or with no success at all). "Since" is the start of the first such run: the first moment we
    knew it was down (the last success only proves it was still up then). One query.
    """
    runs = SyncRun.objects.filter(account=account, kind=SyncKind.POSITIONS)
    successes = runs.filter(status=SyncStatus.SUCCESS)
    last_success = successes.order_by("-started_at").values("started_at")[:1]
    down = runs.filter(_broker_down()).filter(Q(started_at__gt=Subquery(last_success)) | ~Exists(successes))
    return down.aggregate(since=Min("started_at"))["since"]


@dataclass(frozen=True)
class AccountOverview:
    summary: PortfolioSummary
    unreachable_since: datetime | None
    latest_run: SyncRun | None  # the latest position sync, whatever its status
    running_since: datetime | None  # the start of the position sync running now, if one is
    positions: list[Position]
    fills: list[Execution]
    # The latest confluence score of each open position's symbol (sentiment), by symbol.
    confluence: dict = field(default_factory=dict)
    risk: PortfolioRisk | None = None  # the option risk per underlying, from the stored Greeks


def held_symbols_get(*, user=None) -> list[str]:
    """Symbols of the open positions ``user`` may see (None: of every account), sorted; one query.

    Registered with ``sentiment.hooks`` so the Sentiment page lists them first and the sources ask
    about them."""
    positions = Position.objects.filter(status=PositionStatus.OPEN)
    if user is not None:
        positions = positions.filter(account__in=Account.objects.visible_to(user))
    return sorted(set(positions.values_list("instrument__symbol", flat=True)))


def account_overview_get(*, account: Account, fills: int = 15, positions: int = 50) -> AccountOverview:
    """Everything the overview page shows for one account, in a number of queries that does not
    depend on how many positions, fills or runs it has."""
    open_positions = (
        Position.objects.filter(account=account, status=PositionStatus.OPEN)
        .select_related("account", "instrument")
        .order_by("instrument__symbol", "-opened_at", "-id")  # as the positions API orders one account
    )
    recent = Execution.objects.filter(account=account).select_related("instrument").order_by("-executed_at", "-id")
    runs = SyncRun.objects.filter(account=account, kind=SyncKind.POSITIONS)
    # While a sync runs, the latest run can be a SKIPPED "another sync is running" one: the running one's
    # start comes along in the same query.
    running = runs.filter(status=SyncStatus.RUNNING).order_by("started_at").values("started_at")[:1]
    latest_run = runs.annotate(running_since=Subquery(running)).order_by("-started_at", "-id").first()
    # The rest are one click away, on the positions page. Each with its figures in base (current rate).
    shown = positions_in_base(list(open_positions[:positions]))
    confluence = confluence_latest_by_symbol(symbols=[p.instrument.symbol for p in shown])
    for position in shown:
        position.confluence = confluence.get(position.instrument.symbol)
    return AccountOverview(
        summary=portfolio_summary_get(account=account),
        unreachable_since=broker_unreachable_since(account=account),
        latest_run=latest_run,
        running_since=latest_run.running_since if latest_run else None,
        positions=shown,
        fills=list(recent[:fills]),
        confluence=confluence,
        risk=portfolio_risk_get(account=account),
    )


# ?sort= keys of the positions page -> the field they order by. Anything else falls back to the default.
POSITION_SORTS = {
    "symbol": "instrument__symbol",
    "quantity": "quantity",
    "avg_price": "average_price",
    "price": "current_price",
    "market_value": "market_value",
    "unrealized_pnl": "unrealized_pnl",
    "unrealized_pct": "unrealized_pnl_pct",
    "realized_pnl": "realized_pnl",
    "opened": "opened_at",
    "closed": "closed_at",
}
POSITION_DEFAULT_SORT = {"open": "symbol", "closed": "-closed"}


def position_sort_clean(*, sort: str | None, status: str) -> str:
    """``sort`` when it is a known key (``-`` for descending), else the default of the tab."""
    if sort and sort.removeprefix("-") in POSITION_SORTS:
        return sort
    return POSITION_DEFAULT_SORT[status]


# The events that end a position: a close, or an option's end of life.
CLOSING_KINDS = (
    PositionEventKind.CLOSED,
    PositionEventKind.EXPIRED,
    PositionEventKind.EXERCISED,
    PositionEventKind.ASSIGNED,
)


def positions_past_expiry(*, now: datetime, account_ids: list[str] | None = None) -> list[Position]:
    """Open option (and future) positions whose expiry session has closed: awaiting settlement (the
    broker still lists them, or the sync has not run since). One query."""
    today = now.astimezone(exchange_zone()).date()
    positions = Position.objects.filter(
        status=PositionStatus.OPEN, instrument__expiry__isnull=False, instrument__expiry__lte=today
    ).select_related("account", "instrument")
    if account_ids is not None:
        positions = positions.filter(account__account_id__in=account_ids)
    return [p for p in positions.order_by("pk") if is_past_expiry(p, now=now)]


def position_table_list(*, user, account_id: str | None, status: str, sort: str) -> QuerySet:
    """Open or closed positions of one account for the positions page, ordered by a whitelisted key.

    Closed rows carry ``closed_quantity``: the size they had just before the close (their own
    quantity is 0 by then).
    """
    sort = position_sort_clean(sort=sort, status=status)
    field = F(POSITION_SORTS[sort.removeprefix("-")])
    order = field.desc(nulls_last=True) if sort.startswith("-") else field.asc(nulls_last=True)
    positions = position_list(user=user, account_id=account_id, status=status).order_by(order, "-opened_at", "-id")
    if status == "closed":
        closing = PositionEvent.objects.filter(position=OuterRef("pk"), kind__in=CLOSING_KINDS).order_by("-at")
        positions = positions.annotate(closed_quantity=Subquery(closing.values("quantity_before")[:1]))
    return positions


@dataclass(frozen=True)
class PositionCounts:
    open: int
    closed: int
    market_value: Decimal | None  # of the open positions, in ``currency`` (the account's base)
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal | None  # of the closed positions, each at the rate of its closing day
    currency: str = "USD"
    fx_missing: list[str] = field(default_factory=list)  # currencies without a rate: their totals are None


def position_counts_get(*, user, account_id: str | None) -> PositionCounts:
    """The tab counts and totals of the positions page in the account's base currency: two queries (the
    sums per base and position currency, and per closing day for a foreign currency; then the rates,
    none when everything is in the base currency). Accounts of different base currencies are never
    added together: their totals are None."""
    positions = Position.objects.visible_to(user)
    if account_id:
        positions = positions.filter(account__account_id=account_id)
    is_open, is_closed = Q(status=PositionStatus.OPEN), Q(status=PositionStatus.CLOSED)
    foreign_close_day = Case(
        When(Q(instrument__currency=F("account__base_currency")) | is_open, then=Value(None)),
        default=TruncDate("closed_at", tzinfo=exchange_zone()),
    )
    rows = list(
        positions.annotate(fx_day=foreign_close_day)
        .values("account__base_currency", "instrument__currency", "fx_day")
        .order_by("account__base_currency", "instrument__currency", "fx_day")
        .annotate(
            open=Count("id", filter=is_open),
            closed=Count("id", filter=is_closed),
            market_value=Sum("market_value", filter=is_open),
            unrealized_pnl=Sum("unrealized_pnl", filter=is_open),
            realized_pnl=Sum("realized_pnl", filter=is_closed),
        )
    )
    bases = {row["account__base_currency"] for row in rows}
    counts = {"open": sum(r["open"] for r in rows), "closed": sum(r["closed"] for r in rows)}
    if len(bases) > 1:
        return PositionCounts(**counts, market_value=None, unrealized_pnl=None, realized_pnl=None, currency="")
    base = bases.pop() if bases else _user_base_currency(user, account_id)
    table = FxTable.load(base=base, currencies={row["instrument__currency"] for row in rows})
    market = table.total((r["market_value"], r["instrument__currency"], None) for r in rows if r["open"])
    unrealized = table.total((r["unrealized_pnl"], r["instrument__currency"], None) for r in rows if r["open"])
    realized = table.total((r["realized_pnl"], r["instrument__currency"], r["fx_day"]) for r in rows if r["closed"])
    return PositionCounts(
        **counts,
        market_value=quantize_money(market.amount) if counts["open"] else None,
        unrealized_pnl=quantize_money(unrealized.amount) if counts["open"] else None,
        realized_pnl=quantize_money(realized.amount) if counts["closed"] else None,
        currency=base,
        fx_missing=sorted(market.missing | unrealized.missing | realized.missing),
    )


def _user_base_currency(user, account_id: str | None) -> str:
    accounts = Account.objects.visible_to(user)
    if account_id:
        accounts = accounts.filter(account_id=account_id)
    return accounts.values_list("base_currency", flat=True).first() or "USD"


def positions_in_base(positions: list[Position]) -> list[Position]:
    """Set ``base_currency``, ``fx_rate``, ``market_value_base``, ``unrealized_pnl_base`` and
    ``realized_pnl_base`` on each of ``positions`` (their account and instrument joined): market value
    and unrealized P&L at the current rate, a closed position's realized P&L at its closing day's rate.
    An open position's realized P&L (partial closes on several days) has a base value only in the base
    currency. A missing rate leaves the figure None. One query, none when all are in their base."""
    tables = FxTables.load((p.account.base_currency, p.instrument.currency) for p in positions)
    for p in positions:
        base, currency = p.account.base_currency, p.instrument.currency
        rate = tables.rate(currency, base=base)
        p.base_currency = base
        p.fx_rate = rate.rate if rate else None
        p.market_value_base = amount_base(tables.convert(p.market_value, currency, base=base))
        p.unrealized_pnl_base = amount_base(tables.convert(p.unrealized_pnl, currency, base=base))
        if p.closed_at is not None:
            closed_on = trade_date_of(p.closed_at)
            p.realized_pnl_base = amount_base(tables.convert(p.realized_pnl, currency, base=base, on=closed_on))
        else:
            same = currency.upper() == base.upper()
            p.realized_pnl_base = quantize_money(p.realized_pnl) if same else None
    return positions


def position_get(*, user, pk: int) -> Position | None:
    """One position the user may see, with what its detail page shows next to it; None otherwise."""
    return (
        Position.objects.visible_to(user)
        .select_related("account", "instrument", "opening_execution", "closing_execution", "greeks")
        .filter(pk=pk)
        .first()
    )


def sync_run_list(
    *, user, kind: str | None = None, status: str | None = None, account_id: str | None = None
) -> QuerySet:
    """Sync runs, newest first: staff see every run (also those of no account, such as market data),
    a trader those of their accounts. Unknown filter values are the caller's to drop."""
    runs = SyncRun.objects.select_related("account")
    if not user.is_staff:
        runs = runs.filter(account__in=Account.objects.visible_to(user))
    if kind:
        runs = runs.filter(kind=kind)
    if status:
        runs = runs.filter(status=status)
    if account_id:
        runs = runs.filter(account__account_id=account_id)
    return runs.order_by("-started_at", "-id")


# --- Positions from the fills: the account's mode and its differences with the broker -------------
POSITIONS_MODE_FILLS, POSITIONS_MODE_SYNC = "fills", "sync"


def positions_mode_get(*, account: Account) -> str:
    """The account's mode: "fills" when the ledger has fills for it (its positions are built from them
    and the broker sync reconciles), else "sync" (the broker sync drives them). One query."""
    has_fills = LedgerInstrument.objects.filter(account=account).exists()
    return POSITIONS_MODE_FILLS if has_fills else POSITIONS_MODE_SYNC


def reconcile_open_list(*, user, limit: int = 100) -> list[PositionEvent]:
    """The differences with the broker not resolved yet, of the accounts ``user`` sees, newest first."""
    return list(
        PositionEvent.objects.filter(
            kind=PositionEventKind.RECONCILE,
            resolved_at__isnull=True,
            position__account__in=Account.objects.visible_to(user),
        )
        .select_related("position__account", "position__instrument")
        .order_by("-at", "-id")[:limit]
    )


def position_round_trip_get(*, position: Position) -> RoundTrip | None:
    """The round trip that is this position's holding: the one with the same opening fill."""
    if not position.opening_execution_id or position.status != PositionStatus.CLOSED:
        return None
    return RoundTrip.objects.filter(
        account_id=position.account_id,
        instrument_id=position.instrument_id,
        opening_execution_id=position.opening_execution_id,
    ).first()


# --- option Greeks -----------------------------------------------------------------------------
OPTION_SEC_TYPES = ("OPT", "FOP")


def _plain_decimal(value) -> str | None:
    return None if value is None else f"{value:f}"


def position_greek_values_get(*, greeks: PositionGreeks | None, position: Position) -> PositionGreekValues | None:
    """The position's own Greeks (per share x multiplier x signed quantity); None without known ones."""
    if greeks is None or None in (greeks.delta, greeks.gamma, greeks.theta, greeks.vega):
        return None
    return position_greeks(
        delta=greeks.delta,
        gamma=greeks.gamma,
        theta=greeks.theta,
        vega=greeks.vega,
        multiplier=position.instrument.multiplier,
        quantity=position.quantity,
        underlying_price=greeks.underlying_price,
    )


def entry_greeks_dict(greeks: PositionGreeks) -> dict | None:
    """The entry set of a position's Greeks, JSON-ready (decimals as strings); None when none was recorded."""
    if not greeks.entry_source:
        return None
    return {
        "source": greeks.entry_source,
        "delta": _plain_decimal(greeks.entry_delta),
        "gamma": _plain_decimal(greeks.entry_gamma),
        "theta": _plain_decimal(greeks.entry_theta),
        "vega": _plain_decimal(greeks.entry_vega),
        "iv": _plain_decimal(greeks.entry_iv),
        "underlying_price": _plain_decimal(greeks.entry_underlying_price),
        "days_to_expiry": _plain_decimal(greeks.entry_days_to_expiry),
        "recorded_at": greeks.entry_at.isoformat(),
    }


def round_trip_entry_greeks_get(round_trips: list[RoundTrip]) -> dict[int, dict]:
    """The entry Greeks of the option round trips among ``round_trips``, by round trip id: those of the
    position that is the round trip's holding (same opening fill). One query, none without options."""
    options = {
        (rt.account_id, rt.opening_execution_id): rt.pk
        for rt in round_trips
        if rt.opening_execution_id and rt.instrument.sec_type in OPTION_SEC_TYPES
    }
    if not options:
        return {}
    rows = PositionGreeks.objects.filter(
        position__opening_execution_id__in={execution for _, execution in options}
    ).select_related("position")
    found = {}
    for greeks in rows:
        key = (greeks.position.account_id, greeks.position.opening_execution_id)
        entry = entry_greeks_dict(greeks)
        if key in options and entry is not None:
            found[options[key]] = entry
    return found


def portfolio_risk_get(*, account: Account) -> PortfolioRisk:
    """The account's option risk per underlying (its options and their underlying's stock) with totals,
    from the stored Greeks: one query, whatever the number of positions."""
    positions = (
        Position.objects.filter(account=account, status=PositionStatus.OPEN)
        .exclude(quantity=0)
        .select_related("instrument", "greeks")
        .only(
            "quantity",
            "current_price",
            "instrument__symbol",
            "instrument__currency",
            "instrument__sec_type",
            "instrument__multiplier",
            *(f"greeks__{name}" for name in ("delta", "gamma", "theta", "vega", "underlying_price")),
        )
    )
    rows = []
    for position in positions:
        instrument = position.instrument
        is_option = instrument.sec_type in OPTION_SEC_TYPES
        if not is_option and instrument.sec_type != "STK":
            continue
        greeks = getattr(position, "greeks", None) if is_option else None
        rows.append(
            RiskRow(
                symbol=instrument.symbol,
                currency=instrument.currency,
                is_option=is_option,
                quantity=position.quantity,
                multiplier=instrument.multiplier,
                price=position.current_price,
                delta=greeks.delta if greeks else None,
                gamma=greeks.gamma if greeks else None,
                theta=greeks.theta if greeks else None,
                vega=greeks.vega if greeks else None,
                underlying_price=greeks.underlying_price if greeks else None,
            )
        )
    return portfolio_risk(rows)


def position_greeks_history(*, position: Position, limit: int = 500) -> list:
    """The position's Greeks over time: its instrument's rows in the account's snapshots while it was
    open, oldest first (at most ``limit``, the latest ones). One query."""
    rows = PositionSnapshot.objects.filter(
        snapshot__account_id=position.account_id,
        instrument_id=position.instrument_id,
        snapshot__taken_at__gte=position.opened_at.replace(microsecond=0),  # snapshots are stamped to the second
        greeks_source__in=["BROKER", "COMPUTED"],
    )
    if position.closed_at is not None:
        rows = rows.filter(snapshot__taken_at__lte=position.closed_at)
    latest = rows.select_related("snapshot").order_by("-snapshot__taken_at")[:limit]
    return list(reversed(list(latest)))


# --- the position page's price chart --------------------------------------------------------------
CHART_MAX_BARS = 2000


@dataclass(frozen=True)
class PositionChart:
    bar_size: str
    instrument_label: str  # the charted instrument (an option's underlying stock)
    note: str
    data: dict  # for json_script: bars, fills and lifecycle events, numbers as strings


def chart_bar_size(held: timedelta) -> str:
    """The bar size that shows a holding of this length well: minutes for a day trade, days for a swing."""
    if held <= timedelta(days=2):
        return "5m"
    if held <= timedelta(days=20):
        return "1h"
    return "1d"


def position_chart_get(
    *, position: Position, events: list[PositionEvent], now: datetime | None = None
) -> PositionChart:
    """Stored bars around the holding (the bar size follows its length), its fills at their time and
    price (buys and sells apart) and its other lifecycle events. From the database only: at most three
    queries (the underlying of an option, the bars, coarser bars when the first size has none)."""
    now = now or timezone.now()
    instrument = position.instrument
    note = ""
    charted, fills_fit = instrument, True
    if instrument.sec_type != "STK":
        underlying = Instrument.objects.filter(symbol=instrument.symbol, sec_type="STK").first()
        if underlying is not None:
            charted, fills_fit = underlying, False
            note = f"The underlying {underlying.symbol}; the option's fills are premiums, listed below the chart."
    opened = position.opened_at
    closed = position.closed_at or now
    held = closed - opened
    bar_size = chart_bar_size(held)
    pad = max(held / 4, {"5m": timedelta(hours=6), "1h": timedelta(days=2), "1d": timedelta(days=20)}[bar_size])
    bars = list(_chart_bars(charted.pk, bar_size, opened - pad, closed + pad))
    if not bars and bar_size != "1d":
        bar_size = "1d"
        bars = list(_chart_bars(charted.pk, bar_size, opened - timedelta(days=20), closed + timedelta(days=20)))
    zone = ZoneInfo(settings.EXCHANGE_TIME_ZONE)

    def x(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    def bar_x(start: datetime) -> str:
        return start.strftime("%Y-%m-%d") if bar_size == "1d" else x(start)

    fills, others = [], []
    for event in events:
        label = (
            f"{event.get_kind_display()} {event.quantity_before.normalize():f} → {event.quantity_after.normalize():f}"
        )
        if event.execution_id and fills_fit and event.price is not None:
            side = "BUY" if event.quantity_after > event.quantity_before else "SELL"
            fills.append({"x": x(event.at), "price": str(event.price), "side": side, "label": label})
        else:
            others.append(
                {"x": x(event.at), "price": None if event.price is None else str(event.price), "label": label}
            )
    data = {
        "bar_size": bar_size,
        "bars": {
            "x": [bar_x(b[0]) for b in bars],
            "open": [str(b[1]) for b in bars],
            "high": [str(b[2]) for b in bars],
            "low": [str(b[3]) for b in bars],
            "close": [str(b[4]) for b in bars],
        },
        "fills": fills,
        "events": others,
    }
    return PositionChart(bar_size=bar_size, instrument_label=charted.display_name, note=note, data=data)


def _chart_bars(instrument_id: int, bar_size: str, since: datetime, until: datetime):
    # The newest CHART_MAX_BARS of the window, returned oldest first.
    rows = (
        bars_between(instrument_id=instrument_id, bar_size=bar_size, since=since, until=until)
        .order_by("-start")
        .values_list("start", "open", "high", "low", "close")[:CHART_MAX_BARS]
    )
    return reversed(list(rows))


# --- What the order risk checks ask of portfolio (registered in PortfolioConfig.ready) ------------
def account_risk_figures_get(account: Account):
    """The broker's last values of the account and its previous close, for trading's order checks.

    One query, written out: the account status, and the last snapshot of an earlier trade date with the
    net flows (deposits less withdrawals) since it. Every order asks for it, and the ORM spent several
    times the database's time compiling the same statement (measured: 3.5 ms of CPU against 0.4 ms).
    """
    from django.db import connection

    from core.fields import quantize_money
    from trading.hooks import AccountFigures

    today = trade_date_of(timezone.now())
    status, snapshot, flows = (
        connection.ops.quote_name(m._meta.db_table) for m in (AccountStatus, AccountSnapshot, CashFlow)
    )
    sql = f"""
        SELECT st.net_liquidation, st.day_trades_remaining, st.account_id IS NOT NULL, snap.net_liquidation,
               (SELECT SUM(CASE WHEN f.kind = %s THEN f.amount ELSE -f.amount END) FROM {flows} f
                 WHERE f.account_id = %s AND f.kind IN (%s, %s) AND f.at > snap.taken_at)
          FROM (SELECT 1 AS one) o
          LEFT JOIN {status} st ON st.account_id = %s
          LEFT JOIN (SELECT net_liquidation, taken_at FROM {snapshot}
                      WHERE account_id = %s AND trade_date < %s AND net_liquidation IS NOT NULL
                      ORDER BY taken_at DESC LIMIT 1) snap ON 1 = 1
    """  # noqa: S608 (the models' table names; every value is a parameter)
    params = [
        CashFlowKind.DEPOSIT.value,
        account.pk,
        CashFlowKind.DEPOSIT.value,
        CashFlowKind.WITHDRAWAL.value,
        account.pk,
        account.pk,
        connection.ops.adapt_datefield_value(today),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        status_value, day_trades, has_status, previous_value, previous_flows = cursor.fetchone()

    def money(value) -> Decimal | None:  # SQLite answers sums and numbers as floats; the ORM quantizes them
        return None if value is None else quantize_money(value if isinstance(value, Decimal) else Decimal(str(value)))

    figures = {}
    if has_status:
        figures["net_liquidation"], figures["day_trades_remaining"] = money(status_value), day_trades
    if previous_value is not None:
        figures["previous_close"] = money(previous_value)
        figures["flows_since_close"] = money(previous_flows) or Decimal(0)
    return AccountFigures(**figures)


def fx_needs_get() -> list[tuple[str, str, date]]:
    """The currency pairs the ledger holds (marketdata's ``fx_needs`` hook): per account base currency,
    every other currency of its fills, positions and cash balances, from the account's first fill (a cash
    balance of an account without fills: from ``FX_RATE_MAX_AGE_DAYS`` ago). Three queries."""
    first_fill = dict(
        Execution.objects.order_by()
        .values("account_id")
        .annotate(first=Min("executed_at"))
        .values_list("account_id", "first")
    )
    fallback = timezone.localdate() - timedelta(days=settings.FX_RATE_MAX_AGE_DAYS)
    needs: list[tuple[str, str, date]] = []
    held = (
        Execution.objects.exclude(instrument__currency=F("account__base_currency"))
        .values("account__base_currency", "instrument__currency")
        .annotate(first=Min("executed_at"))
        .values_list("instrument__currency", "account__base_currency", "first")
        .order_by()
        .union(
            Position.objects.exclude(instrument__currency=F("account__base_currency"))
            .values("account__base_currency", "instrument__currency")
            .annotate(first=Min("opened_at"))
            .values_list("instrument__currency", "account__base_currency", "first")
            .order_by()
        )
    )
    for currency, base, first in held:
        needs.append((currency, base, timezone.localdate(first)))
    for account_id, base, balances in AccountStatus.objects.filter(cash_balances__isnull=False).values_list(
        "account_id", "currency", "cash_balances"
    ):
        first = first_fill.get(account_id)
        for currency in balances or {}:
            if currency != base:
                needs.append((currency, base, timezone.localdate(first) if first else fallback))
    return needs
