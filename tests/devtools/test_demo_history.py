"""The demo's year of snapshots: hourly and at every close, ending at the current value, flows respected."""

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from devtools.demo import CASH_ACCOUNT_ID, MARGIN_ACCOUNT_ID
from devtools.demo_history import NOTE, demo_history_build
from portfolio.models import AccountSnapshot, AccountStatus, PositionSnapshot, SnapshotKind, SnapshotSource
from tests.factories import AccountFactory
from trading.calendars import nyse_sessions, session_close
from trading.models import CashFlow, CashFlowKind

pytestmark = pytest.mark.django_db
END = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)  # Friday, after the close
SEED = 7


def status(account, net_liquidation: str, total_cash: str = "30000.00") -> AccountStatus:
    return AccountStatus.objects.create(
        account=account, net_liquidation=Decimal(net_liquidation), total_cash=Decimal(total_cash), read_at=END
    )


def flow(account, kind: str, amount: str, at: datetime) -> CashFlow:
    return CashFlow.objects.create(
        account=account, flow_id=f"cf-{at:%Y%m%d%H%M}", kind=kind, amount=Decimal(amount), at=at
    )


def closes(account) -> dict[date, Decimal]:
    rows = AccountSnapshot.objects.filter(account=account, kind=SnapshotKind.CLOSE).order_by("taken_at")
    return {s.trade_date: s.net_liquidation for s in rows}


def test_a_year_is_eight_snapshots_a_session_ending_at_the_current_value():
    account = AccountFactory()
    status(account, "123456.78")

    started = time.perf_counter()
    result = demo_history_build(account=account, end=END, seed=SEED)
    elapsed = time.perf_counter() - started

    sessions = nyse_sessions(date(2025, 11, 21), date(2026, 11, 20))
    assert 250 <= len(sessions) <= 253
    snapshots = AccountSnapshot.objects.filter(account=account)
    # 14:00-21:00 UTC is eight hours; the close lands on one of them (21:00 winter, 20:00 summer,
    # 18:00 on an early close) and that instant is the CLOSE row: one row per instant.
    assert snapshots.filter(kind=SnapshotKind.CLOSE).count() == len(sessions)
    assert snapshots.filter(kind=SnapshotKind.HOURLY).count() == 7 * len(sessions)
    assert result.created == 8 * len(sessions)
    assert set(snapshots.values_list("source", "note").distinct()) == {(SnapshotSource.BROKER, NOTE)}
    assert not PositionSnapshot.objects.exists()
    last = snapshots.order_by("-taken_at").first()
    assert (last.taken_at, last.kind) == (datetime(2026, 11, 20, 21, tzinfo=UTC), SnapshotKind.CLOSE)
    assert last.net_liquidation == Decimal("123456.78")
    assert result.first == datetime(2025, 11, 21, 14, tzinfo=UTC) and result.last == last.taken_at
    assert elapsed < 10, f"a year for one account took {elapsed:.1f}s"


def test_every_close_is_at_the_sessions_close_and_there_is_none_on_holidays():
    account = AccountFactory()
    demo_history_build(account=account, end=END, seed=SEED)

    by_date = {s.trade_date: s for s in AccountSnapshot.objects.filter(account=account, kind=SnapshotKind.CLOSE)}
    assert by_date[date(2025, 11, 28)].taken_at == datetime(2025, 11, 28, 18, tzinfo=UTC)  # early close
    assert by_date[date(2025, 12, 24)].taken_at == datetime(2025, 12, 24, 18, tzinfo=UTC)  # early close
    assert by_date[date(2026, 7, 15)].taken_at == datetime(2026, 7, 15, 20, tzinfo=UTC)  # summer
    assert by_date[date(2026, 1, 15)].taken_at == datetime(2026, 1, 15, 21, tzinfo=UTC)  # winter
    for holiday in (date(2025, 11, 27), date(2025, 12, 25), date(2026, 7, 3), date(2026, 11, 14)):
        assert not AccountSnapshot.objects.filter(account=account, trade_date=holiday).exists()
    assert all(s.taken_at == session_close(day) for day, s in by_date.items())


def test_values_are_plausible_and_the_market_is_still_after_an_early_close():
    account = AccountFactory()
    status(account, "100000.00", total_cash="25000.00")
    demo_history_build(account=account, end=END, seed=SEED)

    rows = list(AccountSnapshot.objects.filter(account=account).order_by("taken_at"))
    values = [s.net_liquidation for s in rows]
    assert all(Decimal("40000") < v < Decimal("250000") for v in values)
    assert len(set(values)) > len(values) // 2  # it moves
    assert all(s.positions_value + s.total_cash == s.net_liquidation for s in rows)
    assert all(1 <= s.positions_count <= 12 for s in rows)
    assert rows[-1].positions_value == Decimal("75000.00")  # ends at what is held now: 100,000 - 25,000 cash
    after_early_close = [
        s.net_liquidation for s in rows if s.trade_date == date(2025, 11, 28) and s.taken_at.hour >= 18
    ]
    assert len(after_early_close) == 4 and len(set(after_early_close)) == 1


def test_the_default_end_value_and_determinism():
    account = AccountFactory()
    demo_history_build(account=account, end=END, days=30, seed=SEED)
    first = list(AccountSnapshot.objects.filter(account=account).order_by("taken_at").values_list("net_liquidation"))
    assert first[-1] == (Decimal("100000.00"),)

    AccountSnapshot.objects.all().delete()
    demo_history_build(account=account, end=END, days=30, seed=SEED)
    again = list(AccountSnapshot.objects.filter(account=account).order_by("taken_at").values_list("net_liquidation"))
    assert again == first
    AccountSnapshot.objects.all().delete()
    demo_history_build(account=account, end=END, days=30, seed=SEED + 1)
    other = list(AccountSnapshot.objects.filter(account=account).order_by("taken_at").values_list("net_liquidation"))
    assert other != first


def test_a_second_run_adds_nothing_and_changes_nothing():
    account = AccountFactory()
    demo_history_build(account=account, end=END, days=60, seed=SEED)
    before = list(AccountSnapshot.objects.order_by("taken_at").values_list("taken_at", "net_liquidation"))

    result = demo_history_build(account=account, end=END + timedelta(hours=1), days=60, seed=SEED)

    assert result.created == 0
    assert list(AccountSnapshot.objects.order_by("taken_at").values_list("taken_at", "net_liquidation")) == before


def test_it_fills_only_the_time_before_the_first_real_snapshot_and_joins_it():
    account = AccountFactory()
    real = AccountSnapshot.objects.create(
        account=account,
        taken_at=datetime(2026, 11, 18, 15, 0, 4, tzinfo=UTC),
        trade_date=date(2026, 11, 18),
        net_liquidation=Decimal("87654.32"),
    )

    result = demo_history_build(account=account, end=END, days=30, seed=SEED)

    assert result.last == datetime(2026, 11, 18, 15, tzinfo=UTC)  # the hour before it, not the same second
    assert not AccountSnapshot.objects.filter(taken_at__gt=real.taken_at).exists()
    last = AccountSnapshot.objects.filter(note=NOTE).order_by("-taken_at").first()
    assert abs(last.net_liquidation / real.net_liquidation - 1) < Decimal("0.03")  # one market step away


def test_a_longer_run_extends_the_history_backwards():
    account = AccountFactory()
    demo_history_build(account=account, end=END, days=10, seed=SEED)
    oldest = AccountSnapshot.objects.order_by("taken_at").first().taken_at

    result = demo_history_build(account=account, end=END, days=20, seed=SEED)

    assert result.created > 0 and result.last < oldest


def daily_twr(account, day_before: date, day: date) -> Decimal:
    """By hand, as the domain rules say: r = (V_end - V_start - flow) / (V_start + flow)."""
    values = closes(account)
    start, end = values[day_before], values[day]
    flows = sum(
        (
            f.signed_amount
            for f in CashFlow.objects.filter(
                account=account, at__gt=session_close(day_before), at__lte=session_close(day)
            )
        ),
        Decimal(0),
    )
    return (end - start - flows) / (start + flows)


@pytest.mark.parametrize(
    ("kind", "amount"), [(CashFlowKind.DEPOSIT, "20000.00"), (CashFlowKind.WITHDRAWAL, "15000.00")]
)
def test_flows_move_the_value_but_not_the_time_weighted_return(kind, amount):
    # Two accounts on the same random walk (seed + pk equal); one of them moves money before the open.
    plain, with_flow = AccountFactory(), AccountFactory()
    at = datetime(2026, 10, 14, 13, 0, tzinfo=UTC)  # 09:00 New York, before the session of the 14th
    flow(with_flow, kind, amount, at)
    demo_history_build(account=plain, end=END, days=90, seed=SEED + with_flow.pk - plain.pk)
    demo_history_build(account=with_flow, end=END, days=90, seed=SEED)

    day_before, day, day_after = date(2026, 10, 13), date(2026, 10, 14), date(2026, 10, 15)
    market = closes(plain)
    for start, end in [(day_before, day), (day, day_after)]:
        market_move = market[end] / market[start] - 1
        assert abs(daily_twr(with_flow, start, end) - market_move) < Decimal("0.000001")
    # Raw values say otherwise on the day of the flow: the amount is in them.
    values = closes(with_flow)
    raw = values[day] / values[day_before] - 1
    signed = Decimal(amount) if kind == CashFlowKind.DEPOSIT else -Decimal(amount)
    assert abs(raw - (market[day] / market[day_before] - 1)) > abs(signed) / values[day_before] / 2
    assert values[date(2026, 11, 20)] == market[date(2026, 11, 20)] == Decimal("100000.00")


def test_a_flow_during_the_session_is_exact_hour_by_hour():
    plain, with_flow = AccountFactory(), AccountFactory()
    at = datetime(2026, 10, 14, 17, 30, tzinfo=UTC)
    flow(with_flow, CashFlowKind.DEPOSIT, "10000.00", at)
    demo_history_build(account=plain, end=END, days=60, seed=SEED + with_flow.pk - plain.pk)
    demo_history_build(account=with_flow, end=END, days=60, seed=SEED)

    def around(account):
        return dict(
            AccountSnapshot.objects.filter(
                account=account, taken_at__in=[at - timedelta(minutes=30), at + timedelta(minutes=30)]
            ).values_list("taken_at", "net_liquidation")
        )

    market, values = around(plain), around(with_flow)
    before, after = at - timedelta(minutes=30), at + timedelta(minutes=30)
    hourly_twr = (values[after] - values[before] - Decimal(10000)) / (values[before] + Decimal(10000))
    assert abs(hourly_twr - (market[after] / market[before] - 1)) < Decimal("0.000001")


def test_history_starts_after_the_deposit_that_funded_the_account():
    account = AccountFactory()
    status(account, "31000.00")
    funded = datetime(2026, 10, 9, 13, 0, tzinfo=UTC)
    flow(account, CashFlowKind.DEPOSIT, "30000.00", funded)

    result = demo_history_build(account=account, end=END, seed=SEED)

    assert result.funded_at == funded
    assert result.first == datetime(2026, 10, 9, 14, tzinfo=UTC)
    assert AccountSnapshot.objects.order_by("taken_at").first().taken_at == result.first
    assert all(v > 0 for v in AccountSnapshot.objects.values_list("net_liquidation", flat=True))


def test_end_must_be_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        demo_history_build(account=AccountFactory(), end=datetime(2026, 11, 20, 22))


# --- the command -------------------------------------------------------------------------------
def test_command_writes_history_for_every_demo_account(capsys):
    margin, cash = AccountFactory(account_id=MARGIN_ACCOUNT_ID), AccountFactory(account_id=CASH_ACCOUNT_ID, cash=True)
    AccountFactory(account_id="DU0000042")  # not a demo account: left alone

    call_command("demo_history", "--days", "20")

    out = capsys.readouterr().out
    assert f"{MARGIN_ACCOUNT_ID}: " in out and f"{CASH_ACCOUNT_ID}: " in out
    for account in (margin, cash):
        assert AccountSnapshot.objects.filter(account=account, kind=SnapshotKind.CLOSE).count() >= 12
        last = AccountSnapshot.objects.filter(account=account).order_by("-taken_at").first()
        assert last.taken_at <= timezone.now() and last.net_liquidation == Decimal("100000.00")
    assert not AccountSnapshot.objects.filter(account__account_id="DU0000042").exists()
    call_command("demo_history", "--days", "20")
    assert "nothing to add" in capsys.readouterr().out


def test_command_refuses_a_real_broker_and_a_missing_demo(settings):
    with pytest.raises(CommandError, match="run demo_setup first"):
        call_command("demo_history")
    settings.BROKER = "ibkr"
    with pytest.raises(CommandError, match="needs BROKER=simulated"):
        call_command("demo_history")
