"""Orders: risk validation, the paper engine, live placement through the broker boundary, the lifecycle.

``order_execute`` is the whole request: it stores the order once per ``(account, client_order_id)``
(the database's unique constraint decides between concurrent duplicates: the loser reads the
winner's order), judges it by every risk check, and then

- PAPER accounts: the paper engine fills a marketable order at once against a fresh stored quote, as
  an ordinary execution in broker namespace ``paper`` (so the ledger, settlement, day trades, PDT
  status, cash-account state, positions, snapshots and metrics treat it like any fill); a limit or
  stop order rests until a later quote crosses it (``paper_orders_on_quotes``, called by marketdata's
  after-quotes hook) or its session closes (``orders_expire``).
- LIVE accounts: only with ``LIVE_TRADING_ENABLED`` and a connection that is not read-only. The order
  is committed as PENDING and marked as being sent *before* the broker is called, so a worker killed
  in between leaves a row that ``orders_status_sync`` reconciles with the broker by its order
  reference (the client order id), never a second order. A lost answer is not retried blindly: the
  broker's orders are searched for the reference first.

Every status change writes an ``OrderEvent``.
"""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.brokers import Broker, BrokerError, BrokerUnavailable
from core.brokers.base import BrokerExecution, OrderAck, OrderRequest
from core.brokers.contracts import InstrumentSpec, SecType
from core.fields import quantize_money, quantize_price
from marketdata.selectors import quotes_by_instrument
from marketdata.services import instruments_resolve
from trading.calendars import market_is_open, order_session, session_close, trade_date_of
from trading.hooks import after_fills_notify
from trading.models import (
    WORKING_STATUSES,
    Account,
    AccountMode,
    ExecutionSource,
    Order,
    OrderEvent,
    OrderEventSource,
    OrderStatus,
    OrderType,
    RiskAction,
    RiskEvent,
    RiskEventKind,
    RiskSeverity,
    TimeInForce,
)
from trading.rules.orders import (
    PaperOrder,
    order_checks,
    paper_commission,
    paper_fill_price,
    quote_is_fresh,
    reference_price,
    slippage,
)
from trading.services.executions import executions_upsert
from trading.services.ledger import ledger_recompute
from trading.services.risk import limits_from_settings, order_facts_gather, quote_facts
from trading.services.sessions import trading_session_current

logger = logging.getLogger(__name__)

PAPER_NAMESPACE = "paper"
OPTION_MULTIPLIER = Decimal(100)
# A live order marked as being sent that the broker does not know after this long never reached it.
SEND_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class OrderInput:
    """An order as the trader asks for it (already validated for shape by the API or the caller)."""

    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    order_type: str = OrderType.MARKET
    sec_type: str = SecType.STOCK
    expiry: date | None = None
    strike: Decimal | None = None
    right: str = ""
    currency: str = "USD"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = TimeInForce.DAY
    outside_rth: bool = False
    decision_price: Decimal | None = None
    strategy: str = ""
    entry_type: str = ""
    stop_loss: Decimal | None = None
    target: Decimal | None = None
    reasoning: str = ""
    indicators: dict = field(default_factory=dict)
    risk_reward: Decimal | None = None

    @property
    def spec(self) -> InstrumentSpec:
        is_option = self.sec_type in (SecType.OPTION, SecType.FUTURE_OPTION)
        return InstrumentSpec(
            symbol=self.symbol.upper(),
            sec_type=self.sec_type,
            currency=self.currency.upper(),
            multiplier=OPTION_MULTIPLIER if is_option else Decimal(1),
            expiry=self.expiry if is_option else None,
            strike=self.strike if is_option else None,
            right=self.right.upper() if is_option else "",
        )


@dataclass
class OrderOutcome:
    order: Order
    created: bool  # False: the client order id was known, this is the first order
    # A new paper order's events as written (in order), so the answer need not read them back; None:
    # read them (a repeat, or a live order whose sending wrote more).
    events: list[OrderEvent] | None = None


def live_refusal() -> str:
    """Why a LIVE account's order may not be sent now (empty when it may)."""
    if not settings.LIVE_TRADING_ENABLED:
        return "live trading is disabled (LIVE_TRADING_ENABLED=false): nothing is sent to the broker"
    if settings.BROKER == "ibkr" and settings.IBKR_READONLY:
        return "the IBKR connection is read-only (IBKR_READONLY=true): nothing is sent to the broker"
    return ""


def _event(order: Order, to_status: str, source: str, message: str, at: datetime, from_status: str = "", **data):
    return OrderEvent(
        order=order,
        at=at,
        from_status=from_status,
        to_status=to_status,
        source=source,
        message=message[:255],
        data=data,
    )


def order_execute(
    *, account: Account, data: OrderInput, user=None, now: datetime | None = None, broker: Broker | None = None
) -> OrderOutcome:
    """Judge and place one order; the same ``client_order_id`` again returns the first order.

    The unique ``(account, client_order_id)`` decides, not a read before the insert: a repeat costs a
    refused insert, a new order saves the read.
    """
    now = now or timezone.now()
    spec = data.spec
    instrument = instruments_resolve(specs=[spec])[spec.key]
    limits = limits_from_settings()
    refusal = live_refusal() if account.mode == AccountMode.LIVE else ""
    session = trading_session_current(now=now)
    notify = False
    try:
        with transaction.atomic():
            order = Order(
                account=account,
                client_order_id=data.client_order_id,
                mode=account.mode,
                instrument=instrument,
                side=data.side,
                quantity=data.quantity,
                order_type=data.order_type,
                limit_price=data.limit_price,
                stop_price=data.stop_price,
                time_in_force=data.time_in_force,
                outside_rth=data.outside_rth,
                status=OrderStatus.PENDING,
                session_date=order_session(now),
                decision_price=data.decision_price,
                strategy=data.strategy,
                entry_type=data.entry_type,
                stop_loss=data.stop_loss,
                target=data.target,
                reasoning=data.reasoning,
                indicators=data.indicators,
                risk_reward=data.risk_reward,
                session=session,
                config_hash=session.config_hash,
                created_by=user if user is not None and user.is_authenticated else None,
                created_at=now,
            )
            order.save()  # the transaction's first write: a known client order id fails here, before any work
            facts = order_facts_gather(
                account=account,
                instrument=instrument,
                side=data.side,
                quantity=data.quantity,
                order_type=data.order_type,
                limit_price=data.limit_price,
                stop_price=data.stop_price,
                symbol=data.symbol.upper(),
                now=now,
                live_refusal=refusal,
            )
            checks = order_checks(facts, limits)
            failed = [c for c in checks if not c.passed]
            order.checks = [c.as_dict() for c in checks]
            order.reference_price = quantize_price(reference_price(facts))
            events = [_event(order, OrderStatus.PENDING, OrderEventSource.API, "received", now)]
            if failed:
                order.status = OrderStatus.REJECTED
                order.reject_reasons = [f"{c.name}: {c.message}" for c in failed]
                order.done_at = now
                events.append(
                    _event(
                        order,
                        OrderStatus.REJECTED,
                        OrderEventSource.RISK,
                        "refused by " + ", ".join(c.name for c in failed),
                        now,
                        OrderStatus.PENDING,
                    )
                )
                RiskEvent.objects.create(
                    account=account,
                    kind=RiskEventKind.POSITION_REJECTED,
                    severity=RiskSeverity.WARNING,
                    action=RiskAction.ORDER_REJECTED,
                    value=Decimal(len(failed)),
                    threshold=Decimal(0),
                    as_of=trade_date_of(now),
                    message=(f"order {data.client_order_id} refused: " + "; ".join(order.reject_reasons))[:255],
                    settings_snapshot=limits.snapshot(),
                    order=order,
                    resolved_at=now,  # a refusal is a one-off: nothing stays open
                )
            elif account.mode == AccountMode.PAPER:
                order.status = OrderStatus.SUBMITTED
                order.perm_id = order.pk  # a paper order's fills carry its id as their perm id
                events.append(
                    _event(
                        order,
                        OrderStatus.SUBMITTED,
                        OrderEventSource.PAPER,
                        "accepted by the paper engine",
                        now,
                        OrderStatus.PENDING,
                    )
                )
                quote = facts.quote
                if _may_fill_now(order, quote, now):
                    price, triggered = paper_fill_price(_paper_view(order), quote)
                    order.stop_triggered = triggered
                    if price is not None:
                        events.append(_paper_fill(order, price=price, now=now))
                        notify = True
            order.save()
            OrderEvent.objects.bulk_create(events)
            if notify:
                transaction.on_commit(lambda: after_fills_notify(account_ids=[account.account_id]))
    except IntegrityError:
        # The same client order id is stored (a repeat, or a concurrent request that committed first;
        # the unique index made this insert wait for it): answer with that order. Nothing of this
        # attempt is kept. Any other integrity error finds no such order and is raised.
        first = Order.objects.filter(account=account, client_order_id=data.client_order_id).first()
        if first is None:
            raise
        return OrderOutcome(order=first, created=False)
    if order.status == OrderStatus.PENDING and account.mode == AccountMode.LIVE:
        if broker is None:
            from core.brokers import get_broker

            broker = get_broker()
        order_send(order=order, broker=broker)
        return OrderOutcome(order=order, created=True)
    return OrderOutcome(order=order, created=True, events=events)


# --- the paper engine --------------------------------------------------------------------------
def _paper_view(order: Order) -> PaperOrder:
    return PaperOrder(
        side=order.side,
        order_type=order.order_type,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        stop_triggered=order.stop_triggered,
    )


def _may_fill_now(order: Order, quote, now: datetime) -> bool:
    """A fresh quote, and regular hours unless the order may fill outside them."""
    if not quote_is_fresh(quote, now, settings.QUOTE_STALE_AFTER):
        return False
    return order.outside_rth or market_is_open(now)


def _paper_fill(order: Order, *, price: Decimal, now: datetime) -> OrderEvent:
    """Fill what remains of a paper order at ``price``: an execution through the ledger (caller's transaction)."""
    instrument = order.instrument
    quantity = order.remaining_quantity
    multiplier = instrument.multiplier or Decimal(1)
    commission = paper_commission(
        quantity=quantity,
        price=price,
        multiplier=multiplier,
        per_share=settings.PAPER_COMMISSION_PER_SHARE,
        minimum=settings.PAPER_COMMISSION_MIN,
        max_pct=settings.PAPER_COMMISSION_MAX_PCT,
    )
    row = BrokerExecution(
        account_id=order.account.account_id,
        exec_id=f"PAPER-{order.pk}-1",
        instrument=instrument.spec,
        side=order.side,
        quantity=quantity,
        price=price,
        executed_at=now,
        commission=commission,
        commission_currency=instrument.currency,
        order_id=order.pk,
        perm_id=order.pk,
        exchange="PAPER",
        raw={"client_order_id": order.client_order_id},
    )
    result = executions_upsert(
        account=order.account,
        rows=[row],
        broker_name=PAPER_NAMESPACE,
        source=ExecutionSource.PAPER,
        write_new=False,
        instruments={row.instrument.key: instrument},  # the order's: not resolved again
    )
    ledger_recompute(
        account=order.account, affected=result.affected, unwritten=result.unwritten, today=trade_date_of(now)
    )
    previous = order.status
    order.filled_quantity = order.quantity
    order.average_fill_price = quantize_price(price)
    order.commission = quantize_money(commission)
    order.slippage = quantize_price(slippage(side=order.side, fill_price=price, decision_price=order.decision_price))
    order.status = OrderStatus.FILLED
    order.done_at = now
    return _event(
        order,
        OrderStatus.FILLED,
        OrderEventSource.PAPER,
        f"filled {quantity.normalize():f} @ {price.normalize():f}, commission {commission.normalize():f}",
        now,
        previous,
    )


def paper_orders_on_quotes(*, instrument_ids: list[int], now: datetime | None = None) -> int:
    """Check the resting paper orders of these instruments against their new quotes; returns fills made."""
    now = now or timezone.now()
    resting = list(
        Order.objects.filter(
            mode=AccountMode.PAPER,
            status__in=(OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED),
            instrument_id__in=list(instrument_ids),
        )
        .select_related("account", "instrument")
        .order_by("created_at", "id")
    )
    if not resting:
        return 0
    quotes = quotes_by_instrument(instrument_ids={o.instrument_id for o in resting})
    fills = 0
    for order in resting:
        quote = quote_facts(quotes.get(order.instrument_id))
        if _expired(order, now) or not _may_fill_now(order, quote, now):
            continue
        price, triggered = paper_fill_price(_paper_view(order), quote)
        if price is None and triggered == order.stop_triggered:
            continue
        with transaction.atomic():
            # Lock and re-read: a cancel or another quote's fill may have got there first.
            locked = Order.objects.select_for_update().select_related("account", "instrument").get(pk=order.pk)
            if locked.status not in (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED):
                continue
            locked.stop_triggered = triggered
            if price is None:
                locked.save(update_fields=["stop_triggered", "updated_at"])
                continue
            event = _paper_fill(locked, price=price, now=now)
            locked.save()
            event.save()
            account_id = locked.account.account_id
            transaction.on_commit(lambda a=account_id: after_fills_notify(account_ids=[a]))
            fills += 1
    return fills


def _expired(order: Order, now: datetime) -> bool:
    return order.time_in_force == TimeInForce.DAY and session_close(order.session_date) <= now


def orders_expire(*, now: datetime | None = None) -> int:
    """Paper DAY orders still working after their session's close (early closes too) become EXPIRED.

    A live DAY order is expired by the broker; the status sync records it.
    """
    now = now or timezone.now()
    today = trade_date_of(now)
    candidates = Order.objects.filter(
        mode=AccountMode.PAPER, time_in_force=TimeInForce.DAY, status__in=WORKING_STATUSES, session_date__lte=today
    ).values_list("pk", "session_date", "status")
    expired = 0
    for pk, session_date, status in candidates:
        if session_close(session_date) > now:
            continue
        with transaction.atomic():
            if Order.objects.filter(pk=pk, status=status).update(status=OrderStatus.EXPIRED, done_at=now) != 1:
                continue  # it filled or was cancelled meanwhile
            OrderEvent.objects.create(
                order_id=pk,
                at=now,
                from_status=status,
                to_status=OrderStatus.EXPIRED,
                source=OrderEventSource.EXPIRY,
                message=f"DAY order: the session of {session_date.isoformat()} closed",
            )
            expired += 1
    return expired


# --- cancel ------------------------------------------------------------------------------------
class OrderNotCancellable(Exception):  # noqa: N818
    pass


def order_cancel(
    *, order: Order, source: str = OrderEventSource.USER, now: datetime | None = None, broker: Broker | None = None
) -> Order:
    """Cancel a working order: at once on paper, through the broker for a live one."""
    now = now or timezone.now()
    if not order.is_working:
        raise OrderNotCancellable(f"order {order.pk} is {order.status}: only a working order can be cancelled")
    if order.mode == AccountMode.PAPER or order.broker_order_id is None:
        if order.mode == AccountMode.LIVE and order.sent_at is not None:
            raise OrderNotCancellable(
                f"order {order.pk} was sent but the broker's answer is not known yet: try again after the status sync"
            )
        with transaction.atomic():
            status = order.status
            if Order.objects.filter(pk=order.pk, status=status).update(status=OrderStatus.CANCELLED, done_at=now) != 1:
                raise OrderNotCancellable(f"order {order.pk} changed meanwhile; it is no longer {status}")
            OrderEvent.objects.create(
                order=order,
                at=now,
                from_status=status,
                to_status=OrderStatus.CANCELLED,
                source=source,
                message="cancelled",
            )
        order.refresh_from_db()
        return order
    if broker is None:
        from core.brokers import get_broker

        broker = get_broker()
    try:
        ack = broker.cancel_order(order.account.account_id, order.broker_order_id)
    except (BrokerUnavailable, BrokerError) as exc:
        raise OrderNotCancellable(f"the broker did not cancel order {order.pk}: {exc}") from exc
    order_apply_ack(order=order, ack=ack, source=source, now=now)
    order.refresh_from_db()
    return order


# --- live orders -------------------------------------------------------------------------------
def _order_request(order: Order) -> OrderRequest:
    return OrderRequest(
        account_id=order.account.account_id,
        instrument=order.instrument.spec,
        side=order.side,
        quantity=order.quantity,
        order_type=order.order_type,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        time_in_force=order.time_in_force,
        outside_rth=order.outside_rth,
        order_ref=order.client_order_id,
    )


def order_send(*, order: Order, broker: Broker, now: datetime | None = None) -> Order:
    """Hand a PENDING live order to the broker, once.

    ``sent_at`` is committed before the call: if this process dies before the answer is stored, the
    status sync finds the order at the broker by its reference instead of anyone sending it again.
    """
    now = now or timezone.now()
    if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, sent_at__isnull=True).update(sent_at=now) != 1:
        order.refresh_from_db()
        return order  # already sent (or no longer pending): never twice
    order.sent_at = now
    try:
        ack = broker.place_order(_order_request(order))
    except BrokerError as exc:
        _order_error(order, code=None, message=f"the broker refused it: {exc}", now=now)
        return order
    except BrokerUnavailable as exc:
        # The answer was lost: the broker may have the order. Look it up by its reference; never resend.
        logger.warning("order %s: no answer from the broker (%s); looking it up by its reference", order.pk, exc)
        ack = _find_at_broker(order, broker)
        if ack is None:
            OrderEvent.objects.create(
                order=order,
                at=now,
                from_status=OrderStatus.PENDING,
                to_status=OrderStatus.PENDING,
                source=OrderEventSource.BROKER,
                message=f"no answer from the broker ({exc}); the status sync looks it up by its reference"[:255],
            )
            return order
    order_apply_ack(order=order, ack=ack, source=OrderEventSource.BROKER, now=now)
    order.refresh_from_db()
    return order


def _find_at_broker(order: Order, broker: Broker) -> OrderAck | None:
    try:
        listed = broker.orders(order.account.account_id)
    except (BrokerUnavailable, BrokerError):
        return None
    return next((ack for ack in listed.items if ack.order_ref == order.client_order_id), None)


def _order_error(order: Order, *, code: int | None, message: str, now: datetime) -> None:
    with transaction.atomic():
        status = order.status
        Order.objects.filter(pk=order.pk).update(
            status=OrderStatus.ERROR, broker_code=code, broker_message=message[:255], done_at=now
        )
        OrderEvent.objects.create(
            order=order,
            at=now,
            from_status=status,
            to_status=OrderStatus.ERROR,
            source=OrderEventSource.BROKER,
            message=message[:255],
            data={"code": code},
        )
    order.refresh_from_db()


_FINAL_FROM_BROKER = {"FILLED": OrderStatus.FILLED, "CANCELLED": OrderStatus.CANCELLED}


def order_apply_ack(*, order: Order, ack: OrderAck, source: str, now: datetime) -> bool:
    """Record what the broker says of the order; an event only when something changed."""
    if ack.status == "ERROR":
        if order.status != OrderStatus.ERROR:
            _order_error(order, code=ack.code, message=ack.message or "refused by the broker", now=now)
            return True
        return False
    status = {
        "SUBMITTED": OrderStatus.SUBMITTED,
        "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
        **_FINAL_FROM_BROKER,
    }.get(ack.status, OrderStatus.SUBMITTED)
    if status == OrderStatus.CANCELLED and order.time_in_force == TimeInForce.DAY and _expired(order, now):
        status = OrderStatus.EXPIRED
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        before = (locked.status, locked.filled_quantity, locked.broker_order_id, locked.perm_id)
        previous = locked.status
        locked.status = status
        locked.broker_order_id = ack.order_id if ack.order_id is not None else locked.broker_order_id
        locked.perm_id = ack.perm_id if ack.perm_id is not None else locked.perm_id
        locked.filled_quantity = max(locked.filled_quantity, ack.filled or Decimal(0))
        if ack.average_fill_price is not None:
            locked.average_fill_price = quantize_price(ack.average_fill_price)
            locked.slippage = quantize_price(
                slippage(side=locked.side, fill_price=ack.average_fill_price, decision_price=locked.decision_price)
            )
        if status not in WORKING_STATUSES:
            locked.done_at = locked.done_at or now
        if (locked.status, locked.filled_quantity, locked.broker_order_id, locked.perm_id) == before:
            return False
        locked.save()
        OrderEvent.objects.create(
            order=locked,
            at=now,
            from_status=previous,
            to_status=status,
            source=source,
            message=(ack.message or f"broker: {ack.status.lower()}")[:255],
            data={"order_id": ack.order_id, "perm_id": ack.perm_id, "filled": str(ack.filled)},
        )
    return True


def orders_status_sync(*, account: Account, broker: Broker, now: datetime | None = None) -> int:
    """Reconcile the account's working live orders with the broker's; returns how many changed.

    An order marked as sent whose answer was never stored is found by its reference; one the broker
    does not know after ``SEND_GRACE`` never reached it and becomes ERROR (it was not placed: no
    duplicate can come of resending it under a new client order id).
    """
    now = now or timezone.now()
    working = list(
        Order.objects.filter(account=account, mode=AccountMode.LIVE, status__in=WORKING_STATUSES)
        .exclude(status=OrderStatus.PENDING, sent_at__isnull=True)
        .select_related("account")
    )
    if not working:
        return 0
    listed = broker.orders(account.account_id)  # BrokerUnavailable: nothing is known, nothing changes
    by_ref = {ack.order_ref: ack for ack in listed.items if ack.order_ref}
    by_id = {ack.order_id: ack for ack in listed.items if ack.order_id is not None}
    changed = 0
    for order in working:
        ack = by_ref.get(order.client_order_id) or (by_id.get(order.broker_order_id) if order.broker_order_id else None)
        if ack is not None:
            changed += order_apply_ack(order=order, ack=ack, source=OrderEventSource.STATUS_SYNC, now=now)
        elif order.status == OrderStatus.PENDING and order.sent_at is not None and now - order.sent_at > SEND_GRACE:
            _order_error(order, code=None, message="never reached the broker: it does not know this order", now=now)
            changed += 1
    return changed


def orders_status_sync_all(*, broker: Broker) -> dict[str, int | str]:
    """Every account with working live orders: one reconciliation each; a broker failure is per account."""
    result: dict[str, int | str] = {}
    accounts = Account.objects.filter(
        pk__in=Order.objects.filter(mode=AccountMode.LIVE, status__in=WORKING_STATUSES).values("account_id")
    ).order_by("account_id")
    for account in accounts:
        try:
            result[account.account_id] = orders_status_sync(account=account, broker=broker)
        except (BrokerUnavailable, BrokerError) as exc:
            result[account.account_id] = f"skipped: {exc}"
    return result


def order_preview(*, account: Account, data: OrderInput, now: datetime | None = None):
    """The checks an order would be judged by now, without storing anything (the order ticket's "Check").

    Returns ``(checks, risk, reference_price)``. The breaker is read, not tripped: only a real order trips it.
    """
    from trading.services.risk import account_risk_get

    now = now or timezone.now()
    spec = data.spec
    instrument = instruments_resolve(specs=[spec])[spec.key]
    risk = account_risk_get(account=account, now=now, trip=False)
    facts = order_facts_gather(
        account=account,
        instrument=instrument,
        side=data.side,
        quantity=data.quantity,
        order_type=data.order_type,
        limit_price=data.limit_price,
        stop_price=data.stop_price,
        symbol=data.symbol.upper(),
        now=now,
        live_refusal=live_refusal() if account.mode == AccountMode.LIVE else "",
        risk=risk,
    )
    return order_checks(facts, limits_from_settings()), risk, reference_price(facts)
