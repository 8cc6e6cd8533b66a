"""Recompute what derives from the fills, from the first affected fill on, deterministically.

The pure functions in ``trading/rules/`` replay every fill of an account and instrument in one
order (``fill_order``), so a late or out-of-order fill gives exactly the result an in-order arrival
would have. Only what can have changed is rewritten: matches, round trips, realized P&L and day
trades at or after the first affected fill, the open lots, the settlement rows of changed fills,
trade frequency from that week on, and a CASH account's daily state and violations.

The replay need not start at the instrument's first fill: its state is empty whenever the position
is flat, so when new fills come after the fill that opened the stored position (the paper engine's,
a live ingest's), the replay starts there, and the day trades and trade frequency read only the
fills of the changed weeks (``_Window``). New fills that only add to the position (FIFO) replay
alone and add their own lots. ``tests/trading/test_ledger_incremental.py`` holds both paths equal.
"""

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from core.bulk import bulk_insert, bulk_update_values
from core.fields import quantize_money, quantize_price
from trading.calendars import trade_date_of
from trading.models import (
    Account,
    AccountType,
    CashAccountState,
    CashFlow,
    CashViolation,
    DayTrade,
    Execution,
    FrequencyPeriod,
    Lot,
    LotMatch,
    RoundTrip,
    SettlementStatus,
    SettlementTracking,
    Side,
    TradeFrequencyTracking,
)
from trading.rules.cash import CashFill, CashMovement, cash_account_replay
from trading.rules.daytrades import DayTradeResult, day_trades_find, trade_frequency
from trading.rules.lots import LedgerResult, lots_match
from trading.rules.types import LedgerFill, fill_order
from trading.selectors import fills_of
from trading.selectors import ledger_fill_of as _ledger_fill
from trading.services.ledger_changes import ledger_changes_mark

# The columns of a round trip as the ledger writes them (tuples in this order).
ROUND_TRIP_COLUMNS = (
    "account_id",
    "instrument_id",
    "direction",
    "opened_at",
    "closed_at",
    "quantity",
    "average_entry",
    "average_exit",
    "realized_pnl",
    "commissions",
    "outcome",
    "holding_seconds",
    "opening_execution_id",
    "closing_execution_id",
)


class UnwrittenFills(Protocol):
    """New fills not stored yet (``trading.services.executions.UnwrittenFills``): their ids are reserved."""

    fills: list[dict]  # shaped like the rows of ``fills_of``

    def write(self, realized_pnl: Mapping[int, Decimal]) -> None: ...


def settlement_amount(
    *, side: str, quantity: Decimal, price: Decimal, multiplier: Decimal, commission: Decimal | None
) -> Decimal:
    """Signed cash of a fill: a purchase costs price x quantity plus commission, a sale brings it less."""
    gross = quantity * price * multiplier
    fee = commission or Decimal(0)
    return quantize_money(-(gross + fee) if side == Side.BUY else gross - fee)


def ledger_recompute(
    *,
    account: Account,
    affected: dict[int, datetime],
    cash_changed: bool = False,
    today: date | None = None,
    unwritten: UnwrittenFills | None = None,
) -> None:
    """Bring the derived ledger of ``account`` up to date after fills changed (inside a transaction).

    ``unwritten`` are new fills not stored yet (``executions_upsert(write_new=False)``): they join the
    stored ones in the replay and are written here with their realized P&L, before what refers to them.
    """
    if not affected and not cash_changed:
        return
    today = today or trade_date_of(timezone.now())
    new = unwritten.fills if unwritten is not None else []
    method = settings.LOT_MATCHING
    windows = _windows_plan(account=account, affected=affected, new=new) if new else {}
    if new and method == "fifo" and _adds_only(account=account, affected=affected, new=new, windows=windows):
        _adds_apply(account=account, affected=affected, new=new, windows=windows, unwritten=unwritten, today=today)
        return
    stored = _fills_load(account=account, affected=affected, windows=windows)
    rows = sorted([*stored, *new], key=_row_order) if new else stored
    by_instrument: dict[int, list[LedgerFill]] = defaultdict(list)
    for row in rows:
        by_instrument[row["instrument_id"]].append(_ledger_fill(row))
    results: dict[int, LedgerResult] = {}
    carries: dict[int, Decimal] = {}
    opened_only: set[int] = set()
    for instrument_id in affected:
        fills = by_instrument.get(instrument_id, [])
        window = windows.get(instrument_id)
        if window is None:  # the whole history was read: replay it from its first fill
            results[instrument_id] = lots_match(fills, method=method)
            continue
        replay, carries[instrument_id], only_opens = window.split(fills, method=method)
        results[instrument_id] = lots_match(replay, method=method)
        if only_opens:
            opened_only.add(instrument_id)
            if window.opening_id is not None:  # the new lots belong to the position already open
                results[instrument_id] = replace(results[instrument_id], position_opening_fill_id=window.opening_id)
    realized: dict[int, Decimal] = {}
    for result in results.values():
        realized.update(result.realized_by_fill)
    if unwritten is not None:
        unwritten.write(realized)
    # Realized P&L on each stored fill at or after the first change; opening-only fills carry none.
    bulk_update_values(
        Execution,
        ("realized_pnl",),
        [
            (row["id"], realized.get(row["id"]))
            for row in stored
            if row["executed_at"] >= affected[row["instrument_id"]] and row["realized_pnl"] != realized.get(row["id"])
        ],
    )
    # Appended fills: new ones at the end of their instruments' history, nothing stored at or after
    # them. Then no stored match, round trip or settlement row can be at or after ``since``, and their
    # deletes are skipped (everything else is the full path).
    appended = _appended_only(affected=affected, stored=stored, new=new)
    for instrument_id, since in affected.items():
        if instrument_id in opened_only:
            _lots_add(account, instrument_id, results[instrument_id])
            continue
        _instrument_refresh(
            account,
            instrument_id,
            by_instrument.get(instrument_id, []),
            results[instrument_id],
            since,
            appended=instrument_id in appended,
            carry=carries.get(instrument_id, Decimal(0)),
        )
    if affected:
        earliest = min(affected.values())
        changed = [r for r in rows if r["executed_at"] >= earliest]
        new_ids = {r["id"] for r in new}
        # Only when every affected instrument's change is appended fills and no stored fill of another
        # one is at or after the earliest of them: then the rows are all new, with nothing to replace.
        only_new = appended.issuperset(affected) and all(r["id"] in new_ids for r in changed)
        _settlements_refresh(account, changed, today, appended=only_new)
        loaded = [fill for instrument_id in affected for fill in by_instrument.get(instrument_id, [])]
        _frequency_refresh(
            account,
            trade_date_of(earliest),
            loaded=loaded,
            loaded_instruments=set(affected),
            added_only=opened_only.issuperset(affected),
        )
    if account.account_type == AccountType.CASH:
        cash_state_recompute(account=account, today=today)
    # Last, so the marks are locked only for the moment before the commit: the layers above (the
    # positions) rebuild these instruments from these times on.
    ledger_changes_mark(account=account, affected=affected)


@dataclass(frozen=True)
class _Window:
    """Where one instrument's replay may start instead of at its first fill: a point where it was flat.

    The replay state (open lots, the average-cost pool, the round trip) is empty whenever the position
    is flat, so a replay from the fill that opened the stored position (or, when flat, from the new
    fills) gives what a replay of the whole history gives from there on. The window read also holds
    every fill of the instrument from ``week_start`` on: the day trades of the changed dates and the
    trade frequency of their weeks need them, with the position carried into the window (``carry``).
    """

    since: datetime  # the instrument's mark: the earliest changed fill
    week_start: date
    opening_id: int | None  # the stored position's opening fill; None: flat after every stored fill
    opening_at: datetime | None
    held: Decimal  # the stored position (its lots' sum)
    new_ids: frozenset[int]

    def split(self, fills: list[LedgerFill], *, method: str) -> tuple[list[LedgerFill], Decimal, bool]:
        """``(fills to replay, position before the first of fills, only opens)`` from the window's fills
        (in ``fill_order``). "Only opens": nothing stored changed and every new fill adds to the position
        (or opens it from flat) under FIFO; then the new fills alone are replayed, into lots of their own."""
        new = [f for f in fills if f.id in self.new_ids]
        if self.opening_id is None:
            replay, before = new, [f for f in fills if f.id not in self.new_ids]
        else:
            start = fill_order(next(f for f in fills if f.id == self.opening_id))
            replay = [f for f in fills if fill_order(f) >= start]
            before = [f for f in fills if fill_order(f) < start]
        carry = -sum((f.signed_quantity for f in before), Decimal(0))
        side = ("BUY" if self.held > 0 else "SELL") if self.held else (new[0].side if new else None)
        only_opens = (
            method == "fifo"
            and bool(new)
            and min(f.executed_at for f in new) == self.since
            and all(f.id in self.new_ids or f.executed_at < self.since for f in fills)
            and all(f.side == side for f in new)
        )
        return (new if only_opens else replay), carry, only_opens


def _windows_plan(*, account: Account, affected: dict[int, datetime], new: list[dict]) -> dict[int, _Window]:
    """The instruments whose replay may start at a flat point (one query: their lots' state).

    Not those whose stored lots do not name one opening fill, nor those changed at or before the
    fill that opened their position (the point may no longer be flat): they are replayed in full.
    """
    if not affected:
        return {}
    week_start = trade_date_of(min(affected.values()))
    week_start -= timedelta(days=week_start.weekday())
    state = {
        row["instrument_id"]: row
        for row in Lot.objects.filter(account=account, instrument_id__in=list(affected))
        .values("instrument_id")
        .annotate(
            held=Sum("quantity"),
            lots=Count("id"),
            named=Count("position_opening_execution_id"),
            openings=Count("position_opening_execution_id", distinct=True),
            opening_id=Max("position_opening_execution_id"),
            opening_at=Max("position_opening_execution__executed_at"),
        )
        .order_by()
    }
    new_ids = frozenset(row["id"] for row in new)
    windows = {}
    for instrument_id, since in affected.items():
        lots = state.get(instrument_id)
        if lots is None:
            windows[instrument_id] = _Window(since, week_start, None, None, Decimal(0), new_ids)
        elif lots["held"] and lots["named"] == lots["lots"] and lots["openings"] == 1 and since > lots["opening_at"]:
            windows[instrument_id] = _Window(
                since, week_start, lots["opening_id"], lots["opening_at"], lots["held"], new_ids
            )
    return windows


# The add-only path is for an order's few fills: a big ingest takes the windowed replay (its look for
# stored fills names each new fill's order, and SQLite bounds an expression's depth).
ADDS_ONLY_MAX_FILLS = 100


def _adds_only(*, account: Account, affected: dict[int, datetime], new: list[dict], windows: dict) -> bool:
    """Whether the change is new fills that only open or add to their positions, after every stored fill
    of their instruments, in orders not counted yet on their dates: then nothing stored needs replaying.

    Each affected instrument has a window (its position flat, or opened by one named fill before the
    change) and is changed only by new fills, the first of them at its mark, all on the position's side.
    One query confirms what the stored fills must not contain: one of the instrument at or after its
    mark, an opening fill that crossed zero (it closed something: no flat point before it), a fill of
    one of the new fills' orders on the same trade date (the trade is counted already).
    """
    if len(new) > ADDS_ONLY_MAX_FILLS or not windows.keys() >= affected.keys():
        return False
    by_instrument: dict[int, list[dict]] = defaultdict(list)
    for row in new:
        by_instrument[row["instrument_id"]].append(row)
    if not affected.keys() >= by_instrument.keys():
        return False
    ops = connection.ops
    found, params = [], [account.pk]
    for instrument_id, since in affected.items():
        rows = by_instrument.get(instrument_id)
        if not rows or min(r["executed_at"] for r in rows) != since:
            return False  # a stored fill changed (or went): its replay is needed
        held = windows[instrument_id].held
        side = ("BUY" if held > 0 else "SELL") if held else rows[0]["side"]
        if any(r["side"] != side for r in rows):
            return False
        found.append("(instrument_id = %s AND executed_at >= %s)")
        params += [instrument_id, ops.adapt_datetimefield_value(since)]
    openings = [w.opening_id for w in windows.values() if w.opening_id is not None]
    if openings:
        found.append(f"(id IN ({', '.join(['%s'] * len(openings))}) AND realized_pnl IS NOT NULL)")
        params += openings
    for trade_date, ref in {(row["trade_date"], row["perm_id"] or row["order_id"]) for row in new}:
        if ref:  # a fill's order is its perm id, or its order id when it has none (ledger_fill_of)
            found.append("(trade_date = %s AND (perm_id = %s OR (COALESCE(perm_id, 0) = 0 AND order_id = %s)))")
            params += [ops.adapt_datefield_value(trade_date), ref, ref]
    # Written out: the ORM spent longer building this from a Q per fill than the database answering it.
    sql = (
        f"SELECT 1 FROM {ops.quote_name(Execution._meta.db_table)} "  # noqa: S608 (the model's table; values are parameters)
        f"WHERE account_id = %s AND ({' OR '.join(found)}) LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is None


def _adds_apply(
    *,
    account: Account,
    affected: dict[int, datetime],
    new: list[dict],
    windows: dict,
    unwritten: UnwrittenFills,
    today: date,
) -> None:
    """The ledger after fills that only open or add (``_adds_only``): the new fills, written with no
    realized P&L, get lots of their own (the position's opening fill named), settlement rows, and one
    trade each of their orders added to the counts of their day and week. No match, round trip or day
    trade can come of them, and no stored row changes."""
    unwritten.write({})
    rows = sorted(new, key=_row_order)
    for instrument_id in affected:
        result = lots_match([_ledger_fill(r) for r in rows if r["instrument_id"] == instrument_id], method="fifo")
        opening_id = windows[instrument_id].opening_id
        if opening_id is not None:
            result = replace(result, position_opening_fill_id=opening_id)
        _lots_add(account, instrument_id, result)
    _settlements_refresh(account, rows, today, appended=True)
    _trades_add(account, [_ledger_fill(r) for r in rows])
    if account.account_type == AccountType.CASH:
        cash_state_recompute(account=account, today=today)
    ledger_changes_mark(account=account, affected=affected)


def _trades_add(account: Account, fills: list[LedgerFill]) -> None:
    """Add the trades of ``fills`` (none of their orders counted on their dates yet) to the stored counts
    of their days and weeks, in place: a missing row is inserted with no day trades."""
    added = [(row.period, row.period_start, row.trades) for row in trade_frequency(fills, []) if row.trades]
    if not added:
        return
    table = connection.ops.quote_name(TradeFrequencyTracking._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s, 0)"] * len(added))
    # The model's table name; every value is a parameter. ON CONFLICT ... DO UPDATE: PostgreSQL and SQLite.
    sql = (
        f"INSERT INTO {table} (account_id, period, period_start, trades, day_trades) VALUES {values} "  # noqa: S608
        f"ON CONFLICT (account_id, period, period_start) DO UPDATE SET trades = {table}.trades + EXCLUDED.trades"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [value for period, start, trades in added for value in (account.pk, period, start, trades)],
        )


def _fills_load(*, account: Account, affected: dict[int, datetime], windows: dict[int, _Window]) -> list[dict]:
    """The stored fills the replays need, in one query: each windowed instrument's window, every fill of
    the others. A window that turns out not to start at a flat point (a flat instrument with a stored
    fill at or after its mark; an opening fill not found, or one that crossed zero) is dropped and its
    instrument read in full (one more query)."""
    if not affected:
        return []
    condition = Q(instrument_id__in=[i for i in affected if i not in windows]) if len(windows) < len(affected) else Q()
    for instrument_id, window in windows.items():
        part = Q(trade_date__gte=window.week_start)
        if window.opening_at is not None:
            part |= Q(executed_at__gte=window.opening_at)
        condition |= Q(instrument_id=instrument_id) & part
    rows = fills_of(account=account, where=condition)
    # The opening fill must have opened all its quantity: one that closed a position and opened the
    # rest on the other side (it has realized P&L) is not preceded by a flat point.
    opened_all = {row["id"] for row in rows if row["realized_pnl"] is None}
    late = {
        instrument_id
        for instrument_id, window in windows.items()
        if (window.opening_id is not None and window.opening_id not in opened_all)
        or (
            window.opening_id is None
            and any(r["instrument_id"] == instrument_id and r["executed_at"] >= window.since for r in rows)
        )
    }
    if late:
        for instrument_id in late:
            del windows[instrument_id]
        rows = sorted(
            [*(r for r in rows if r["instrument_id"] not in late), *fills_of(account=account, instrument_ids=late)],
            key=_row_order,
        )
    return rows


def _with_carry(fills: list[LedgerFill], carry: Decimal) -> list[LedgerFill]:
    """``fills`` after a stand-in fill that holds ``carry`` before them (dated before any of them, so it
    opens nothing on their dates): the day-trade replay takes a position before its first fill as flat."""
    if not carry or not fills:
        return fills
    first = fills[0]
    stand_in = LedgerFill(
        id=-1,
        exec_id="",
        instrument_id=first.instrument_id,
        executed_at=datetime.min.replace(tzinfo=UTC),
        trade_date=date.min,
        side="BUY" if carry > 0 else "SELL",
        quantity=abs(carry),
        price=Decimal(0),
        multiplier=first.multiplier,
    )
    return [stand_in, *fills]


def _appended_only(*, affected: dict[int, datetime], stored: list[dict], new: list[dict]) -> set[int]:
    """The affected instruments whose change is only new fills after every stored fill of theirs.

    ``since`` must be the first new fill's time (what ``executions_upsert`` marks): an instrument
    whose mark is earlier (a changed or removed stored fill) is not one of them.
    """
    if not new:
        return set()
    first_new: dict[int, datetime] = {}
    for row in new:
        at = first_new.get(row["instrument_id"])
        if at is None or row["executed_at"] < at:
            first_new[row["instrument_id"]] = row["executed_at"]
    last_stored: dict[int, datetime] = {}
    for row in stored:
        at = last_stored.get(row["instrument_id"])
        if at is None or row["executed_at"] > at:
            last_stored[row["instrument_id"]] = row["executed_at"]
    return {
        instrument_id
        for instrument_id, since in affected.items()
        if first_new.get(instrument_id) == since
        and (instrument_id not in last_stored or last_stored[instrument_id] < since)
    }


def _row_order(row: dict) -> tuple:
    """``fills_of``'s order (the ledger's ``fill_order``), for stored and unwritten fills together."""
    return (row["executed_at"], row["exec_id"], row["id"])


def _instrument_refresh(
    account: Account,
    instrument_id: int,
    fills: list[LedgerFill],
    result: LedgerResult,
    since: datetime,
    *,
    appended: bool = False,
    carry: Decimal = Decimal(0),
) -> None:
    """Rewrite one instrument's lots, and its matches, round trips and day trades from ``since`` on.

    ``appended``: only new fills after every stored one changed, so there is no stored match or round
    trip to delete from ``since`` on (their closing fills are all earlier); only inserts.
    ``carry``: the position held before the first of ``fills`` (a window, not the whole history).
    """
    executed_at = {f.id: f.executed_at for f in fills}
    pair = {"account": account, "instrument_id": instrument_id}
    ids = (account.pk, instrument_id)
    # Nothing closed from ``since`` on (fills that only open or add): the stored lots are kept and the
    # new ones added. Otherwise they are replaced at once (as many statements as the comparison).
    closed = any(executed_at[m.closing_fill_id] >= since for m in result.matches)
    _lots_write(account, instrument_id, result, compare=not closed)
    if not appended:
        LotMatch.objects.filter(**pair, closing_execution__executed_at__gte=since).delete()
    method = settings.LOT_MATCHING
    bulk_insert(
        LotMatch,
        (
            "account_id",
            "instrument_id",
            "opening_execution_id",
            "closing_execution_id",
            "quantity",
            "entry_price",
            "exit_price",
            "realized_pnl",
            "method",
        ),
        [
            (
                *ids,
                m.opening_fill_id,
                m.closing_fill_id,
                m.quantity,
                quantize_price(m.entry_price),
                quantize_price(m.exit_price),
                m.realized_pnl,
                method,
            )
            for m in result.matches
            if executed_at[m.closing_fill_id] >= since
        ],
    )
    if not appended:
        RoundTrip.objects.filter(**pair, closed_at__gte=since).delete()
    bulk_insert(
        RoundTrip,
        ROUND_TRIP_COLUMNS,
        [
            (
                *ids,
                t.direction,
                t.opened_at,
                t.closed_at,
                t.quantity,
                quantize_price(t.average_entry),
                quantize_price(t.average_exit),
                t.realized_pnl,
                t.commissions,
                t.outcome,
                t.holding_seconds,
                t.opening_fill_id,
                t.closing_fill_id,
            )
            for t in result.round_trips
            if t.closed_at >= since
        ],
    )

    since_date = trade_date_of(since)
    DayTrade.objects.filter(**pair, trade_date__gte=since_date).delete()
    counting = settings.DAY_TRADE_COUNTING
    bulk_insert(
        DayTrade,
        (
            "account_id",
            "instrument_id",
            "trade_date",
            "quantity",
            "opening_execution_id",
            "closing_execution_id",
            "counting",
        ),
        [
            (*ids, d.trade_date, d.quantity, d.opening_fill_id, d.closing_fill_id, counting)
            for d in day_trades_find(_with_carry(fills, carry), counting=counting)
            if d.trade_date >= since_date
        ],
    )


LOT_COLUMNS = (
    "opening_execution_id",
    "opened_at",
    "original_quantity",
    "quantity",
    "cost_price",
    "position_opening_execution_id",
)


def _lot_rows(result: LedgerResult) -> list[tuple]:
    """``result``'s open lots as rows in ``LOT_COLUMNS`` order."""
    return [
        (
            lot.opening_fill_id,
            lot.opened_at,
            lot.original_quantity,
            lot.quantity,
            quantize_price(lot.cost_price),
            result.position_opening_fill_id,
        )
        for lot in result.open_lots
    ]


def _lots_add(account: Account, instrument_id: int, result: LedgerResult) -> None:
    """New fills that only opened or added (FIFO): their own lots join the stored ones, which they leave
    as they were; no match, round trip or day trade can come of them."""
    rows = [(account.pk, instrument_id, *row) for row in _lot_rows(result)]
    bulk_insert(Lot, ("account_id", "instrument_id", *LOT_COLUMNS), rows)


def _lots_write(account: Account, instrument_id: int, result: LedgerResult, *, compare: bool) -> None:
    """Make the stored open lots of the instrument equal ``result.open_lots``.

    ``compare``: the stored lots are read and compared, and only the difference is written, so a fill
    that adds a lot to a position built from hundreds of fills does not rewrite them all. A stored lot
    differing in any column is deleted and inserted anew. Otherwise all are deleted and inserted.
    """
    wanted = _lot_rows(result)
    columns = ("account_id", "instrument_id", *LOT_COLUMNS)
    if not compare:
        Lot.objects.filter(account=account, instrument_id=instrument_id).delete()
        bulk_insert(Lot, columns, [(account.pk, instrument_id, *row) for row in wanted])
        return
    unmatched: dict[tuple, list[int]] = defaultdict(list)
    for pk, *values in (
        Lot.objects.filter(account=account, instrument_id=instrument_id).order_by().values_list("pk", *LOT_COLUMNS)
    ):
        unmatched[tuple(values)].append(pk)
    to_insert = []
    for row in wanted:
        kept = unmatched.get(row)
        if kept:
            kept.pop()  # stored exactly so: left alone
        else:
            to_insert.append(row)
    stale = [pk for pks in unmatched.values() for pk in pks]
    if stale:
        Lot.objects.filter(pk__in=stale).delete()
    bulk_insert(
        Lot, ("account_id", "instrument_id", *LOT_COLUMNS), [(account.pk, instrument_id, *row) for row in to_insert]
    )


def _settlements_refresh(account: Account, rows: list[dict], today: date, *, appended: bool = False) -> None:
    """One settlement row per fill at or after the first change: replaced, not patched.

    ``appended``: the rows are only new fills (nothing stored at or after them): nothing to delete.
    """
    if not rows:
        return
    if not appended:
        SettlementTracking.objects.filter(account=account, execution__executed_at__gte=rows[0]["executed_at"]).filter(
            execution__instrument_id__in={r["instrument_id"] for r in rows}
        ).delete()
    bulk_insert(
        SettlementTracking,
        ("execution_id", "account_id", "trade_date", "settlement_date", "amount", "status", "from_broker"),
        [
            (
                r["id"],
                account.pk,
                r["trade_date"],
                r["settlement_date"],
                settlement_amount(
                    side=r["side"],
                    quantity=r["quantity"],
                    price=r["price"],
                    multiplier=r["instrument__multiplier"],
                    commission=r["commission"],
                ),
                SettlementStatus.SETTLED if r["settlement_date"] <= today else SettlementStatus.PENDING,
                r["broker_settlement_date"] is not None,
            )
            for r in rows
        ],
    )


def _frequency_refresh(
    account: Account,
    from_date: date,
    *,
    loaded: list[LedgerFill],
    loaded_instruments: set[int],
    added_only: bool = False,
) -> None:
    """Trades and day trades per day from ``from_date`` and per week from its Monday, recounted.

    ``added_only``: the change is new fills that only opened or added (no day trade came or went);
    when they are all the fills since that Monday, the trades are recounted from them and written over
    the stored counts (an upsert), the day-trade counts left as they are.
    """
    week_start = from_date - timedelta(days=from_date.weekday())
    others = Execution.objects.filter(account=account, trade_date__gte=week_start).exclude(
        instrument_id__in=loaded_instruments
    )
    if others.exists():
        fills = [_ledger_fill(r) for r in fills_of(account=account, trade_date_from=week_start)]
    else:  # every instrument traded since then was just loaded: no second read of the fills
        fills = [f for f in loaded if f.trade_date >= week_start]
        if added_only:
            TradeFrequencyTracking.objects.bulk_create(
                [
                    TradeFrequencyTracking(
                        account=account, period=row.period, period_start=row.period_start, trades=row.trades
                    )
                    for row in trade_frequency(fills, [])
                    if row.period_start >= (from_date if row.period == FrequencyPeriod.DAY else week_start)
                ],
                update_conflicts=True,
                unique_fields=["account", "period", "period_start"],
                update_fields=["trades"],
            )
            return
    day_trades = [
        DayTradeResult(
            instrument_id=instrument_id,
            trade_date=trade_date,
            quantity=quantity,
            opening_fill_id=opening_id,
            closing_fill_id=closing_id,
        )
        for instrument_id, trade_date, quantity, opening_id, closing_id in DayTrade.objects.filter(
            account=account, trade_date__gte=week_start
        ).values_list("instrument_id", "trade_date", "quantity", "opening_execution_id", "closing_execution_id")
    ]
    TradeFrequencyTracking.objects.filter(account=account).filter(
        Q(period=FrequencyPeriod.DAY, period_start__gte=from_date)
        | Q(period=FrequencyPeriod.WEEK, period_start__gte=week_start)
    ).delete()
    TradeFrequencyTracking.objects.bulk_create(
        [
            TradeFrequencyTracking(
                account=account,
                period=row.period,
                period_start=row.period_start,
                trades=row.trades,
                day_trades=row.day_trades,
            )
            for row in trade_frequency(fills, day_trades)
            if row.period_start >= (from_date if row.period == FrequencyPeriod.DAY else week_start)
        ],
        batch_size=2000,
    )


def cash_fills_of(rows: list[dict]) -> list[CashFill]:
    """``fills_of`` rows as the cash-account replay takes them: each fill with its settlement date and the
    cash it moves then."""
    return [
        CashFill(
            fill=_ledger_fill(r),
            settlement_date=r["settlement_date"],
            amount=settlement_amount(
                side=r["side"],
                quantity=r["quantity"],
                price=r["price"],
                multiplier=r["instrument__multiplier"],
                commission=r["commission"],
            ),
        )
        for r in rows
    ]


def cash_state_recompute(*, account: Account, today: date) -> None:
    """Replay a CASH account from its first activity: settled and unsettled cash per day, violations."""
    rows = fills_of(account=account)
    flows = list(CashFlow.objects.filter(account=account).values_list("at", "kind", "amount"))
    if not rows and not flows:
        return
    cash_fills = cash_fills_of(rows)
    movements = [CashMovement(at=at, amount=amount if kind == "DEPOSIT" else -amount) for at, kind, amount in flows]
    first = min([r["trade_date"] for r in rows] + [trade_date_of(at) for at, _, _ in flows])
    replay = cash_account_replay(fills=cash_fills, movements=movements, start=first, end=today)
    CashAccountState.objects.filter(account=account).delete()
    CashAccountState.objects.bulk_create(
        [
            CashAccountState(
                account=account,
                date=d.date,
                settled_cash=quantize_money(d.settled_cash),
                unsettled_cash=quantize_money(d.unsettled_cash),
                violations_12m=d.violations_12m,
            )
            for d in replay.days
        ],
        batch_size=2000,
    )
    CashViolation.objects.filter(account=account).delete()
    CashViolation.objects.bulk_create(
        [
            CashViolation(
                account=account,
                kind=v.kind,
                trade_date=v.trade_date,
                buy_execution_id=v.buy_fill_id,
                sell_execution_id=v.sell_fill_id,
                amount=quantize_money(v.amount),
                detail=v.detail[:255],
            )
            for v in replay.violations
        ]
    )


def settlements_mark_settled(*, today: date | None = None) -> int:
    """Move every pending settlement whose date has come to SETTLED; returns how many moved."""
    today = today or trade_date_of(timezone.now())
    return SettlementTracking.objects.filter(status=SettlementStatus.PENDING, settlement_date__lte=today).update(
        status=SettlementStatus.SETTLED
    )
