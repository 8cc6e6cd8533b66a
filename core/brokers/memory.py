"""A broker held in memory: for benchmarks and tests that must not measure file parsing.

It also takes orders, so the live order path is tested without a gateway where the gateway is not
the point: a market order fills at once at ``fill_prices[symbol]`` (an execution is recorded, with
the order's ids), a limit order rests, ``fail_next_place`` makes the next placement raise after the
order was accepted (a lost answer), ``refuse_with`` refuses orders with a code and a text.
"""

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from core.brokers.base import (
    Bar,
    BrokerAccount,
    BrokerCashFlow,
    BrokerError,
    BrokerExecution,
    BrokerPosition,
    BrokerUnavailable,
    Fetched,
    FxDay,
    OrderAck,
    OrderRequest,
    Quote,
)


class MemoryBroker:
    name = "memory"

    def __init__(
        self,
        *,
        accounts: list[BrokerAccount],
        positions: dict[str, list[BrokerPosition]] | None = None,
        executions: dict[str, list[BrokerExecution]] | None = None,
        bars: list[Bar] | None = None,
        quotes: list[Quote] | None = None,
        fill_prices: dict[str, Decimal] | None = None,
        fx_history: list[FxDay] | None = None,
    ) -> None:
        self.account_rows = {a.account_id: a for a in accounts}
        self.position_rows = positions or {}
        self.execution_rows = executions or {}
        self.bar_rows: dict[tuple[str, str], list[Bar]] = {}
        for bar in bars or ():
            self.bar_rows.setdefault((bar.symbol, bar.bar_size), []).append(bar)
        self.quote_rows = {q.symbol: q for q in quotes or ()}
        # Account values (cash_balances, fx_rates included) travel in ``accounts``; past daily rates here.
        self.fx_rows: dict[tuple[str, str], dict[date, FxDay]] = {}
        for row in fx_history or ():
            self.fx_rows.setdefault((row.currency, row.base), {})[row.day] = row
        # What fx_history() was asked, in order: (currency, base, start, end).
        self.fx_requests: list[tuple[str, str, date, date]] = []
        # What bars() was asked, in order: (symbol, bar size, start, end). Tests read it to prove a
        # sync asks only for what is missing.
        self.bar_requests: list[tuple[str, str, datetime | None, datetime | None]] = []
        # An exception to raise instead of answering, per call name ("bars", "quote"): a test's outage.
        self.failures: dict[str, Exception] = {}
        self.fill_prices = fill_prices or {}
        self.placed: dict[int, tuple[OrderRequest, OrderAck]] = {}
        self.fail_next_place: BrokerUnavailable | None = None
        self.refuse_with: tuple[int, str] | None = None
        self._ids = itertools.count(1)

    def _known(self, account_id: str) -> None:
        if account_id not in self.account_rows:
            raise BrokerError(f"account {account_id} is not known to the broker")

    def accounts(self) -> Fetched[BrokerAccount]:
        return Fetched(items=tuple(self.account_rows.values()))

    def positions(self, account_id: str) -> Fetched[BrokerPosition]:
        self._known(account_id)
        return Fetched(items=tuple(self.position_rows.get(account_id, ())))

    def executions(self, account_id: str, since: datetime | None = None) -> Fetched[BrokerExecution]:
        self._known(account_id)
        rows = self.execution_rows.get(account_id, ())
        return Fetched(items=tuple(e for e in rows if since is None or e.executed_at >= since))

    def cash_flows(self, account_id: str) -> Fetched[BrokerCashFlow]:
        self._known(account_id)
        return Fetched(items=())

    def bars(
        self, symbol: str, bar_size: str, start: datetime | None = None, end: datetime | None = None
    ) -> Fetched[Bar]:
        self.bar_requests.append((symbol, bar_size, start, end))
        if "bars" in self.failures:
            raise self.failures["bars"]
        rows = self.bar_rows.get((symbol.upper(), bar_size), ())
        return Fetched(
            items=tuple(
                sorted(
                    (b for b in rows if (start is None or b.start >= start) and (end is None or b.start < end)),
                    key=lambda b: b.start,
                )
            )
        )

    def quote(self, symbol: str) -> Quote | None:
        if "quote" in self.failures:
            raise self.failures["quote"]
        return self.quote_rows.get(symbol.upper())

    def fx_history(self, currency: str, base: str, start: date, end: date) -> Fetched[FxDay]:
        self.fx_requests.append((currency, base, start, end))
        if "fx_history" in self.failures:
            raise self.failures["fx_history"]
        rows = self.fx_rows.get((currency.upper(), base.upper()), {})
        return Fetched(items=tuple(rows[d] for d in sorted(rows) if start <= d <= end))

    # --- orders ---------------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> OrderAck:
        self._known(request.account_id)
        if self.refuse_with is not None:
            code, message = self.refuse_with
            return OrderAck(order_id=None, status="ERROR", order_ref=request.order_ref, code=code, message=message)
        order_id = next(self._ids)
        perm_id = 900_000_000 + order_id
        ack = OrderAck(
            order_id=order_id,
            perm_id=perm_id,
            status="SUBMITTED",
            order_ref=request.order_ref,
            account_id=request.account_id,
            remaining=request.quantity,
        )
        price = self.fill_prices.get(request.instrument.symbol.upper())
        if request.order_type == "MKT" and price is not None:
            ack = replace(ack, status="FILLED", filled=request.quantity, remaining=Decimal(0), average_fill_price=price)
            self.execution_rows.setdefault(request.account_id, []).append(
                BrokerExecution(
                    account_id=request.account_id,
                    exec_id=f"MEM.{perm_id}.1",
                    instrument=request.instrument,
                    side=request.side,
                    quantity=request.quantity,
                    price=price,
                    executed_at=datetime.now(UTC),
                    commission=Decimal("1.00"),
                    order_id=order_id,
                    perm_id=perm_id,
                )
            )
        self.placed[order_id] = (request, ack)
        if self.fail_next_place is not None:
            exc, self.fail_next_place = self.fail_next_place, None
            raise exc  # the broker has the order; the answer was lost
        return ack

    def cancel_order(self, account_id: str, order_id: int) -> OrderAck:
        self._known(account_id)
        if order_id not in self.placed:
            raise BrokerError(f"order {order_id} is not known to the broker (10147)")
        request, ack = self.placed[order_id]
        if ack.status in ("FILLED", "CANCELLED"):
            raise BrokerError(f"order {order_id} is already {ack.status.lower()} (10148)")
        ack = replace(ack, status="CANCELLED")
        self.placed[order_id] = (request, ack)
        return ack

    def orders(self, account_id: str) -> Fetched[OrderAck]:
        self._known(account_id)
        return Fetched(items=tuple(ack for request, ack in self.placed.values() if request.account_id == account_id))
