"""The facts an order is judged by, gathered in a fixed number of queries, and the circuit breaker.

The rules themselves are pure (``trading/rules/orders.py``); this module reads what they need: the
stored quote, the open lots of the instrument, the account's value (a paper account's from its own
fills and quotes; a live account's from what portfolio last read from the broker, through
``trading.hooks.account_figures_get``), the breaker, and for CASH accounts the cash replay.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum

from core.fields import quantize_money
from marketdata.fx import FxTable
from marketdata.models import Instrument, Quote
from trading.calendars import exchange_zone, market_is_open, next_session, previous_sessions, trade_date_of
from trading.hooks import account_figures_get
from trading.models import (
    WORKING_STATUSES,
    Account,
    AccountMode,
    AccountType,
    DayTrade,
    DayTradeRule,
    FrequencyPeriod,
    Lot,
    Order,
    RiskAction,
    RiskEvent,
    RiskEventKind,
    RiskSeverity,
    RoundTrip,
    RoundTripOutcome,
    Side,
    TradeFrequencyTracking,
)
from trading.rules.cash import GOOD_FAITH, CashFill, CashMovement, cash_account_replay
from trading.rules.daytrades import LEGACY, pdt_rule
from trading.rules.orders import Limits, OrderFacts, QuoteFacts, reducing
from trading.rules.types import LedgerFill
from trading.services.alerts import risk_event_alert

logger = logging.getLogger(__name__)


def limits_from_settings() -> Limits:
    return Limits(
        max_quantity=settings.MAX_ORDER_QUANTITY,
        quote_stale_after=settings.QUOTE_STALE_AFTER,
        max_price_deviation=settings.MAX_PRICE_DEVIATION,
        max_position_pct=settings.MAX_POSITION_PCT,
        max_trades_per_day=settings.MAX_TRADES_PER_DAY,
        max_trades_per_week=settings.MAX_TRADES_PER_WEEK,
        pdt_min_equity=settings.PDT_MIN_EQUITY,
        block_good_faith=settings.CASH_ACCOUNT_BLOCK_GFV,
    )


@dataclass(frozen=True)
class AccountRisk:
    """What an account's orders are judged by, besides the order itself (also shown by the order ticket)."""

    net_liquidation: Decimal | None
    previous_close: Decimal | None
    daily_change: Decimal | None  # since the previous close, flows removed
    breaker: RiskEvent | None
    day_trades_remaining: int | None  # the broker's when known (-1 unlimited), else the ledger's (legacy rule)
    legacy_pdt: bool
    cash_available: Decimal | None  # CASH accounts
    settled_cash: Decimal | None


def quote_facts(quote: Quote | None) -> QuoteFacts | None:
    if quote is None:
        return None
    return QuoteFacts(bid=quote.bid, ask=quote.ask, last=quote.last, at=quote.at)


# --- the circuit breaker ------------------------------------------------------------------------
def breaker_message(event: RiskEvent) -> str:
    return f"Opening orders paused since {event.created_at:%Y-%m-%d %H:%M} UTC: {event.message}"


def breaker_state_read(*, account: Account) -> tuple[int | None, list[str]]:
    """``(id of the open breaker event or None, outcomes of the last RISK_MAX_CONSECUTIVE_LOSSES round
    trips, newest first)`` in one query, written out: the ORM took longer to compile the two reads than
    the database to answer them."""
    limit = max(settings.RISK_MAX_CONSECUTIVE_LOSSES, 0)
    events, trips = RiskEvent._meta.db_table, RoundTrip._meta.db_table
    sql = f"""
        SELECT (SELECT e.id FROM {events} e
                 WHERE e.account_id = %s AND e.kind = %s AND e.resolved_at IS NULL),
               r.outcome
          FROM (SELECT 1 AS one) o
          LEFT JOIN (SELECT t.outcome, t.closed_at, t.id FROM {trips} t
                      WHERE t.account_id = %s ORDER BY t.closed_at DESC, t.id DESC LIMIT %s) r ON 1 = 1
         ORDER BY r.closed_at DESC, r.id DESC
    """  # noqa: S608 (the models' table names; every value is a parameter)
    with connection.cursor() as cursor:
        cursor.execute(sql, [account.pk, RiskEventKind.CIRCUIT_BREAKER_TRIP, account.pk, limit])
        rows = cursor.fetchall()
    return rows[0][0], [outcome for _, outcome in rows if outcome is not None]


_UNREAD = object()


def breaker_active(*, account: Account, now: datetime, open_id=_UNREAD) -> RiskEvent | None:
    """The open breaker event of the account, if it still holds: until the next session, or staff resume it.

    One that the next session has lifted is resolved here, so a new crossing can trip it again.
    ``open_id``: the open event's id (None: there is none) as ``breaker_state_read`` found it.
    """
    if open_id is _UNREAD:
        event = RiskEvent.objects.filter(
            account=account, kind=RiskEventKind.CIRCUIT_BREAKER_TRIP, resolved_at__isnull=True
        ).first()
    else:
        event = RiskEvent.objects.filter(pk=open_id).first() if open_id is not None else None
    if event is None:
        return None
    if trade_date_of(now) >= next_session(event.as_of):
        lifted = RiskEvent.objects.filter(pk=event.pk, resolved_at__isnull=True).update(
            resolved_at=now, resolution_note="lifted by the next session"
        )
        if lifted:
            risk_event_alert(event=event, resolved=True)
        return None
    return event


def breaker_trip_if_crossed(
    *,
    account: Account,
    now: datetime,
    net_liquidation: Decimal | None,
    figures_previous: Decimal | None,
    flows_since_close: Decimal,
    recent_outcomes: list[str] | None = None,
) -> RiskEvent | None:
    """Trip the breaker when the day's loss or the losing streak is at or beyond its limit.

    Not again on a day staff already resumed it: their decision holds until the next session.
    ``recent_outcomes``: the last round trips' outcomes, newest first, when the caller read them.
    """
    today = trade_date_of(now)
    limit_losses = settings.RISK_MAX_CONSECUTIVE_LOSSES
    reason = ""
    value = threshold = Decimal(0)
    if figures_previous and figures_previous > 0 and net_liquidation is not None:
        change = (net_liquidation - figures_previous - flows_since_close) / figures_previous
        if change <= -settings.RISK_DAILY_LOSS_PCT:
            reason = (
                f"the day's loss {-change:.2%} is at or beyond RISK_DAILY_LOSS_PCT {settings.RISK_DAILY_LOSS_PCT:.2%}"
            )
            value, threshold = change, -settings.RISK_DAILY_LOSS_PCT
    if not reason and limit_losses > 0:
        outcomes = (
            recent_outcomes[:limit_losses]
            if recent_outcomes is not None
            else list(
                RoundTrip.objects.filter(account=account)
                .order_by("-closed_at", "-id")
                .values_list("outcome", flat=True)[:limit_losses]
            )
        )
        if len(outcomes) == limit_losses and all(o == RoundTripOutcome.LOSS for o in outcomes):
            reason = f"{limit_losses} losing round trips in a row (RISK_MAX_CONSECUTIVE_LOSSES)"
            value, threshold = Decimal(limit_losses), Decimal(limit_losses)
    if not reason:
        return None
    if RiskEvent.objects.filter(
        account=account, kind=RiskEventKind.CIRCUIT_BREAKER_TRIP, as_of=today, resolved_by__isnull=False
    ).exists():
        return None  # staff resumed it today
    try:
        with transaction.atomic():
            event = RiskEvent.objects.create(
                account=account,
                kind=RiskEventKind.CIRCUIT_BREAKER_TRIP,
                severity=RiskSeverity.CRITICAL,
                action=RiskAction.TRADING_PAUSED,
                value=value,
                threshold=threshold,
                as_of=today,
                message=reason[:255],
                settings_snapshot={
                    "RISK_DAILY_LOSS_PCT": str(settings.RISK_DAILY_LOSS_PCT),
                    "RISK_MAX_CONSECUTIVE_LOSSES": settings.RISK_MAX_CONSECUTIVE_LOSSES,
                },
            )
    except IntegrityError:  # a concurrent order tripped it first (and told the account's users)
        return RiskEvent.objects.filter(
            account=account, kind=RiskEventKind.CIRCUIT_BREAKER_TRIP, resolved_at__isnull=True
        ).first()
    risk_event_alert(event=event)
    return event


def breaker_resume(*, event: RiskEvent, user, reason: str, now: datetime) -> bool:
    """Staff resume opening orders; the reason is required and kept. False when it was no longer open."""
    if not reason.strip():
        raise ValueError("a reason is required to resume trading")
    updated = RiskEvent.objects.filter(pk=event.pk, resolved_at__isnull=True).update(
        resolved_at=now, resolved_by=user, resolution_note=reason.strip()[:255]
    )
    if updated:
        risk_event_alert(event=event, resolved=True)
    return updated == 1


# --- the account -------------------------------------------------------------------------------
def account_risk_get(
    *, account: Account, now: datetime, trip: bool = True, known_quotes: dict[int, Quote | None] | None = None
) -> AccountRisk:
    """The account's value, breaker and day-trade state (for the checks and the order ticket).

    ``known_quotes``: stored quotes the caller already read (instrument id -> Quote or None).
    """
    from trading.selectors import paper_values_get

    today = trade_date_of(now)
    figures = account_figures_get(account)
    net_liquidation = figures.net_liquidation
    settled = cash_available = None
    if account.is_paper:
        values = paper_values_get(account=account, today=today, known_quotes=known_quotes)
        net_liquidation = values.net_liquidation
        settled = values.settled_cash
        # Settled cash plus unsettled sale proceeds, less what pending purchases will take: all of it.
        cash_available = values.cash
    elif account.account_type == AccountType.CASH:
        from trading.models import CashAccountState

        state = CashAccountState.objects.filter(account=account, date__lte=today).order_by("-date").first()
        if state is not None:
            settled = state.settled_cash
            # unsettled_cash is signed: pending sale proceeds in, pending purchase debits out.
            cash_available = state.settled_cash + state.unsettled_cash
    if account.account_type == AccountType.CASH and cash_available is not None:
        cash_available -= _open_buy_orders_value(account)
    open_id, outcomes = breaker_state_read(account=account)
    breaker = breaker_active(account=account, now=now, open_id=open_id)
    if breaker is None and trip:
        breaker = breaker_trip_if_crossed(
            account=account,
            now=now,
            net_liquidation=net_liquidation,
            figures_previous=figures.previous_close,
            flows_since_close=figures.flows_since_close,
            recent_outcomes=outcomes,
        )
    daily_change = None
    if figures.previous_close is not None and net_liquidation is not None:
        daily_change = net_liquidation - figures.previous_close - figures.flows_since_close
    legacy = (
        account.account_type == AccountType.MARGIN
        and pdt_rule(as_of=today, pinned_legacy=account.day_trade_rule == DayTradeRule.LEGACY) == LEGACY
    )
    remaining = figures.day_trades_remaining
    if legacy and remaining is None:
        window = previous_sessions(today, 5) if today else []
        used = DayTrade.objects.filter(account=account, trade_date__range=(window[0], window[-1])).count()
        remaining = max(3 - used, 0)
    return AccountRisk(
        net_liquidation=net_liquidation,
        previous_close=figures.previous_close,
        daily_change=daily_change,
        breaker=breaker,
        day_trades_remaining=remaining,
        legacy_pdt=legacy,
        cash_available=quantize_money(cash_available) if cash_available is not None else None,
        settled_cash=settled,
    )


def _open_buy_orders_value(account: Account) -> Decimal:
    """What working buy orders would still cost, at their limit (or reference) price."""
    total = Decimal(0)
    for quantity, filled, limit, reference, multiplier in Order.objects.filter(
        account=account, side=Side.BUY, status__in=WORKING_STATUSES
    ).values_list("quantity", "filled_quantity", "limit_price", "reference_price", "instrument__multiplier"):
        price = limit if limit is not None else reference
        if price is not None:
            total += (quantity - filled) * price * (multiplier or Decimal(1))
    return total


# --- the order ---------------------------------------------------------------------------------
def order_facts_gather(
    *,
    account: Account,
    instrument: Instrument,
    side: str,
    quantity: Decimal,
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    symbol: str,
    now: datetime,
    live_refusal: str = "",
    risk: AccountRisk | None = None,
) -> OrderFacts:
    today = trade_date_of(now)
    quote = Quote.objects.filter(instrument=instrument).first()
    # Summed by the database: one row however many lots the position has (the trade date's bounds are
    # exchange time, as ``trade_date_of``'s).
    day_start = datetime.combine(today, time.min, tzinfo=exchange_zone())
    day_end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=exchange_zone())
    held = Lot.objects.filter(account=account, instrument=instrument).aggregate(
        position=Sum("quantity"), today=Sum("quantity", filter=Q(opened_at__gte=day_start, opened_at__lt=day_end))
    )
    position = held["position"] or Decimal(0)
    opened_today = held["today"] or Decimal(0)
    risk = risk or account_risk_get(account=account, now=now, known_quotes={instrument.pk: quote})
    signed = quantity if side == Side.BUY else -quantity
    facts_quote = quote_facts(quote)
    mark = None
    if quote is not None:
        mark = next((p for p in (quote.mid, quote.last, quote.bid, quote.ask) if p is not None and p > 0), None)
    completes_day_trade = reducing(position, signed) and opened_today != 0 and (opened_today > 0) == (position > 0)
    trades_today = trades_week = 0
    if settings.MAX_TRADES_PER_DAY or settings.MAX_TRADES_PER_WEEK:
        week_start = today - timedelta(days=today.weekday())
        rows = dict(
            TradeFrequencyTracking.objects.filter(account=account, period_start__in=[today, week_start])
            .filter(period__in=[FrequencyPeriod.DAY, FrequencyPeriod.WEEK])
            .values_list("period", "trades")
        )
        trades_today = rows.get(FrequencyPeriod.DAY, 0)
        trades_week = rows.get(FrequencyPeriod.WEEK, 0)
    good_faith = ""
    if account.account_type == AccountType.CASH and side == Side.SELL:
        good_faith = _good_faith_if_sold(account=account, instrument=instrument, quantity=quantity, now=now)
    return OrderFacts(
        side=side,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        stop_price=stop_price,
        symbol=symbol,
        sec_type=instrument.sec_type,
        expiry=instrument.expiry,
        strike=instrument.strike,
        right=instrument.right,
        multiplier=instrument.multiplier or Decimal(1),
        now=now,
        market_open=market_is_open(now),
        quote=facts_quote,
        position_quantity=position,
        position_price=mark,
        net_liquidation=risk.net_liquidation,
        breaker=breaker_message(risk.breaker) if risk.breaker else "",
        legacy_pdt=risk.legacy_pdt,
        completes_day_trade=completes_day_trade,
        day_trades_left=risk.day_trades_remaining,
        equity=risk.net_liquidation,
        cash_account=account.account_type == AccountType.CASH,
        cash_available=risk.cash_available,
        good_faith=good_faith,
        trades_today=trades_today,
        trades_week=trades_week,
        live_refusal=live_refusal,
        currency=instrument.currency.upper(),
        base_currency=account.base_currency.upper(),
        fx_rate=_fx_rate(instrument.currency, account.base_currency, today),
        paper=account.mode == AccountMode.PAPER,
    )


def _fx_rate(currency: str, base: str, today: date) -> Decimal | None:
    """One unit of ``currency`` in ``base`` today (no query for the base itself); None when no stored rate
    is recent enough (``FX_RATE_MAX_AGE_DAYS``): the order's value is then not judged as if it were 1."""
    if currency.upper() == base.upper():
        return Decimal(1)
    rate = FxTable.load(base=base, currencies=[currency], since=today).rate(currency, today)
    return None if rate is None else rate.rate


def _good_faith_if_sold(*, account: Account, instrument: Instrument, quantity: Decimal, now: datetime) -> str:
    """Replay the cash account with the sale added: a new good-faith violation on it says why to refuse."""
    from trading.calendars import settlement_date
    from trading.selectors import fills_of
    from trading.services.ledger import cash_fills_of

    rows = fills_of(account=account)
    if not rows:
        return ""
    today = trade_date_of(now)
    fills = cash_fills_of(rows)
    probe = LedgerFill(
        id=-1,
        exec_id="~probe",
        instrument_id=instrument.pk,
        executed_at=now,
        trade_date=today,
        side=Side.SELL,
        quantity=quantity,
        price=Decimal(0),
        multiplier=instrument.multiplier or Decimal(1),
    )
    fills.append(
        CashFill(
            fill=probe,
            settlement_date=settlement_date(trade_date=today, sec_type=instrument.sec_type),
            amount=Decimal(0),
        )
    )
    from trading.models import CashFlow

    movements = [
        CashMovement(at=at, amount=amount if kind == "DEPOSIT" else -amount)
        for at, kind, amount in CashFlow.objects.filter(account=account).values_list("at", "kind", "amount")
    ]
    first = min([r["trade_date"] for r in rows] + [trade_date_of(m.at) for m in movements])
    replay = cash_account_replay(fills=fills, movements=movements, start=min(first, today), end=today)
    for violation in replay.violations:
        if violation.sell_fill_id == -1 and violation.kind == GOOD_FAITH:
            return f"the shares were bought with proceeds that settle after today ({violation.detail})"[:250]
    return ""


def risk_state_get(*, account: Account, now: datetime | None = None) -> dict:
    """The account's breaker, value, day trades and cash as the API and the order ticket show them."""
    from django.utils import timezone

    from trading.services.orders import live_refusal

    now = now or timezone.now()
    risk = account_risk_get(account=account, now=now, trip=False)
    breaker = risk.breaker
    return {
        "account": account.account_id,
        "mode": account.mode,
        "net_liquidation": risk.net_liquidation,
        "previous_close": risk.previous_close,
        "daily_change": risk.daily_change,
        "trading_paused": breaker is not None,
        "paused_since": breaker.created_at if breaker else None,
        "paused_reason": breaker.message if breaker else "",
        "banner": breaker_message(breaker) if breaker else "",
        "legacy_pdt": risk.legacy_pdt,
        "day_trades_remaining": risk.day_trades_remaining,
        "cash_available": risk.cash_available,
        "settled_cash": risk.settled_cash,
        "live_trading": live_refusal() if account.mode == "LIVE" else "",
    }
