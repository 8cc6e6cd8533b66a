"""Signals and paper trades: create (idempotent by ``signal_id``), execute through ``order_execute`` (every
risk check), open a paper trade when the entry fills, and the paper trade monitor that closes trades at
their stop, their target or before the session's close, through the same order path.

Everything lives in the database: the monitor reads open trades, signals and working exit orders afresh
on every run, so a restart of any process loses nothing and the next run carries on where the last
stopped. A closing order is a market order: it fills at the quote (the bid for a long), so a gap through
the stop fills at the quote, not at the stop, and its slippage against the stop says so.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.fields import quantize_money, quantize_ratio
from marketdata.selectors import quotes_by_instrument
from marketdata.services import instruments_resolve
from trading.calendars import is_nyse_session, market_is_open, session_close, trade_date_of
from trading.models import (
    Account,
    Order,
    OrderStatus,
    OrderType,
    PaperTrade,
    PaperTradeStatus,
    Side,
    Signal,
    SignalStatus,
    Timeframe,
)
from trading.rules.orders import quote_is_fresh
from trading.services.orders import OrderInput, order_execute
from trading.services.risk import quote_facts
from trading.services.sessions import trading_session_current

logger = logging.getLogger(__name__)
MONITOR_LOCK = "trading.paper_trades_monitor"


class SignalError(Exception):
    """A signal that cannot be executed (expired, already executed, no size); the message says why."""


@dataclass(frozen=True)
class SignalInput:
    signal_id: str
    symbol: str
    action: str
    entry_price: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    risk_amount: Decimal
    confidence: Decimal = Decimal(0)
    timeframe: str = Timeframe.INTRADAY
    quantity: Decimal | None = None
    strategy: str = ""
    entry_type: str = ""
    reasoning: str = ""
    indicators: list = field(default_factory=list)
    confluence_score: Decimal | None = None
    confluence_components: dict = field(default_factory=dict)
    expires_at: datetime | None = None


def signal_validate(data: SignalInput) -> dict[str, str]:
    """Errors by field: the stop on the losing side of the entry, the target on the winning side."""
    errors = {}
    long = data.action == Side.BUY
    if data.stop_loss == data.entry_price:
        errors["stop_loss"] = "must differ from the entry price (the size is risk / |entry - stop|)"
    elif (data.stop_loss > data.entry_price) == long:
        errors["stop_loss"] = f"must be {'below' if long else 'above'} the entry price for a {data.action}"
    if (data.take_profit <= data.entry_price) == long or data.take_profit == data.entry_price:
        errors["take_profit"] = f"must be {'above' if long else 'below'} the entry price for a {data.action}"
    return errors


def signal_create(*, account: Account, data: SignalInput, now: datetime | None = None) -> tuple[Signal, bool]:
    """Store a signal once per ``(account, signal_id)``; the same id again returns the first (created False)."""
    existing = Signal.objects.filter(account=account, signal_id=data.signal_id).first()
    if existing is not None:
        return existing, False
    errors = signal_validate(data)
    if errors:
        raise ValueError(errors)
    spec_input = OrderInput(client_order_id="", symbol=data.symbol, side=data.action, quantity=Decimal(1))
    instrument = instruments_resolve(specs=[spec_input.spec])[spec_input.spec.key]
    signal = Signal(
        account=account,
        signal_id=data.signal_id,
        instrument=instrument,
        action=data.action,
        entry_price=data.entry_price,
        stop_loss=data.stop_loss,
        take_profit=data.take_profit,
        confidence=data.confidence,
        timeframe=data.timeframe,
        risk_amount=data.risk_amount,
        quantity=data.quantity,
        strategy=data.strategy,
        entry_type=data.entry_type,
        reasoning=data.reasoning,
        indicators=list(data.indicators),
        confluence_score=data.confluence_score,
        confluence_components=dict(data.confluence_components),
        created_at=now or timezone.now(),
        expires_at=data.expires_at,
    )
    try:
        with transaction.atomic():
            signal.save()
    except IntegrityError:
        # A concurrent request with the same signal id committed first: answer with its signal.
        first = Signal.objects.filter(account=account, signal_id=data.signal_id).first()
        if first is None:
            raise
        return first, False
    return signal, True


def signal_size(*, entry_price: Decimal, stop_loss: Decimal, risk_amount: Decimal) -> Decimal:
    """Whole shares: ``risk_amount / |entry - stop|`` rounded down (never risk more than asked)."""
    distance = abs(entry_price - stop_loss)
    if distance == 0:
        raise SignalError("the entry price equals the stop: no size can be computed")
    return (risk_amount / distance).quantize(Decimal(1), rounding=ROUND_DOWN)


def _risk_reward(signal: Signal) -> Decimal:
    return quantize_ratio(abs(signal.take_profit - signal.entry_price) / abs(signal.entry_price - signal.stop_loss))


def signal_quantity(*, signal: Signal, quantity: Decimal | None = None) -> Decimal:
    """The entry's size: given, the signal's own, or ``risk_amount / |entry - stop|`` whole shares."""
    size = quantity or signal.quantity
    if size is None:
        size = signal_size(entry_price=signal.entry_price, stop_loss=signal.stop_loss, risk_amount=signal.risk_amount)
    if size <= 0:
        raise SignalError(
            f"risk_amount {signal.risk_amount} buys less than one share at a stop distance of "
            f"{abs(signal.entry_price - signal.stop_loss)}"
        )
    return size


def signal_order_input(*, signal: Signal, quantity: Decimal, client_order_id: str = "") -> OrderInput:
    """The signal's entry as an order ticket: a market order carrying the signal's decision fields."""
    return OrderInput(
        client_order_id=client_order_id,
        symbol=signal.instrument.symbol,
        side=signal.action,
        quantity=quantity,
        order_type=OrderType.MARKET,
        decision_price=signal.entry_price,
        strategy=signal.strategy,
        entry_type=signal.entry_type,
        stop_loss=signal.stop_loss,
        target=signal.take_profit,
        reasoning=signal.reasoning,
        indicators={"used": signal.indicators, "signal_id": signal.signal_id},
        risk_reward=_risk_reward(signal),
    )


def signals_expire(*, now: datetime | None = None) -> int:
    """GENERATED signals whose ``expires_at`` has come become EXPIRED (a conditional update)."""
    now = now or timezone.now()
    return Signal.objects.filter(status=SignalStatus.GENERATED, expires_at__lte=now).update(status=SignalStatus.EXPIRED)


def signal_execute(
    *, signal: Signal, quantity: Decimal | None = None, user=None, now: datetime | None = None
) -> Signal:
    """Place the signal's entry order through every risk check.

    A refused order leaves the signal GENERATED with the reasons (it may be executed again: each attempt
    is its own order); an accepted one makes it EXECUTED, and a fill opens its paper trade.
    """
    now = now or timezone.now()
    # Expired before the monitor saw it: record that first (outside the transaction the refusal rolls back).
    if Signal.objects.filter(pk=signal.pk, status=SignalStatus.GENERATED, expires_at__lte=now).update(
        status=SignalStatus.EXPIRED
    ):
        raise SignalError(f"signal {signal.signal_id} expired at {signal.expires_at.isoformat()}")
    with transaction.atomic():
        # One execute at a time per signal: the row lock orders concurrent requests.
        signal = Signal.objects.select_for_update().select_related("account", "instrument").get(pk=signal.pk)
        if signal.status != SignalStatus.GENERATED:
            raise SignalError(f"signal {signal.signal_id} is {signal.status}: only a GENERATED signal executes")
        size = signal_quantity(signal=signal, quantity=quantity)
        attempt = Order.objects.filter(account=signal.account, client_order_id__startswith=f"sig-{signal.pk}-").count()
        outcome = order_execute(
            account=signal.account,
            data=signal_order_input(signal=signal, quantity=size, client_order_id=f"sig-{signal.pk}-{attempt + 1}"),
            user=user,
            now=now,
        )
        order = outcome.order
        signal.order = order
        if order.status == OrderStatus.REJECTED:
            signal.status_reasons = list(order.reject_reasons)
        else:
            signal.status = SignalStatus.EXECUTED
            signal.status_reasons = []
            signal.executed_at = now
        signal.save(update_fields=["order", "status", "status_reasons", "executed_at"])
        if order.status == OrderStatus.FILLED:
            paper_trade_open(signal=signal, order=order)
    return signal


def paper_trade_open(*, signal: Signal, order: Order) -> PaperTrade:
    """The signal's entry order filled: its paper trade opens (once: one trade per signal)."""
    trade, _ = PaperTrade.objects.get_or_create(
        signal=signal,
        defaults={
            "account_id": signal.account_id,
            "instrument_id": signal.instrument_id,
            "side": order.side,
            "quantity": order.filled_quantity,
            "entry_price": order.average_fill_price,
            "stop_loss": signal.stop_loss,
            "take_profit": signal.take_profit,
            "risk_amount": signal.risk_amount,
            "timeframe": signal.timeframe,
            "entry_order": order,
            "entry_commission": order.commission,
            "opened_at": order.done_at or order.created_at,
            "current_price": order.average_fill_price,
            "price_at": order.done_at,
            "unrealized_pnl": Decimal(0),
        },
    )
    return trade


# --- closing -----------------------------------------------------------------------------------
def _pnl(trade: PaperTrade, price: Decimal) -> Decimal:
    multiplier = trade.instrument.multiplier or Decimal(1)
    return trade.direction * (price - trade.entry_price) * trade.quantity * multiplier


def _finish(trade: PaperTrade, order: Order) -> None:
    """The exit order filled: the trade is closed at its fill, net of both commissions (caller's transaction)."""
    trade.status = trade.exit_reason
    trade.exit_order = order
    trade.exit_price = order.average_fill_price
    trade.exited_at = order.done_at
    trade.exit_date = trade_date_of(order.done_at)
    trade.current_price = order.average_fill_price
    trade.price_at = order.done_at
    trade.realized_pnl = quantize_money(
        _pnl(trade, order.average_fill_price) - trade.entry_commission - order.commission
    )
    trade.unrealized_pnl = None
    trade.exit_note = ""
    trade.save()
    Signal.objects.filter(pk=trade.signal_id).update(status=SignalStatus.CLOSED)


class PaperTradeClosed(Exception):  # noqa: N818
    """The trade is closed already, or its closing order is working: nothing more to close."""


def _exit_pending(trade: PaperTrade) -> bool:
    """A closing order that is working or has filled (not finished yet): no second one is placed. One
    that was refused, cancelled or expired is not: the next attempt places a new one."""
    order = trade.exit_order
    return order is not None and (order.is_working or order.status == OrderStatus.FILLED)


def paper_trade_close(
    *,
    trade: PaperTrade,
    reason: str,
    decision_price: Decimal | None = None,
    user=None,
    now: datetime | None = None,
    strict: bool = False,
) -> PaperTrade:
    """Close an open trade with a market order through ``order_execute`` (every check; closing orders pass
    the position and breaker checks). Filled: the trade closes; refused: it stays open with the reasons
    in ``exit_note`` and the next monitor run tries again; resting (market closed): the monitor finishes it
    when the order fills."""
    now = now or timezone.now()
    with transaction.atomic():
        trade = (
            PaperTrade.objects.select_for_update()
            .select_related("account", "instrument", "entry_order")
            .get(pk=trade.pk)
        )
        if trade.status != PaperTradeStatus.OPEN or _exit_pending(trade):
            if strict:  # the trader asked: say so rather than answer with another's close
                raise PaperTradeClosed(
                    f"paper trade {trade.pk} is closed already ({trade.get_status_display()})"
                    if trade.status != PaperTradeStatus.OPEN
                    else f"paper trade {trade.pk}: closing order {trade.exit_order_id} is working already"
                )
            return trade  # closed already, or its closing order is working: another run got there first
        attempt = Order.objects.filter(account=trade.account, client_order_id__startswith=f"pt-{trade.pk}-x").count()
        outcome = order_execute(
            account=trade.account,
            data=OrderInput(
                client_order_id=f"pt-{trade.pk}-x{attempt + 1}",
                symbol=trade.instrument.symbol,
                side=trade.exit_side,
                quantity=trade.quantity,
                order_type=OrderType.MARKET,
                outside_rth=trade.entry_order.outside_rth,
                decision_price=decision_price,
                strategy=trade.entry_order.strategy,
                entry_type="exit",
                reasoning=f"{PaperTradeStatus(reason).label}: paper trade {trade.pk}",
            ),
            user=user,
            now=now,
        )
        order = outcome.order
        trade.exit_reason = reason
        if order.status == OrderStatus.REJECTED:
            trade.exit_note = ("closing order refused: " + "; ".join(order.reject_reasons))[:255]
            trade.save(update_fields=["exit_reason", "exit_note"])
        elif order.status == OrderStatus.FILLED:
            _finish(trade, order)
        else:
            trade.exit_order = order
            trade.exit_note = f"closing order {order.pk} is {order.status}"
            trade.save(update_fields=["exit_reason", "exit_order", "exit_note"])
    return trade


def paper_trade_close_by_hand(*, trade: PaperTrade, user=None, now: datetime | None = None) -> PaperTrade:
    """The trader's "Close": a closing market order through the normal order path, exit reason MANUAL.

    Raises ``PaperTradeClosed`` when the trade is closed or a closing order is already working. The
    decision price is the last price the monitor stored (what the trader saw). A refused closing order
    leaves the trade OPEN with the reasons in ``exit_note``; one that rests (market closed) is finished
    by the monitor when it fills.
    """
    if trade.status != PaperTradeStatus.OPEN:
        raise PaperTradeClosed(f"paper trade {trade.pk} is closed already ({trade.get_status_display()})")
    if _exit_pending(trade):
        raise PaperTradeClosed(f"paper trade {trade.pk}: closing order {trade.exit_order_id} is working already")
    # strict: a close by another request or the monitor between this read and the row lock is a 409 too.
    return paper_trade_close(
        trade=trade, reason=PaperTradeStatus.MANUAL, decision_price=trade.current_price, user=user, now=now, strict=True
    )


# --- the monitor -------------------------------------------------------------------------------
@dataclass
class MonitorResult:
    expired: int = 0
    opened: int = 0
    checked: int = 0
    closed: dict[str, int] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "expired": self.expired,
            "opened": self.opened,
            "checked": self.checked,
            "closed": self.closed,
            "waiting": self.waiting,
        }


def _eod_due(trade: PaperTrade, now: datetime) -> bool:
    """An intraday trade inside the last ``EOD_CLOSE_MINUTES`` of today's session, or left from an earlier one."""
    if trade.timeframe != Timeframe.INTRADAY:
        return False
    today = trade_date_of(now)
    if trade_date_of(trade.opened_at) < today:
        return True
    if not is_nyse_session(today):
        return False
    return now >= session_close(today) - timedelta(minutes=settings.EOD_CLOSE_MINUTES)


def exit_reason_for(trade: PaperTrade, price: Decimal, now: datetime) -> tuple[str, Decimal] | None:
    """Which exit ``price`` (the side the closing order would fill at) triggers, and the level it decided at."""
    long = trade.side == Side.BUY
    if (price <= trade.stop_loss) if long else (price >= trade.stop_loss):
        return PaperTradeStatus.STOP_LOSS, trade.stop_loss
    if (price >= trade.take_profit) if long else (price <= trade.take_profit):
        return PaperTradeStatus.TAKE_PROFIT, trade.take_profit
    if _eod_due(trade, now):
        return PaperTradeStatus.EOD_CLOSE, price
    return None


def paper_trades_monitor(*, now: datetime | None = None) -> MonitorResult:
    """One pass: expire signals, open trades whose entry filled late, finish filled exits, and check every
    open trade against its stored quote (stop, target, end of day). Safe at any hour: outside regular
    hours only trades whose entry order may trade outside them are acted on."""
    now = now or timezone.now()
    trading_session_current(now=now, started_by="monitor")  # a trading day begins with its first run
    result = MonitorResult(expired=signals_expire(now=now))
    # Entries that rested and filled later.
    for signal in Signal.objects.filter(
        status=SignalStatus.EXECUTED, paper_trade__isnull=True, order__status=OrderStatus.FILLED
    ).select_related("order"):
        paper_trade_open(signal=signal, order=signal.order)
        result.opened += 1
    trades = list(
        PaperTrade.objects.filter(status=PaperTradeStatus.OPEN)
        .select_related("instrument", "entry_order", "exit_order", "account")
        .order_by("opened_at", "id")
    )
    quotes = quotes_by_instrument(instrument_ids={t.instrument_id for t in trades})
    open_now = market_is_open(now)
    for trade in trades:
        exit_order = trade.exit_order
        if _exit_pending(trade):
            if exit_order.status == OrderStatus.FILLED:
                with transaction.atomic():
                    _finish(trade, exit_order)
                result.closed[trade.exit_reason] = result.closed.get(trade.exit_reason, 0) + 1
            else:
                result.waiting.append(f"trade {trade.pk}: closing order {exit_order.pk} is {exit_order.status}")
            continue
        if not open_now and not trade.entry_order.outside_rth:
            continue
        quote = quote_facts(quotes.get(trade.instrument_id))
        if not quote_is_fresh(quote, now, settings.QUOTE_STALE_AFTER):
            result.waiting.append(f"trade {trade.pk}: no fresh quote for {trade.instrument.symbol}")
            continue
        price = quote.price_for(trade.exit_side)
        if price is None:
            continue
        result.checked += 1
        PaperTrade.objects.filter(pk=trade.pk, status=PaperTradeStatus.OPEN).update(
            current_price=price, price_at=quote.at, unrealized_pnl=quantize_money(_pnl(trade, price))
        )
        decision = exit_reason_for(trade, price, now)
        if decision is None:
            continue
        reason, level = decision
        closed = paper_trade_close(trade=trade, reason=reason, decision_price=level, now=now)
        if closed.status != PaperTradeStatus.OPEN:
            result.closed[reason] = result.closed.get(reason, 0) + 1
        elif closed.exit_note:
            result.waiting.append(f"trade {trade.pk}: {closed.exit_note}")
    return result
