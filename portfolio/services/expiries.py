"""The position sync's expiry step: options past their expiry session's close that the broker no longer
lists are settled (``portfolio/rules/expiries.py`` decides how each ended).

- A position built from the fills is settled in the ledger: its settlement fills (the option closed at
  0, the stock at the strike; ``trading.services.option_settlements``) under the keys a Flex statement
  gives the same event, so lots, realized P&L, round trips, day trades and settlement follow, and the
  build that comes next closes the position with an EXPIRED, EXERCISED or ASSIGNED event.
- A position the broker sync holds (no fills behind it: an account without fills, a transfer in) is
  closed in place with that event (``option_end_apply``): there is no opening fill for a closing fill
  to match.

Runs inside the sync's transaction, with the account's open positions locked. Nothing to settle (the
common case): no query.
"""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from core.brokers.base import BrokerExecution, BrokerPosition
from core.brokers.contracts import InstrumentSpec, SecType
from core.brokers.expiries import SettlementLeg, settlement_exec_id
from marketdata.models import Instrument
from portfolio.models import Position, PositionEventKind, PositionStatus
from portfolio.rules.expiries import OptionEnd, option_end_apply, option_ends_find, underlying_key
from portfolio.rules.lifecycle import PositionChanges
from trading.models import Account, ExecutionSource
from trading.services.option_settlements import option_settlements_record


def option_ends_settle(
    changes: PositionChanges,
    *,
    account: Account,
    rows: Iterable[tuple[BrokerPosition, Instrument]],
    open_positions: list[Position],
    now: datetime,
) -> list[OptionEnd]:
    """Settle the account's ended options; returns the ones settled in the ledger (fills written: the
    caller builds the positions from the fills again). Positions closed in place are in ``changes``."""
    rows = list(rows)
    reported = {instrument.pk for row, instrument in rows if row.quantity}
    stock_broker: dict[tuple[str, str], Decimal] = {}
    stocks: dict[tuple[str, str], Instrument] = {}
    for row, instrument in rows:
        if instrument.sec_type == SecType.STOCK:
            key = underlying_key(instrument)
            stock_broker[key] = stock_broker.get(key, Decimal(0)) + row.quantity
            stocks[key] = instrument
    stock_held: dict[tuple[str, str], Decimal] = {}
    for position in open_positions:
        if position.instrument.sec_type == SecType.STOCK and position.status == PositionStatus.OPEN:
            key = underlying_key(position.instrument)
            stock_held[key] = stock_held.get(key, Decimal(0)) + position.quantity
            stocks.setdefault(key, position.instrument)
    ends = option_ends_find(
        open_positions=open_positions,
        reported=reported,
        stock_broker=stock_broker,
        stock_held=stock_held,
        now=now,
    )
    in_ledger = []
    for end in ends:
        label = f"{end.position.instrument} ({end.position.quantity.normalize():f})"
        changes.warnings.append(f"{label}: {PositionEventKind(end.kind).label.lower()} at its expiry {end.at:%Y-%m-%d}")
        if end.position.from_fills:
            in_ledger.append(end)
        else:
            option_end_apply(changes, end)
    if in_ledger:
        settled = option_settlements_record(
            account=account,
            events=[_legs(account, end, stocks.get(underlying_key(end.position.instrument))) for end in in_ledger],
            source=ExecutionSource.INFERRED,
        )
        changes.warnings += settled.warnings
    return in_ledger


def _legs(account: Account, end: OptionEnd, stock: Instrument | None) -> list[BrokerExecution]:
    """The settlement fills of an option that ended, as a Flex statement would report them."""
    option = end.position.instrument
    spec = option.spec

    def leg(exec_leg: SettlementLeg, *, instrument: InstrumentSpec, side: str, quantity: Decimal, price: Decimal):
        return BrokerExecution(
            account_id=account.account_id,
            exec_id=settlement_exec_id(account_id=account.account_id, option_key=option.key, leg=exec_leg),
            instrument=instrument,
            side=side,
            quantity=quantity,
            price=price,
            executed_at=end.at,
            raw={"inferred": str(end.kind), "by": "position sync"},
        )

    closing_side = "SELL" if end.position.quantity > 0 else "BUY"
    legs = []
    if end.delivered_contracts:
        kind = SettlementLeg.EXERCISED if end.kind == PositionEventKind.EXERCISED else SettlementLeg.ASSIGNED
        legs.append(leg(kind, instrument=spec, side=closing_side, quantity=end.delivered_contracts, price=Decimal(0)))
    if end.expired_contracts:
        legs.append(
            leg(
                SettlementLeg.EXPIRED,
                instrument=spec,
                side=closing_side,
                quantity=end.expired_contracts,
                price=Decimal(0),
            )
        )
    if end.delivered_shares:
        stock_spec = stock.spec if stock is not None else InstrumentSpec(symbol=option.symbol, currency=option.currency)
        legs.append(
            leg(
                SettlementLeg.DELIVERY,
                instrument=stock_spec,
                side="BUY" if end.delivered_shares > 0 else "SELL",
                quantity=abs(end.delivered_shares),
                price=Decimal(option.strike),
            )
        )
    return legs
