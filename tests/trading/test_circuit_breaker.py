"""The circuit breaker: a day's loss or a losing streak pauses opening orders until the next session or
until staff resume the account in the admin (a reason required and kept); closing orders still pass."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.brokers.contracts import InstrumentSpec
from marketdata.models import Quote
from marketdata.services import instrument_get_or_create
from portfolio.models import AccountSnapshot, SnapshotKind, SnapshotSource
from tests.factories import QuoteFactory, UserFactory
from trading.models import OrderStatus, RiskAction, RiskEvent, RiskEventKind, RiskSeverity
from trading.services.orders import OrderInput, order_execute
from trading.services.risk import breaker_active, breaker_state_read

pytestmark = pytest.mark.django_db


def order(account, cid: str, side: str, symbol: str = "AAPL", quantity: str = "10"):
    return order_execute(
        account=account, data=OrderInput(client_order_id=cid, symbol=symbol, side=side, quantity=Decimal(quantity))
    ).order


def failed(o) -> list[str]:
    return [c["name"] for c in o.checks if not c["passed"]]


@pytest.fixture
def msft(clock):
    instrument = instrument_get_or_create(spec=InstrumentSpec(symbol="MSFT"))
    QuoteFactory(instrument=instrument, at=clock.now, fetched_at=clock.now)
    return instrument


def test_a_losing_streak_pauses_opening_orders_but_closing_orders_pass(paper_account, aapl, msft, settings):
    settings.RISK_MAX_CONSECUTIVE_LOSSES = 2
    assert order(paper_account, "hold", "BUY", "MSFT").status == OrderStatus.FILLED
    for n in range(2):  # bought at the ask, sold at the bid: two losing round trips
        assert order(paper_account, f"b{n}", "BUY").status == OrderStatus.FILLED
        assert order(paper_account, f"s{n}", "SELL").status == OrderStatus.FILLED
    opening = order(paper_account, "open", "BUY")
    assert opening.status == OrderStatus.REJECTED and failed(opening) == ["circuit_breaker"]
    event = RiskEvent.objects.get(kind=RiskEventKind.CIRCUIT_BREAKER_TRIP)
    assert event.severity == RiskSeverity.CRITICAL and event.action == RiskAction.TRADING_PAUSED
    assert "2 losing round trips in a row" in event.message
    assert event.settings_snapshot["RISK_MAX_CONSECUTIVE_LOSSES"] == 2
    closing = order(paper_account, "close", "SELL", "MSFT")
    assert closing.status == OrderStatus.FILLED
    breaker = next(c for c in closing.checks if c["name"] == "circuit_breaker")
    assert breaker["passed"] and "closing orders pass" in breaker["message"]


def test_the_streak_is_the_newest_round_trips(paper_account, aapl, clock, settings):
    settings.RISK_MAX_CONSECUTIVE_LOSSES = 2
    quotes = Quote.objects.filter(instrument=aapl)

    def trip(n: int, *, exit_bid: str) -> None:
        quotes.update(bid=Decimal("99.99"), ask=Decimal("100.01"), last=Decimal(100), at=clock.now)
        assert order(paper_account, f"b{n}", "BUY").status == OrderStatus.FILLED
        clock.set(clock.now + timedelta(minutes=1))
        quotes.update(bid=Decimal(exit_bid), ask=Decimal(exit_bid) + Decimal("0.02"), at=clock.now)
        assert order(paper_account, f"s{n}", "SELL").status == OrderStatus.FILLED
        clock.set(clock.now + timedelta(minutes=1))

    trip(0, exit_bid="120.00")  # a win, then a loss: no streak; a second loss makes one
    trip(1, exit_bid="99.99")
    assert breaker_state_read(account=paper_account) == (None, ["LOSS", "WIN"])
    trip(2, exit_bid="99.99")
    quotes.update(at=clock.now)
    assert failed(order(paper_account, "open", "BUY")) == ["circuit_breaker"]
    event = RiskEvent.objects.get(kind=RiskEventKind.CIRCUIT_BREAKER_TRIP)
    assert breaker_state_read(account=paper_account) == (event.pk, ["LOSS", "LOSS"])


def test_a_days_loss_at_the_limit_trips_the_breaker(paper_account, aapl, clock, settings):
    settings.RISK_DAILY_LOSS_PCT = Decimal("0.03")
    # Yesterday's close 103,093 -> today 100,000 (flows removed: the deposit was before it): -3.0%
    AccountSnapshot.objects.create(
        account=paper_account,
        taken_at=datetime(2026, 12, 7, 21, 0, tzinfo=UTC),
        trade_date=datetime(2026, 12, 7).date(),
        kind=SnapshotKind.CLOSE,
        source=SnapshotSource.PAPER,
        net_liquidation=Decimal("103093"),
    )
    refused = order(paper_account, "a", "BUY")
    assert failed(refused) == ["circuit_breaker"]
    assert "the day's loss 3.00% is at or beyond" in RiskEvent.objects.get(kind="CIRCUIT_BREAKER_TRIP").message


def test_a_days_loss_under_the_limit_does_not(paper_account, aapl, settings):
    AccountSnapshot.objects.create(
        account=paper_account,
        taken_at=datetime(2026, 12, 7, 21, 0, tzinfo=UTC),
        trade_date=datetime(2026, 12, 7).date(),
        kind=SnapshotKind.CLOSE,
        source=SnapshotSource.PAPER,
        net_liquidation=Decimal("103000"),  # -2.91%
    )
    assert order(paper_account, "a", "BUY").status == OrderStatus.FILLED
    assert not RiskEvent.objects.filter(kind="CIRCUIT_BREAKER_TRIP").exists()


def _trip(account, now) -> RiskEvent:
    return RiskEvent.objects.create(
        account=account,
        kind=RiskEventKind.CIRCUIT_BREAKER_TRIP,
        severity=RiskSeverity.CRITICAL,
        action=RiskAction.TRADING_PAUSED,
        value=Decimal("-0.05"),
        threshold=Decimal("-0.03"),
        as_of=now.date(),
        message="the day's loss 5.00% is at or beyond RISK_DAILY_LOSS_PCT 3.00%",
    )


def test_the_breaker_holds_until_the_next_session(paper_account, aapl, clock):
    event = _trip(paper_account, clock.now)
    assert breaker_active(account=paper_account, now=clock.now + timedelta(hours=8)) == event  # same date
    # Tuesday's trip lifts on Wednesday's trade date.
    assert breaker_active(account=paper_account, now=datetime(2026, 12, 9, 5, 0, tzinfo=UTC)) is None
    event.refresh_from_db()
    assert event.resolved_at is not None and event.resolution_note == "lifted by the next session"


def test_the_api_and_banner_show_the_breaker(client, trader, paper_account, aapl, clock):
    _trip(paper_account, clock.now)
    client.force_login(trader)
    state = client.get("/api/trading/risk-state", {"account": "PAPER1"}).json()
    assert state["trading_paused"] is True
    assert state["banner"].startswith("Opening orders paused since 2026-12-08 15:00 UTC: the day's loss 5.00%")


def test_staff_resume_in_the_admin_with_a_reason_kept(client, paper_account, aapl, clock):
    event = _trip(paper_account, clock.now)
    staff = UserFactory(superuser=True)
    client.force_login(staff)
    url = "/admin/trading/riskevent/"
    form = {"action": "resume_trading", "_selected_action": [event.pk], "reason": ""}
    client.post(url, form)
    event.refresh_from_db()
    assert event.resolved_at is None  # no reason, nothing resumed
    client.post(url, {**form, "reason": "loss was a data error, checked with the trader"})
    event.refresh_from_db()
    assert event.resolved_at is not None and event.resolved_by == staff
    assert event.resolution_note == "loss was a data error, checked with the trader"
    assert order(paper_account, "after", "BUY").status == OrderStatus.FILLED


def test_a_trip_and_a_resume_reach_the_account_users_as_alerts(
    paper_account, aapl, clock, settings, django_capture_on_commit_callbacks
):
    from core.models import Alert, AlertKind
    from tests.factories import AlertChannelFactory
    from trading.services.risk import breaker_resume

    member = UserFactory()
    paper_account.users.add(member)
    AlertChannelFactory(user=member)
    settings.RISK_DAILY_LOSS_PCT = Decimal("0.03")
    AccountSnapshot.objects.create(
        account=paper_account,
        taken_at=datetime(2026, 12, 7, 21, 0, tzinfo=UTC),
        trade_date=datetime(2026, 12, 7).date(),
        kind=SnapshotKind.CLOSE,
        source=SnapshotSource.PAPER,
        net_liquidation=Decimal("104000"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        order(paper_account, "a", "BUY")
        order(paper_account, "b", "BUY")  # still paused: the same trip, not a second alert
    event = RiskEvent.objects.get(kind=RiskEventKind.CIRCUIT_BREAKER_TRIP)
    with django_capture_on_commit_callbacks(execute=True):
        assert breaker_resume(event=event, user=UserFactory(superuser=True), reason="checked", now=clock.now)
    alerts = list(Alert.objects.filter(user=member).order_by("id").values_list("kind", "title"))
    assert [kind for kind, _ in alerts] == [AlertKind.CIRCUIT_BREAKER, AlertKind.RISK_RESOLVED]
    assert alerts[0][1].startswith("PAPER1:") and "tripped" in alerts[0][1]
