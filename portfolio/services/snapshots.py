"""Account snapshots: the account's value and open positions at a moment, hourly and at every NYSE close.

The rules (issue "Account snapshots"):
1. the broker's account values and positions make a BROKER snapshot, with a ``PositionSnapshot``
   row per non-zero position (the position history);
2. when the broker is unreachable or the request fails, the snapshot is COMPUTED from what the
   database last knew: open ``Position`` rows with their last prices and ``AccountStatus`` cash;
   the note says why, and the run is still a SUCCESS with a warning;
3. a snapshot is identified by (account, taken_at), truncated to the second: taking it again
   updates it and replaces its position rows, never a duplicate. A CLOSE mark is never lost to an
   hourly or manual snapshot that lands on the same second;
4. the daily CLOSE snapshot is stamped at the session's close (early closes included), once per
   account and trade date;
5. every snapshot of an account is a ``SyncRun`` (kind SNAPSHOTS) and one transaction; another run
   of the same account SKIPS it. The number of queries does not depend on the number of positions.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from core.brokers import Broker, BrokerError, BrokerUnavailable
from core.brokers.base import BrokerAccount, BrokerPosition
from core.brokers.contracts import SecType
from core.fields import quantize_money, quantize_price, quantize_quantity
from core.journal import broker_skip, sync_run_fail, sync_run_finish, sync_run_isolated, sync_run_start
from core.models import SkipReason, SyncKind, SyncReason, SyncStatus
from marketdata.fx import FxTable, Total
from marketdata.models import Instrument
from marketdata.services import instruments_resolve
from portfolio.models import (
    ACCOUNT_VALUE_FIELDS,
    CASH_FIELDS,
    AccountSnapshot,
    AccountStatus,
    Position,
    PositionGreeks,
    PositionSnapshot,
    PositionStatus,
    SnapshotKind,
    SnapshotSource,
)
from portfolio.services.account_values import (
    account_cash_fields,
    account_value_fields,
    broker_rates_store,
    cash_fields,
)
from trading.calendars import is_nyse_session, session_close, trade_date_of
from trading.models import Account
from trading.selectors import paper_values_get

logger = logging.getLogger(__name__)

OPTION_SEC_TYPES = {SecType.OPTION, SecType.FUTURE_OPTION}
SNAPSHOT_GREEKS = ("delta", "gamma", "theta", "vega", "iv", "underlying_price")
NOTE_LENGTH = AccountSnapshot._meta.get_field("note").max_length
VALUE_FIELDS = [*ACCOUNT_VALUE_FIELDS, *CASH_FIELDS, "positions_value", "positions_count"]
# What a retake of the same (account, taken_at) overwrites; ``kind`` only when the retake is a CLOSE.
UPSERT_FIELDS = ["trade_date", "source", "note", *VALUE_FIELDS]


@dataclass
class _Taken:
    """One account's snapshot before it is written."""

    snapshot: AccountSnapshot
    positions: list[PositionSnapshot] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # What the positions add to the account's equity, when computed: market values, but a future's
    # P&L since its last settlement or entry (its notional is not equity). None: the positions value.
    equity_value: Decimal | None = None
    # The option instruments among the positions: their rows carry the positions' current Greeks.
    options: set[int] = field(default_factory=set)
    # Each position's currency by instrument: its market value converts to base at the current rate.
    currencies: dict[int, str] = field(default_factory=dict)
    # COMPUTED: a position's currency without a known rate, so the account's value is unknown.
    fx_missing: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _BrokerAnswer:
    """What the broker said for one account: its values and positions, or why it could not say."""

    account: BrokerAccount | None = None
    positions: tuple[BrokerPosition, ...] = ()
    warnings: tuple[str, ...] = ()
    failure: str = ""  # "broker unreachable: ..." or "broker request failed: ..."


# The broker's accounts by id with the warnings of that read, or why they could not be read.
_Accounts = tuple[dict[str, BrokerAccount], tuple[str, ...]] | str


def _accounts_by_id(broker: Broker) -> _Accounts:
    """The broker's accounts by id with the read's warnings, or the failure message."""
    try:
        fetched = broker.accounts()
    except (BrokerUnavailable, BrokerError) as exc:
        return broker_skip(exc)[1]
    return {a.account_id: a for a in fetched.items}, fetched.warnings


def _ask_broker(broker: Broker, account: Account, accounts: _Accounts) -> _BrokerAnswer:
    if isinstance(accounts, str):
        return _BrokerAnswer(failure=accounts)
    by_id, account_warnings = accounts
    broker_account = by_id.get(account.account_id)
    if broker_account is None:
        return _BrokerAnswer(failure=f"broker request failed: account {account.account_id} is not in its account list")
    try:
        fetched = broker.positions(account.account_id)
    except (BrokerUnavailable, BrokerError) as exc:
        return _BrokerAnswer(failure=broker_skip(exc)[1])
    return _BrokerAnswer(
        account=broker_account, positions=fetched.items, warnings=(*account_warnings, *fetched.warnings)
    )


def snapshot_time(at: datetime | None = None) -> datetime:
    """The stamp of a snapshot: ``at`` (aware) or now, in UTC, truncated to the second."""
    if at is None:
        at = timezone.now()
    elif at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a snapshot time must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC).replace(microsecond=0)


# --- the two sources ---------------------------------------------------------------------------
def _from_broker(account: Account, taken_at: datetime, answer: _BrokerAnswer) -> _Taken:
    values = answer.account.values
    taken = _Taken(
        snapshot=AccountSnapshot(
            account=account,
            taken_at=taken_at,
            source=SnapshotSource.BROKER,
            **account_value_fields(values),
            **account_cash_fields(values),
        ),
        warnings=list(answer.warnings),
    )
    if values.net_liquidation is None:
        taken.warnings.append("the broker sent no NetLiquidation: net liquidation left empty")
    rows = [row for row in answer.positions if row.quantity != 0]  # zero rows: closed today
    instruments = instruments_resolve(specs=[row.instrument for row in rows])
    seen: set[int] = set()
    unpriced = []
    for row in rows:
        instrument = instruments[row.instrument.key]
        if instrument.pk in seen:
            taken.warnings.append(f"{instrument}: reported twice by the broker; second row ignored")
            continue
        seen.add(instrument.pk)
        taken.currencies[instrument.pk] = instrument.currency
        if instrument.sec_type in OPTION_SEC_TYPES:
            taken.options.add(instrument.pk)
        quantity, average = quantize_quantity(row.quantity), quantize_price(row.average_price)
        price = quantize_price(row.market_price)
        market_value = unrealized = None
        if price is None:
            unpriced.append(str(instrument))
        else:
            multiplier = instrument.multiplier or Decimal(1)
            market_value = quantize_money(quantity * price * multiplier)
            unrealized = quantize_money((price - average) * quantity * multiplier)
        taken.positions.append(
            PositionSnapshot(
                instrument=instrument,
                quantity=quantity,
                average_price=average,
                price=price,
                market_value=market_value,
                unrealized_pnl=unrealized,
            )
        )
    if unpriced:
        taken.warnings.append(f"no market price from the broker for {', '.join(unpriced)}: not in positions value")
    return taken


def _from_database(account: Account, taken_at: datetime, failure: str) -> _Taken | None:
    """The snapshot the last known positions, prices and cash give; None when nothing is known."""
    positions = list(
        Position.objects.filter(account=account, status=PositionStatus.OPEN)
        .exclude(quantity=0)
        .order_by("instrument_id")
        .values_list(
            "instrument_id",
            "quantity",
            "average_price",
            "current_price",
            "market_value",
            "unrealized_pnl",
            "instrument__sec_type",
            "instrument__multiplier",
            "opened_at",
            "last_synced_at",
            "instrument__currency",
        )
    )
    status = AccountStatus.objects.filter(account=account).first()
    if status is None and not positions:
        return None
    snapshot_rows = [
        PositionSnapshot(
            instrument_id=instrument_id,
            quantity=quantity,
            average_price=average,
            price=price,
            market_value=market_value,
            unrealized_pnl=unrealized,
        )
        for instrument_id, quantity, average, price, market_value, unrealized, *_ in positions
    ]
    last_sync = max((row[9] for row in positions if row[9] is not None), default=None)
    priced = [p for p in snapshot_rows if p.market_value is not None]
    cash = status.total_cash if status is not None else None
    base = status.currency if status else account.base_currency
    currencies = {row[0]: row[10] for row in positions}
    # The positions' values in base at the current rate (domain rules): one query, none in the base alone.
    table = FxTable.load(base=base, currencies=set(currencies.values()))
    equity = _positions_equity(account, positions, cash_read_at=status.read_at if status else None, table=table)
    unrealized = table.total((p.unrealized_pnl, currencies[p.instrument_id], None) for p in priced)
    known = [f"positions last synced {last_sync:%Y-%m-%d %H:%M} UTC" if last_sync else "no positions ever synced"]
    known.append(f"cash read {status.read_at:%Y-%m-%d %H:%M} UTC" if status else "no cash value known")
    taken = _Taken(
        snapshot=AccountSnapshot(
            account=account,
            taken_at=taken_at,
            source=SnapshotSource.COMPUTED,
            currency=base,
            total_cash=cash,
            settled_cash=status.settled_cash if status else None,
            # The cash per currency last read, its total at the latest stored rates.
            **cash_fields(
                balances={c: Decimal(a) for c, a in (status.cash_balances or {}).items()} if status else None,
                base=status.currency if status else account.base_currency,
            ),
            # Margin figures are the broker's own computation: unknown while it is away, so left empty.
            unrealized_pnl=quantize_money(unrealized.amount),
            note=f"{failure}; computed from {', '.join(known)}"[:NOTE_LENGTH],
        ),
        positions=snapshot_rows,
        warnings=[f"{failure}; snapshot computed from the last known positions, prices and cash"],
        equity_value=equity.amount,
        options={row[0] for row in positions if row[6] in OPTION_SEC_TYPES},
        currencies=currencies,
        fx_missing=equity.missing | unrealized.missing,
    )
    unpriced = len(snapshot_rows) - len(priced)
    if unpriced:
        taken.warnings.append(f"{unpriced} open position(s) have no known price: not in positions value")
    if cash is None:
        taken.warnings.append("no cash value known: net liquidation left empty")
    if taken.fx_missing:
        missing = ", ".join(sorted(taken.fx_missing))
        taken.warnings.append(
            f"no exchange rate to {base} known for {missing}: positions value, unrealized P&L and net liquidation "
            "left empty"
        )
        taken.snapshot.note = f"{taken.snapshot.note}; no {missing} rate: value unknown"[:NOTE_LENGTH]
    return taken


def _from_paper(account: Account, taken_at: datetime) -> _Taken:
    """A PAPER account's value: its own cash flows and fills, its open lots at the stored quotes."""
    values = paper_values_get(account=account, today=trade_date_of(taken_at))
    taken = _Taken(
        snapshot=AccountSnapshot(
            account=account,
            taken_at=taken_at,
            source=SnapshotSource.PAPER,
            currency=account.base_currency,
            total_cash=quantize_money(values.cash),
            settled_cash=quantize_money(values.settled_cash),
            net_liquidation=quantize_money(values.net_liquidation),
            # A paper account holds cash in its base currency only.
            **cash_fields(
                balances={account.base_currency: values.cash} if values.cash is not None else None,
                base=account.base_currency,
            ),
        )
    )
    for instrument_id, quantity, multiplier, mark, average in values.positions:
        market_value = pnl = None
        if mark is not None:
            market_value = quantize_money(quantity * mark * multiplier)
            pnl = quantize_money((mark - average) * quantity * multiplier)
        taken.positions.append(
            PositionSnapshot(
                instrument_id=instrument_id,
                quantity=quantize_quantity(quantity),
                average_price=quantize_price(average),
                price=quantize_price(mark),
                market_value=market_value,
                unrealized_pnl=pnl,
            )
        )
    if taken.positions:  # their currencies, to convert (one query)
        ids = [p.instrument_id for p in taken.positions]
        taken.currencies = dict(Instrument.objects.filter(pk__in=ids).values_list("pk", "currency"))
    table = FxTable.load(base=account.base_currency, currencies=set(taken.currencies.values()))
    total = table.total(
        (p.unrealized_pnl, taken.currencies[p.instrument_id], None) for p in taken.positions if p.unrealized_pnl
    )
    taken.snapshot.unrealized_pnl = quantize_money(total.amount)
    if values.unpriced:
        taken.warnings.append(f"{values.unpriced} open position(s) have no stored quote: valued at cost")
    return taken


def _positions_equity(
    account: Account, positions: list[tuple], *, cash_read_at: datetime | None, table: FxTable
) -> Total:
    """What the open positions add to equity on top of the cash last read.

    Stocks and options: their market value (an option's premium x multiplier). A future: its P&L since
    the last settlement or entry, since the daily settlements already moved the rest into cash. The last
    settlement known here is the future's price in the broker's own CLOSE snapshot taken before the
    cash was read and after the position opened; without one, the entry (average) price. Each position's
    part is in its own currency, converted to base at the current rate (the total is None without one).
    """
    futures = {
        row[0]: row
        for row in positions
        if row[6] == SecType.FUTURE and row[3] is not None  # priced futures
    }
    settled: dict[int, Decimal] = {}
    if futures and cash_read_at is not None:
        opened = min(row[8] for row in futures.values())
        marks = (
            PositionSnapshot.objects.filter(
                snapshot__account=account,
                snapshot__kind=SnapshotKind.CLOSE,
                snapshot__source=SnapshotSource.BROKER,
                snapshot__taken_at__gte=opened,
                snapshot__taken_at__lte=cash_read_at,
                instrument_id__in=list(futures),
                price__isnull=False,
            )
            .order_by("instrument_id", "-snapshot__taken_at")
            .values_list("instrument_id", "snapshot__taken_at", "price")
        )
        for instrument_id, taken_at, price in marks:
            if instrument_id not in settled and taken_at >= futures[instrument_id][8]:
                settled[instrument_id] = price
    parts = []
    for instrument_id, quantity, average, price, market_value, _, _, multiplier, *_, currency in positions:
        if instrument_id in futures:
            reference = settled.get(instrument_id, average)
            parts.append(((price - reference) * quantity * (multiplier or Decimal(1)), currency, None))
        elif market_value is not None:
            parts.append((market_value, currency, None))
    return table.total(parts)


# --- the transaction ---------------------------------------------------------------------------
def _write(taken: _Taken, *, kind: SnapshotKind) -> AccountSnapshot:
    snapshot = taken.snapshot
    snapshot.kind = kind
    snapshot.trade_date = trade_date_of(snapshot.taken_at)
    snapshot.positions_count = len(taken.positions)
    snapshot.positions_value = _positions_value(taken)
    if snapshot.source == SnapshotSource.COMPUTED and snapshot.total_cash is not None and not taken.fx_missing:
        equity = taken.equity_value if taken.equity_value is not None else snapshot.positions_value
        snapshot.net_liquidation = quantize_money(snapshot.total_cash + equity)
    # An upsert on the natural key: a retake of the same second updates the row (and returns its id).
    # Only a CLOSE sets the kind of an existing row, so the close mark is never lost; the returned
    # instance keeps the kind that was asked for.
    update_fields = [*UPSERT_FIELDS, "kind"] if kind == SnapshotKind.CLOSE else UPSERT_FIELDS
    AccountSnapshot.objects.bulk_create(
        [snapshot], update_conflicts=True, unique_fields=["account", "taken_at"], update_fields=update_fields
    )
    PositionSnapshot.objects.filter(snapshot_id=snapshot.pk).delete()
    greeks = _current_greeks(snapshot.account_id, taken.options) if taken.options else {}
    for position in taken.positions:
        position.snapshot = snapshot
        for name, value in greeks.get(position.instrument_id, {}).items():
            setattr(position, name, value)
    PositionSnapshot.objects.bulk_create(taken.positions)
    return snapshot


def _positions_value(taken: _Taken) -> Decimal | None:
    """The priced positions' market values in the snapshot's (base) currency at the current rate; None when
    one is in a currency without a known rate (never counted at 1). One query, none in the base alone."""
    priced = [p for p in taken.positions if p.market_value is not None]
    base = taken.snapshot.currency
    currencies = {p.instrument_id: taken.currencies.get(p.instrument_id, base) for p in priced}
    table = FxTable.load(base=base, currencies=set(currencies.values()))
    total = table.total((p.market_value, currencies[p.instrument_id], None) for p in priced)
    if total.missing:
        taken.fx_missing |= total.missing
        return None
    return quantize_money(total.amount)


def _current_greeks(account_id: int, instrument_ids: set[int]) -> dict[int, dict]:
    """The open option positions' current Greeks by instrument (the "Option Greeks" task keeps them
    fresh), as PositionSnapshot's field values: the Greeks' history. One query."""
    rows = PositionGreeks.objects.filter(
        position__account_id=account_id,
        position__status=PositionStatus.OPEN,
        position__instrument_id__in=instrument_ids,
    ).values_list("position__instrument_id", *SNAPSHOT_GREEKS, "source")
    return {
        instrument_id: {**dict(zip(SNAPSHOT_GREEKS, values, strict=True)), "greeks_source": source}
        for instrument_id, *values, source in rows
    }


def _take(
    *,
    account: Account,
    broker: Broker,
    taken_at: datetime,
    kind: SnapshotKind,
    reason: SyncReason,
    accounts: _Accounts | None = None,
) -> AccountSnapshot | None:
    run, started = sync_run_start(kind=SyncKind.SNAPSHOTS, account=account, reason=reason)
    if not started:
        return None
    taken: _Taken | None = None
    try:
        if account.is_paper:  # never asked of the broker
            answer = _BrokerAnswer()
        else:
            answer = _ask_broker(broker, account, accounts if accounts is not None else _accounts_by_id(broker))
        with transaction.atomic():
            if account.is_paper:
                taken = _from_paper(account, taken_at)
            elif answer.failure:
                taken = _from_database(account, taken_at, answer.failure)
                if taken is None:
                    sync_run_finish(
                        run=run,
                        status=SyncStatus.SKIPPED,
                        skip_reason=SkipReason.NOTHING_KNOWN,
                        message=f"{answer.failure}; nothing known about the account yet: no snapshot",
                    )
                    return None
            else:
                taken = _from_broker(account, taken_at, answer)
                broker_rates_store(values=answer.account.values, source=broker.name, now=timezone.now())
            snapshot = _write(taken, kind=kind)
            # Finishing inside the transaction: the run says SUCCESS exactly when the snapshot landed.
            sync_run_finish(
                run=run,
                status=SyncStatus.SUCCESS,
                warnings=taken.warnings,
                created=len(taken.positions),
                message=(
                    f"{snapshot.source} {snapshot.get_kind_display().lower()} snapshot {snapshot.pk} at "
                    f"{taken_at:%Y-%m-%d %H:%M:%S} UTC: net liquidation {snapshot.net_liquidation}, "
                    f"{snapshot.positions_count} positions"
                ),
            )
    except Exception as exc:
        logger.exception("snapshot of %s failed", account.account_id)
        sync_run_fail(run=run, exc=exc, warnings=taken.warnings if taken else [])
        return None
    for warning in taken.warnings:
        logger.warning("snapshot %s: %s", account.account_id, warning)
    return snapshot


# --- the public face ---------------------------------------------------------------------------
def snapshot_take(
    *,
    account: Account,
    broker: Broker,
    at: datetime | None = None,
    kind: SnapshotKind = SnapshotKind.HOURLY,
    reason: SyncReason = SyncReason.SCHEDULE,
) -> AccountSnapshot | None:
    """Snapshot one account at ``at`` (default now): from the broker, or COMPUTED when it is away.

    Returns None when no snapshot was written: another snapshot of the account is running, nothing
    is known about it while the broker is away (both SKIPPED), or the write failed (FAILED). The
    account's latest SNAPSHOTS ``SyncRun`` says which.
    """
    return _take(account=account, broker=broker, taken_at=snapshot_time(at), kind=kind, reason=reason)


def snapshots_take_all(
    *,
    broker: Broker,
    kind: SnapshotKind,
    at: datetime | None = None,
    account_ids: Iterable[str] | None = None,
    reason: SyncReason = SyncReason.SCHEDULE,
) -> list[AccountSnapshot]:
    """Snapshot every active account (or the ones named) at one time, asking for account values once."""
    taken_at = snapshot_time(at)
    accounts = Account.objects.filter(is_active=True)
    if account_ids is not None:
        accounts = accounts.filter(account_id__in=list(account_ids))
    return _take_accounts(broker=broker, accounts=accounts, taken_at=taken_at, kind=kind, reason=reason)


def _take_accounts(
    *, broker: Broker, accounts, taken_at: datetime, kind: SnapshotKind, reason: SyncReason
) -> list[AccountSnapshot]:
    accounts = list(accounts.order_by("account_id"))
    if not accounts:
        return []
    by_id = _accounts_by_id(broker)
    snapshots = []
    for account in accounts:
        # One account's failure (even the database going away) fails its run; the others carry on.
        outcome = sync_run_isolated(
            lambda account=account: _take(
                account=account, broker=broker, taken_at=taken_at, kind=kind, reason=reason, accounts=by_id
            ),
            kind=SyncKind.SNAPSHOTS,
            account=account,
            reason=reason,
        )
        if isinstance(outcome, AccountSnapshot):
            snapshots.append(outcome)
    return snapshots


def _accounts_without_close(day: date):
    closed = AccountSnapshot.objects.filter(kind=SnapshotKind.CLOSE, trade_date=day).values("account_id")
    return Account.objects.filter(is_active=True).exclude(pk__in=closed)


def close_snapshot_due(*, now: datetime) -> date | None:
    """Today's trade date once its NYSE close has passed and an active account lacks its CLOSE snapshot."""
    today = trade_date_of(now)
    if not is_nyse_session(today) or session_close(today) > now:
        return None
    return today if _accounts_without_close(today).exists() else None


def close_snapshots_take(
    *, broker: Broker, now: datetime, reason: SyncReason = SyncReason.SCHEDULE
) -> list[AccountSnapshot]:
    """The due CLOSE snapshots, stamped at the session's close, for the accounts that lack one."""
    day = close_snapshot_due(now=now)
    if day is None:
        return []
    return _take_accounts(
        broker=broker,
        accounts=_accounts_without_close(day),
        taken_at=session_close(day),
        kind=SnapshotKind.CLOSE,
        reason=reason,
    )
