"""Reads of the executions ledger, with the joins they need."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum

from core.fields import quantize_money, quantize_quantity
from trading.calendars import previous_sessions
from trading.models import (
    Account,
    AccountType,
    CashAccountState,
    CashViolation,
    DayTrade,
    DayTradeRule,
    Execution,
    FrequencyPeriod,
    LedgerInstrument,
    RoundTrip,
    SettlementTracking,
    TradeFrequencyTracking,
)
from trading.rules.daytrades import PdtStatus, pdt_status
from trading.rules.types import LedgerFill


def execution_list(*, user) -> QuerySet:
    return Execution.objects.visible_to(user).select_related("account", "instrument").order_by("-executed_at", "-id")


def round_trip_list(*, user) -> QuerySet:
    return (
        RoundTrip.objects.filter(account__in=Account.objects.visible_to(user))
        .select_related("account", "instrument")
        .order_by("-closed_at", "-id")
    )


def with_decisions(queryset: QuerySet, *, perm_id: str = "perm_id", account_id: str = "account_id") -> QuerySet:
    """Annotate fills (or round trips, through their opening fill) with the decision of the order of ours
    they came from, matched by ``(account, perm id)`` as the ledger does: ``decision_strategy``,
    ``decision_reasoning`` and ``decision_outcome`` (the paper trade's: open, win, loss, breakeven). All
    empty for a broker fill without an order of ours. Correlated subqueries: no query more per page."""
    from django.db.models import Case, CharField, OuterRef, Subquery, Value, When

    from trading.models import Order, PaperTrade, PaperTradeStatus

    orders = Order.objects.filter(account_id=OuterRef(account_id), perm_id=OuterRef(perm_id)).order_by("pk")
    trades = PaperTrade.objects.filter(
        Q(entry_order__account_id=OuterRef(account_id), entry_order__perm_id=OuterRef(perm_id))
        | Q(exit_order__account_id=OuterRef(account_id), exit_order__perm_id=OuterRef(perm_id))
    ).order_by("pk")
    return queryset.annotate(
        decision_strategy=Subquery(orders.values("strategy")[:1]),
        decision_reasoning=Subquery(orders.values("reasoning")[:1]),
        decision_trade_status=Subquery(trades.values("status")[:1]),
        decision_trade_pnl=Subquery(trades.values("realized_pnl")[:1]),
    ).annotate(
        decision_outcome=Case(
            When(decision_trade_status=PaperTradeStatus.OPEN, then=Value("open")),
            When(decision_trade_pnl__gt=0, then=Value("win")),
            When(decision_trade_pnl__lt=0, then=Value("loss")),
            When(decision_trade_pnl=0, then=Value("breakeven")),
            default=Value(""),
            output_field=CharField(),
        )
    )


def day_trade_list(*, user) -> QuerySet:
    return (
        DayTrade.objects.filter(account__in=Account.objects.visible_to(user))
        .select_related("account", "instrument", "opening_execution", "closing_execution")
        .order_by("-trade_date", "-id")
    )


def settlement_list(*, user) -> QuerySet:
    return (
        SettlementTracking.objects.filter(account__in=Account.objects.visible_to(user))
        .select_related("account", "execution__instrument")
        .order_by("settlement_date", "id")
    )


def pdt_status_get(
    *, account: Account, as_of: date, broker_day_trades_remaining: int | None = None, equity: Decimal | None = None
) -> PdtStatus:
    """The PDT status of ``account`` on ``as_of`` under the rule in force for it then."""
    window = previous_sessions(as_of, 5)
    start, end = window[0], window[-1]
    day_trades = {
        row["trade_date"]: row["n"]
        for row in DayTrade.objects.filter(account=account, trade_date__range=(start, end))
        .values("trade_date")
        .annotate(n=Count("id"))
    }
    trades = dict(
        TradeFrequencyTracking.objects.filter(
            account=account, period=FrequencyPeriod.DAY, period_start__range=(start, end)
        ).values_list("period_start", "trades")
    )
    return pdt_status(
        as_of=as_of,
        pinned_legacy=account.day_trade_rule == DayTradeRule.LEGACY,
        is_margin=account.account_type == AccountType.MARGIN,
        day_trades_by_date=day_trades,
        trades_by_date=trades,
        broker_day_trades_remaining=broker_day_trades_remaining,
        equity=equity,
    )


def cash_state_get(*, account: Account, as_of: date) -> tuple[CashAccountState | None, list[CashViolation]]:
    """The CASH account's state at the end of ``as_of`` (or the last day before it) and its
    violations of the 12 months to that date."""
    state = CashAccountState.objects.filter(account=account, date__lte=as_of).order_by("-date").first()
    violations = list(
        CashViolation.objects.filter(account=account, trade_date__lte=as_of, trade_date__gt=as_of - timedelta(days=365))
        .select_related("buy_execution__instrument", "sell_execution__instrument")
        .order_by("-trade_date", "-id")
    )
    return state, violations


# --- Reads for the dashboard pages (Trades, Compliance) ------------------------------------------
# Appended below the shared header while others edit this module; the imports can be hoisted later.


def _exchange_day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.EXCHANGE_TIME_ZONE))


def round_trip_list_closed_between(
    *, user, account: Account, symbol: str | None = None, since: date | None = None, until: date | None = None
) -> QuerySet:
    """Round trips of ``account`` closed on the trade dates ``since``..``until`` (exchange time, both
    inclusive), newest first: the same date range the Trades page applies to fills."""
    trips = round_trip_list(user=user).filter(account=account)
    if symbol:
        trips = trips.filter(instrument__symbol__iexact=symbol)
    if since:
        trips = trips.filter(closed_at__gte=_exchange_day_start(since))
    if until:
        trips = trips.filter(closed_at__lt=_exchange_day_start(until + timedelta(days=1)))
    return trips


@dataclass(frozen=True)
class SettlementDay:
    settlement_date: date
    net: Decimal  # signed: sale proceeds in, purchases out, net of commissions
    incoming: Decimal
    outgoing: Decimal  # negative or zero
    count: int
    rows: list[SettlementTracking]


@dataclass(frozen=True)
class SettlementCalendar:
    days: list[SettlementDay]
    net: Decimal
    count: int
    rows_shown: int


def settlement_calendar_get(*, account: Account, after: date, row_limit: int = 200) -> SettlementCalendar:
    """The cash of ``account`` still to settle after ``after``, by settlement date: totals over every
    pending fill, and the fills themselves (the first ``row_limit``). Money settles at the start of
    its settlement date, so a row dated ``after`` or earlier has settled whatever its status says
    (the status is brought up to date by a periodic task, which may not have run yet)."""
    pending = SettlementTracking.objects.filter(account=account, settlement_date__gt=after)
    totals = (
        pending.values("settlement_date")
        .annotate(
            net=Sum("amount"),
            incoming=Sum("amount", filter=Q(amount__gt=0)),
            outgoing=Sum("amount", filter=Q(amount__lt=0)),
            n=Count("id"),
        )
        .order_by("settlement_date")
    )
    rows = list(
        pending.select_related("execution__instrument").order_by("settlement_date", "execution__executed_at", "id")[
            :row_limit
        ]
    )
    by_date: dict[date, list[SettlementTracking]] = {}
    for row in rows:
        by_date.setdefault(row.settlement_date, []).append(row)
    days = [
        SettlementDay(
            settlement_date=t["settlement_date"],
            net=t["net"] or Decimal(0),
            incoming=t["incoming"] or Decimal(0),
            outgoing=t["outgoing"] or Decimal(0),
            count=t["n"],
            rows=by_date.get(t["settlement_date"], []),
        )
        for t in totals
    ]
    return SettlementCalendar(
        days=days, net=sum((d.net for d in days), Decimal(0)), count=sum(d.count for d in days), rows_shown=len(rows)
    )


def trade_frequency_by_session(*, account: Account, sessions: list[date]) -> list[tuple[date, int, int]]:
    """``(session, trades, day trades)`` for each of ``sessions``, zeros where nothing was traded."""
    if not sessions:
        return []
    counts = {
        row[0]: row[1:]
        for row in TradeFrequencyTracking.objects.filter(
            account=account, period=FrequencyPeriod.DAY, period_start__range=(sessions[0], sessions[-1])
        ).values_list("period_start", "trades", "day_trades")
    }
    return [(day, *counts.get(day, (0, 0))) for day in sessions]


# --- fills, as the ledger and the position sync read them -------------------------------------
# The columns of a fill the ledger replays (``fills_of`` rows).
FILL_FIELDS = (
    "id",
    "exec_id",
    "instrument_id",
    "executed_at",
    "trade_date",
    "side",
    "quantity",
    "price",
    "commission",
    "instrument__multiplier",
    "perm_id",
    "order_id",
    "settlement_date",
    "broker_settlement_date",
    "realized_pnl",
    "basis_transfer",
)


def fills_of(
    *,
    account: Account,
    instrument_ids: Iterable[int] | None = None,
    trade_date_from: date | None = None,
    where: Q | None = None,
) -> list[dict]:
    fills = Execution.objects.filter(account=account)
    if where is not None:
        fills = fills.filter(where)
    if instrument_ids is not None:
        fills = fills.filter(instrument_id__in=list(instrument_ids))
    if trade_date_from is not None:
        fills = fills.filter(trade_date__gte=trade_date_from)
    return list(fills.order_by("executed_at", "exec_id", "id").values(*FILL_FIELDS))


def ledger_fill_of(row: dict) -> LedgerFill:
    """A ``fills_of`` row as the pure ledger functions take it."""
    order = row["perm_id"] or row["order_id"]
    return LedgerFill(
        id=row["id"],
        exec_id=row["exec_id"],
        instrument_id=row["instrument_id"],
        executed_at=row["executed_at"],
        trade_date=row["trade_date"],
        side=row["side"],
        quantity=row["quantity"],
        price=row["price"],
        commission=row["commission"] or Decimal(0),
        multiplier=row["instrument__multiplier"],
        order_ref=str(order) if order else None,
        basis_transfer=row.get("basis_transfer") or Decimal(0),
    )


def ledger_instruments_of(account: Account) -> dict[int, datetime | None]:
    """Instrument id -> since when its fills changed without the layers above catching up (None:
    they have), for every instrument ``account`` has fills in; empty when the ledger has no fills
    for it. One query, not locked (``trading.services.ledger_changes`` locks)."""
    return dict(
        LedgerInstrument.objects.filter(account=account).order_by().values_list("instrument_id", "changed_since")
    )


# --- Orders (appended; see trading/services/orders.py) ------------------------------------------
def order_list(*, user, account_id: str | None = None, status: str | None = None, since: datetime | None = None):
    """Orders of the user's accounts, newest first, with what a list shows in the same query."""
    from trading.models import Order

    orders = Order.objects.visible_to(user).select_related("account", "instrument")
    if account_id:
        orders = orders.filter(account__account_id=account_id)
    if status:
        orders = orders.filter(status=status)
    if since is not None:
        orders = orders.filter(created_at__gte=since)
    return orders.order_by("-created_at", "-id")


def order_get(*, user, pk: int):
    """One order of the user's accounts with its events and fills (None when it is not theirs)."""
    from django.db.models import Prefetch

    from trading.models import Order, OrderEvent

    return (
        Order.objects.visible_to(user)
        .select_related("account", "instrument")
        .prefetch_related(Prefetch("events", queryset=OrderEvent.objects.order_by("at", "id")))
        .filter(pk=pk)
        .first()
    )


def order_fills(*, order) -> QuerySet:
    """The fills of an order: the paper engine's (namespace ``paper``) or the broker's, matched by perm id."""
    if order.perm_id is None:
        return Execution.objects.none()
    broker = "paper" if order.mode == "PAPER" else "ibkr"
    return Execution.objects.filter(account_id=order.account_id, broker=broker, perm_id=order.perm_id).order_by(
        "executed_at", "id"
    )


def order_fills_by_order(*, orders) -> dict[int, list[Execution]]:
    """The fills of several orders in one query, by order id."""
    wanted = {(o.account_id, "paper" if o.mode == "PAPER" else "ibkr", o.perm_id): o.pk for o in orders if o.perm_id}
    result: dict[int, list[Execution]] = {o.pk: [] for o in orders}
    if not wanted:
        return result
    perm_ids = {key[2] for key in wanted}
    accounts = {key[0] for key in wanted}
    for fill in Execution.objects.filter(account_id__in=accounts, perm_id__in=perm_ids).order_by("executed_at", "id"):
        order_id = wanted.get((fill.account_id, fill.broker, fill.perm_id))
        if order_id is not None:
            result[order_id].append(fill)
    return result


@dataclass(frozen=True)
class PaperValues:
    """A paper account's value from its own cash flows, fills and the stored quotes (never the broker)."""

    cash: Decimal
    settled_cash: Decimal
    unsettled_proceeds: Decimal  # sale proceeds not settled yet
    positions_value: Decimal
    net_liquidation: Decimal
    # instrument id, quantity, multiplier, mark (None: no stored price), average cost per unit
    positions: tuple[tuple[int, Decimal, Decimal, Decimal | None, Decimal], ...]
    unpriced: int  # open positions without a stored price (valued at cost)


def paper_values_get(*, account: Account, today: date, known_quotes: Mapping | None = None) -> PaperValues:
    """Two queries whatever the account holds: flows, settlements and open lots in one, their quotes.

    ``known_quotes`` (instrument id -> stored Quote or None) were just read by the caller: only the
    other instruments' quotes are read (none when it holds nothing else: one query).
    """
    from django.db import connection

    from marketdata.models import Instrument
    from marketdata.selectors import quotes_by_instrument
    from trading.models import CashFlow, Lot

    flows, settlements, lots, instruments = (
        connection.ops.quote_name(model._meta.db_table) for model in (CashFlow, SettlementTracking, Lot, Instrument)
    )
    # Written out: every order's risk checks read it, and the ORM took several times the database's
    # time compiling three statements. Aggregates without GROUP BY answer one row even with no rows, so
    # the open lots (one row per instrument) join it and an account holding nothing still gets its cash.
    sql = f"""
        SELECT f.total, s.total, s.settled, s.proceeds, l.instrument_id, l.multiplier, l.held, l.cost
          FROM (SELECT SUM(CASE WHEN kind = %s THEN amount ELSE -amount END) AS total
                  FROM {flows} WHERE account_id = %s) f
         CROSS JOIN (SELECT SUM(amount) AS total,
                            SUM(CASE WHEN settlement_date <= %s THEN amount END) AS settled,
                            SUM(CASE WHEN settlement_date > %s AND amount > 0 THEN amount END) AS proceeds
                       FROM {settlements} WHERE account_id = %s) s
          LEFT JOIN (SELECT lot.instrument_id, i.multiplier, SUM(lot.quantity) AS held,
                            SUM(lot.quantity * lot.cost_price) AS cost
                       FROM {lots} lot JOIN {instruments} i ON i.id = lot.instrument_id
                      WHERE lot.account_id = %s AND lot.quantity <> 0
                      GROUP BY lot.instrument_id, i.multiplier) l ON 1 = 1
         ORDER BY l.instrument_id
    """  # noqa: S608 (the models' table names; every value is a parameter)
    day = connection.ops.adapt_datefield_value(today)
    with connection.cursor() as cursor:
        cursor.execute(sql, ["DEPOSIT", account.pk, day, day, account.pk, account.pk])
        rows = cursor.fetchall()
    # Sums of money columns keep the columns' places, as the ORM's aggregates did (SQLite sums floats).
    flow_total, settle_total, settled_total, proceeds = (quantize_money(_decimal(v)) for v in rows[0][:4])
    cash = (flow_total or Decimal(0)) + (settle_total or Decimal(0))
    settled = (flow_total or Decimal(0)) + (settled_total or Decimal(0))
    open_lots = [
        {
            "instrument_id": instrument_id,
            "instrument__multiplier": _decimal(multiplier),
            "held": quantize_quantity(_decimal(held)),
            "cost": _decimal(cost),
        }
        for *_, instrument_id, multiplier, held, cost in rows
        if instrument_id is not None
    ]
    known = known_quotes or {}
    quotes = {i: q for i, q in known.items() if q is not None}
    unknown = [row["instrument_id"] for row in open_lots if row["instrument_id"] not in known]
    if unknown:
        quotes.update(quotes_by_instrument(instrument_ids=unknown))
    value = Decimal(0)
    unpriced = 0
    positions = []
    for row in open_lots:
        multiplier = row["instrument__multiplier"] or Decimal(1)
        quote = quotes.get(row["instrument_id"])
        mark = _mark(quote)
        if mark is None:
            unpriced += 1
            value += (row["cost"] or Decimal(0)) * multiplier
        else:
            value += row["held"] * mark * multiplier
        average = (row["cost"] or Decimal(0)) / row["held"] if row["held"] else Decimal(0)
        positions.append((row["instrument_id"], row["held"], multiplier, mark, average))
    return PaperValues(
        cash=cash,
        settled_cash=settled,
        unsettled_proceeds=proceeds or Decimal(0),
        positions_value=value,
        net_liquidation=cash + value,
        positions=tuple(positions),
        unpriced=unpriced,
    )


def _decimal(value) -> Decimal | None:
    """A number from a written-out query: PostgreSQL answers Decimals, SQLite floats or integers."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _mark(quote) -> Decimal | None:
    """A position's price from a stored quote: the mid, else the last, else whichever side there is."""
    if quote is None:
        return None
    for price in (quote.mid, quote.last, quote.bid, quote.ask):
        if price is not None and price > 0:
            return Decimal(price)
    return None


# --- signals and paper trades ------------------------------------------------------------------
def signal_list(*, user, account_id: str | None = None, day=None, status: str | None = None):
    """Signals of the user's accounts, newest first; ``day`` is a trade date (New York) of creation."""
    from trading.calendars import exchange_zone
    from trading.models import Signal

    signals = Signal.objects.visible_to(user).select_related("account", "instrument", "paper_trade")
    if account_id:
        signals = signals.filter(account__account_id=account_id)
    if status:
        signals = signals.filter(status=status)
    if day is not None:
        start = datetime.combine(day, datetime.min.time(), tzinfo=exchange_zone())
        signals = signals.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1))
    return signals.order_by("-created_at", "-id")


def paper_trade_list(*, user, account_id: str | None = None, status: str | None = None):
    """Paper trades of the user's accounts; ``status`` is ``open``, ``closed`` or a status name."""
    from trading.models import PaperTrade, PaperTradeStatus

    trades = PaperTrade.objects.visible_to(user).select_related("account", "instrument", "signal")
    if account_id:
        trades = trades.filter(account__account_id=account_id)
    if status == "open":
        trades = trades.filter(status=PaperTradeStatus.OPEN)
    elif status == "closed":
        trades = trades.exclude(status=PaperTradeStatus.OPEN)
    elif status:
        trades = trades.filter(status=status)
    return trades.order_by("-opened_at", "-id")


@dataclass(frozen=True)
class MarkedPaperTrade:
    """An open paper trade with its P&L at the stored quote now (the side its closing order would take)."""

    trade: object  # trading.models.PaperTrade
    price: Decimal | None
    price_at: datetime | None
    pnl: Decimal | None


def paper_trades_open_marked(*, user, account_id: str | None = None) -> list[MarkedPaperTrade]:
    """Open paper trades of the user's accounts marked at the stored quotes: two queries however many."""
    from core.fields import quantize_money
    from marketdata.selectors import quotes_by_instrument
    from trading.rules.orders import QuoteFacts

    trades = list(paper_trade_list(user=user, account_id=account_id, status="open"))
    quotes = quotes_by_instrument(instrument_ids={t.instrument_id for t in trades}) if trades else {}
    marked = []
    for trade in trades:
        quote = quotes.get(trade.instrument_id)
        price = None
        if quote is not None:
            price = QuoteFacts(bid=quote.bid, ask=quote.ask, last=quote.last, at=quote.at).price_for(trade.exit_side)
        if price is None:  # no quote stored: the monitor's last price
            marked.append(MarkedPaperTrade(trade, trade.current_price, trade.price_at, trade.unrealized_pnl))
            continue
        multiplier = trade.instrument.multiplier or Decimal(1)
        pnl = quantize_money(trade.direction * (price - trade.entry_price) * trade.quantity * multiplier)
        marked.append(MarkedPaperTrade(trade, price, quote.at, pnl))
    return marked


def daily_pnl_get(*, user, day, account_id: str | None = None) -> dict:
    """Realized P&L of the trades exited on ``day`` (net of commissions) plus the unrealized of open ones."""
    from core.fields import quantize_money
    from trading.fx import FxTables
    from trading.models import PaperTrade, PaperTradeStatus

    trades = PaperTrade.objects.visible_to(user)
    if account_id:
        trades = trades.filter(account__account_id=account_id)
    # In the accounts' base currency (``currency``): realized at the day's rate, unrealized at the current
    # one; a currency without a rate is named in ``fx_missing`` and leaves its figure None (never 1), and
    # accounts of different base currencies are never added together.
    by_currency = ("account__base_currency", "instrument__currency")
    closed = list(
        trades.filter(exit_date=day).values(*by_currency).order_by().annotate(total=Sum("realized_pnl"), n=Count("id"))
    )
    still_open = list(
        trades.filter(status=PaperTradeStatus.OPEN)
        .values(*by_currency)
        .order_by()
        .annotate(total=Sum("unrealized_pnl"), n=Count("id"))
    )
    bases = {row["account__base_currency"] for row in closed + still_open}
    base = bases.pop() if len(bases) == 1 else ("" if bases else "USD")
    tables = FxTables.load((row["account__base_currency"], row["instrument__currency"]) for row in closed + still_open)
    table = tables.table(base)
    realized = table.total((row["total"], row["instrument__currency"], day) for row in closed)
    unrealized = table.total((row["total"], row["instrument__currency"], None) for row in still_open)
    realized_pnl = quantize_money(realized.amount) if base else None
    unrealized_pnl = quantize_money(unrealized.amount) if base else None
    return {
        "date": day,
        "account": account_id or "",
        "currency": base,
        "realized_pnl": realized_pnl,
        "unrealized_pnl": unrealized_pnl,
        "total_pnl": None if realized_pnl is None or unrealized_pnl is None else realized_pnl + unrealized_pnl,
        "closed_trades": sum(row["n"] for row in closed),
        "open_trades": sum(row["n"] for row in still_open),
        "fx_missing": sorted(realized.missing | unrealized.missing),
    }


def journal_list(*, user, day, account_id: str | None = None):
    """That trade date's closed paper trades with their signal's reasoning, in exit order."""
    from trading.models import PaperTradeStatus

    return (
        paper_trade_list(user=user, account_id=account_id)
        .filter(exit_date=day)
        .exclude(status=PaperTradeStatus.OPEN)
        .order_by("exited_at", "id")
    )


# --- the trade record ---------------------------------------------------------------------------
TRADE_RECORD_CHUNK = 2000


def _session_fields(session) -> tuple[str | None, str | None, str | None]:
    if session is None:
        return None, None, None
    return session.session_id, session.bot_version, session.config_hash


def _sessions_in_force(rows) -> dict:
    """For the records whose entry is not an order of ours: the session in force when each opened (the
    last one started by then that day, else the day's first), from one query per chunk."""
    from trading.models import TradingSession

    days = {trade_date_of_local(opened_at) for opened_at in rows}
    by_day: dict = {}
    if days:
        for session in TradingSession.objects.filter(day__in=days).order_by("started_at", "id"):
            by_day.setdefault(session.day, []).append(session)
    result = {}
    for opened_at in rows:
        sessions = by_day.get(trade_date_of_local(opened_at), [])
        started = [s for s in sessions if s.started_at <= opened_at]
        result[opened_at] = started[-1] if started else (sessions[0] if sessions else None)
    return result


def _orders_by_perm(keys: set) -> dict:
    """Our orders of these ``(account pk, perm id)`` fills, with their session, in one query."""
    from trading.models import Order

    if not keys:
        return {}
    orders = (
        Order.objects.filter(account_id__in={k[0] for k in keys}, perm_id__in={k[1] for k in keys})
        .select_related("session")
        .only(
            "account_id",
            "perm_id",
            "mode",
            "client_order_id",
            "strategy",
            "entry_type",
            "stop_loss",
            "target",
            "reasoning",
            "indicators",
            "risk_reward",
            "slippage",
            "session__day",
            "session__bot_version",
            "session__config_hash",
        )
    )
    return {(order.account_id, order.perm_id): order for order in orders}


def _records_of(pairs, on_invalid):
    """``(TradeRecordInput without session fields, its trade, entry order)`` -> validated records with
    their figures in the account's base currency. The trade is a round trip, or an open position's
    stand-in (account, instrument, opened_at, closed_at None)."""
    from dataclasses import replace

    from trading.fx import FxTables, trade_record_in_base
    from trading.rules.trade_records import trade_record, trade_record_problems

    pairs = list(pairs)
    fallback = _sessions_in_force([data.opened_at for data, _, entry in pairs if entry is None or not entry.session])
    # The figures in the account's base currency at each day's rate: one query per chunk (none in base).
    tables = FxTables.load((trade.account.base_currency, trade.instrument.currency) for _, trade, _ in pairs)
    for data, trade, entry in pairs:
        session = entry.session if entry is not None and entry.session_id else fallback.get(data.opened_at)
        session_id, version, hashed = _session_fields(session)
        record = trade_record(replace(data, session_id=session_id, bot_version=version, config_hash=hashed))
        record = trade_record_in_base(record, trip=trade, tables=tables)
        problems = trade_record_problems(record, sec_type=trade.instrument.sec_type)
        if problems:
            on_invalid(record, problems)
            continue
        yield record


def _log_invalid(record: dict, problems: list[str]) -> None:
    import logging

    logging.getLogger(__name__).warning(
        "trade record %s %s %s skipped: %s",
        record.get("account_id"),
        record.get("symbol"),
        record.get("timestamp"),
        "; ".join(problems),
    )


def trade_records_iter(
    *,
    user=None,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    include_open: bool = True,
    on_invalid=None,
):
    """Yield the 27-field record of each closed round trip (oldest close first), then of each open trade
    (a position not flat yet: outcome "open", exit fields empty), in chunks: constant memory.

    Any fill gets a record; when the opening fill came from an order of ours the decision fields are
    that order's, its trading session gives ``session_id``, ``bot_version`` and ``config_hash`` (a fill
    without an order of ours: the session in force when it opened, if any), and the closing order's
    reasoning is the exit reasoning. ``since``/``until`` bound the close; an open trade is included when
    it opened before ``until`` (it is open at the window's end). A record failing the seed's validation
    is not yielded: ``on_invalid(record, problems)`` gets it (default: a warning in the log). ``user``
    None: every account (the command line, staff).
    """
    from trading.models import Account, RoundTrip
    from trading.rules.trade_records import TradeRecordInput

    on_invalid = on_invalid or _log_invalid
    visible = Account.objects.visible_to(user) if user is not None else None
    if outcome is None or outcome.lower() != "open":
        trips = RoundTrip.objects.select_related("account", "instrument", "opening_execution", "closing_execution")
        if visible is not None:
            trips = trips.filter(account__in=visible)
        if account_id:
            trips = trips.filter(account__account_id=account_id)
        if since is not None:
            trips = trips.filter(closed_at__gte=since)
        if until is not None:
            trips = trips.filter(closed_at__lt=until)
        if outcome:
            trips = trips.filter(outcome=outcome.upper())
        trips = trips.order_by("closed_at", "id")

        def flush(rows):
            keys = set()
            for trip in rows:
                for fill in (trip.opening_execution, trip.closing_execution):
                    if fill.perm_id is not None:
                        keys.add((fill.account_id, fill.perm_id))
            orders = _orders_by_perm(keys)
            pairs = []
            for trip in rows:
                opening, closing = trip.opening_execution, trip.closing_execution
                entry = orders.get((opening.account_id, opening.perm_id))
                data = TradeRecordInput(
                    opened_at=trip.opened_at,
                    closed_at=trip.closed_at,
                    symbol=trip.instrument.symbol,
                    direction=trip.direction,
                    quantity=trip.quantity,
                    average_entry=trip.average_entry,
                    multiplier=trip.instrument.multiplier or Decimal(1),
                    account_id=trip.account.account_id,
                    mode=trip.account.mode,
                    outcome=trip.outcome,
                    realized_pnl=trip.realized_pnl,
                    commissions=trip.commissions,
                    holding_seconds=trip.holding_seconds,
                    session_id=None,
                    bot_version=None,
                    config_hash=None,
                    entry_order=entry,
                    exit_order=orders.get((closing.account_id, closing.perm_id)),
                )
                pairs.append((data, trip, entry))
            yield from _records_of(pairs, on_invalid)

        chunk: list = []
        for trip in trips.iterator(chunk_size=TRADE_RECORD_CHUNK):
            chunk.append(trip)
            if len(chunk) >= TRADE_RECORD_CHUNK:
                yield from flush(chunk)
                chunk = []
        if chunk:
            yield from flush(chunk)
    if include_open and (outcome is None or outcome.lower() == "open"):
        yield from _open_trade_records(visible=visible, account_id=account_id, until=until, on_invalid=on_invalid)


def _open_trade_records(*, visible, account_id: str | None, until: datetime | None, on_invalid):
    """One record per open position (its open lots, grouped by the fill that opened it from flat)."""
    from itertools import groupby

    from trading.models import Lot
    from trading.rules.trade_records import TradeRecordInput

    lots = Lot.objects.exclude(quantity=0).select_related(
        "account", "instrument", "opening_execution", "position_opening_execution"
    )
    if visible is not None:
        lots = lots.filter(account__in=visible)
    if account_id:
        lots = lots.filter(account__account_id=account_id)
    lots = lots.order_by("account_id", "instrument_id", "position_opening_execution_id", "opened_at", "id")
    positions = []
    for _, group in groupby(
        lots.iterator(chunk_size=TRADE_RECORD_CHUNK),
        key=lambda lot: (lot.account_id, lot.instrument_id, lot.position_opening_execution_id),
    ):
        group = list(group)
        first = group[0]
        opening = first.position_opening_execution or first.opening_execution
        opened_at = opening.executed_at
        if until is not None and opened_at >= until:
            continue
        quantity = sum((abs(lot.quantity) for lot in group), Decimal(0))
        cost = sum((abs(lot.quantity) * lot.opening_execution.price for lot in group), Decimal(0))
        commissions = sum(
            (
                (lot.opening_execution.commission or Decimal(0)) * abs(lot.quantity) / abs(lot.original_quantity)
                for lot in group
                if lot.original_quantity
            ),
            Decimal(0),
        )
        positions.append((first, opening, opened_at, quantity, cost / quantity, commissions))
        if len(positions) >= TRADE_RECORD_CHUNK:
            yield from _open_flush(positions, on_invalid, TradeRecordInput)
            positions = []
    if positions:
        yield from _open_flush(positions, on_invalid, TradeRecordInput)


def _open_flush(positions, on_invalid, record_input):
    from types import SimpleNamespace

    from core.fields import quantize_money, quantize_price

    orders = _orders_by_perm({(o.account_id, o.perm_id) for _, o, *_ in positions if o.perm_id is not None})
    pairs = []
    for lot, opening, opened_at, quantity, average, commissions in positions:
        entry = orders.get((opening.account_id, opening.perm_id))
        data = record_input(
            opened_at=opened_at,
            closed_at=None,
            symbol=lot.instrument.symbol,
            direction="LONG" if lot.quantity > 0 else "SHORT",
            quantity=quantity,
            average_entry=quantize_price(average),
            multiplier=lot.instrument.multiplier or Decimal(1),
            account_id=lot.account.account_id,
            mode=lot.account.mode,
            outcome="",
            realized_pnl=None,
            commissions=quantize_money(commissions),
            holding_seconds=None,
            session_id=None,
            bot_version=None,
            config_hash=None,
            entry_order=entry,
            exit_order=None,
        )
        trade = SimpleNamespace(account=lot.account, instrument=lot.instrument, opened_at=opened_at, closed_at=None)
        pairs.append((data, trade, entry))
    yield from _records_of(pairs, on_invalid)


def trade_date_of_local(at: datetime) -> date:
    from trading.calendars import trade_date_of

    return trade_date_of(at)


# --- tax lots ----------------------------------------------------------------------------------
def tax_lots_iter(*, year: int, account_id: str | None = None):
    """Form 8949 rows of every lot match closed in ``year`` (by the closing fill's trade date), in sale order."""
    from trading.fx import FxTables
    from trading.models import Execution, LotMatch, Side
    from trading.rules.tax_lots import WASH_WINDOW, ClosedLot, tax_lot_row, tax_lot_row_in_base

    matches = LotMatch.objects.filter(closing_execution__trade_date__year=year).select_related(
        "account", "instrument", "opening_execution", "closing_execution"
    )
    if account_id:
        matches = matches.filter(account__account_id=account_id)
    matches = matches.order_by("closing_execution__executed_at", "id")
    first, last = date(year, 1, 1) - WASH_WINDOW, date(year, 12, 31) + WASH_WINDOW
    buys: dict[tuple[int, int], list[tuple[date, int, Decimal]]] = {}
    wanted = matches.values_list("account_id", "instrument_id").distinct()
    for execution in (
        Execution.objects.filter(side=Side.BUY, trade_date__gte=first, trade_date__lte=last)
        .filter(account_id__in={a for a, _ in wanted}, instrument_id__in={i for _, i in wanted})
        .only("pk", "account_id", "instrument_id", "trade_date", "quantity")
    ):
        buys.setdefault((execution.account_id, execution.instrument_id), []).append(
            (execution.trade_date, execution.pk, execution.quantity)
        )
    # Each lot's sides in its account's base currency at their own dates' rates: one query (none in base).
    tables = FxTables.load(matches.order_by().values_list("account__base_currency", "instrument__currency").distinct())
    for match in matches.iterator(chunk_size=2000):
        opening, closing = match.opening_execution, match.closing_execution
        sold_on = closing.trade_date
        replacement = sum(
            (
                quantity
                for day, pk, quantity in buys.get((match.account_id, match.instrument_id), [])
                if abs(day - sold_on) <= WASH_WINDOW and pk not in (opening.pk, closing.pk)
            ),
            Decimal(0),
        )
        row = tax_lot_row(
            ClosedLot(
                account_id=match.account.account_id,
                symbol=match.instrument.symbol,
                quantity=match.quantity,
                multiplier=match.instrument.multiplier or Decimal(1),
                opened_on=opening.trade_date,
                closed_on=sold_on,
                entry_price=match.entry_price,
                exit_price=match.exit_price,
            ),
            replacement_quantity=replacement,
        )
        base, currency = match.account.base_currency, match.instrument.currency
        sold_rate = tables.rate(currency, base=base, on=date.fromisoformat(row["date_sold"]))
        acquired_rate = tables.rate(currency, base=base, on=date.fromisoformat(row["date_acquired"]))
        yield tax_lot_row_in_base(
            row,
            currency=currency,
            base=base,
            sold_rate=sold_rate.rate if sold_rate else None,
            acquired_rate=acquired_rate.rate if acquired_rate else None,
        )
