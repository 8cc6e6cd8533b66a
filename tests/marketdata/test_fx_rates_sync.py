"""The backfill of past daily exchange rates (#17): the pairs the ledger holds from its first fill, gap-free
and idempotent, only missing days asked; the sync_fx_rates command and its exit codes; the "FX rates"
schedule; the fx-rates API and the FxRate admin (who may see and correct what)."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.brokers.base import BrokerAccount, BrokerUnavailable, FxDay, PacingViolation
from core.brokers.memory import MemoryBroker
from core.locks import single_flight
from core.models import SyncKind, SyncRun, SyncStatus
from core.scheduling import periodic_tasks_ensure
from marketdata.fx import fx_rates_store
from marketdata.models import FxRate
from marketdata.services.fx import fx_gaps, fx_rates_sync, fx_trading_days
from marketdata.tasks import FX_RATES_LOCK
from portfolio.models import AccountStatus
from tests.factories import EXAMPLE_ACCOUNT_ID, AccountFactory, InstrumentFactory, UserFactory
from trading.calendars import trade_date_of
from trading.models import Execution, Side

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 11, 12, tzinfo=UTC)  # a Wednesday: the backfill runs to Tuesday 2026-11-10
NOV = [date(2026, 11, d) for d in (2, 3, 4, 5, 6, 9, 10)]  # the weekdays from the first fill to yesterday


def _eur_fill(account, at=datetime(2026, 11, 2, 15, tzinfo=UTC), symbol="SAP"):
    instrument = InstrumentFactory(symbol=symbol, currency="EUR")
    return Execution.objects.create(
        exec_id=f"x-{symbol}-{at:%Y%m%d}",
        account=account,
        instrument=instrument,
        side=Side.BUY,
        quantity=Decimal(10),
        price=Decimal("200"),
        commission=Decimal("1"),
        executed_at=at,
        trade_date=trade_date_of(at),
    )


def _broker(days=NOV, currency="EUR", base="USD") -> MemoryBroker:
    rows = [FxDay(currency=currency, base=base, day=d, rate=Decimal("1.15") + Decimal(d.day) / 1000) for d in days]
    return MemoryBroker(
        accounts=[BrokerAccount(account_id="DU1", account_type="MARGIN", base_currency="USD")], fx_history=rows
    )


def test_trading_days_are_weekdays_without_new_year_and_christmas():
    days = fx_trading_days(date(2026, 12, 24), date(2027, 1, 4))
    assert days == [date(2026, 12, 24), date(2026, 12, 28), date(2026, 12, 29), date(2026, 12, 30),
                    date(2026, 12, 31), date(2027, 1, 4)]  # fmt: skip


def test_the_backfill_asks_from_the_first_fill_to_yesterday_then_nothing(settings):
    _eur_fill(AccountFactory())
    broker = _broker()
    run = fx_rates_sync(broker=broker, now=NOW)
    assert run.status == SyncStatus.SUCCESS, run.message
    assert broker.fx_requests == [("EUR", "USD", date(2026, 11, 2), date(2026, 11, 10))]
    assert sorted(FxRate.objects.values_list("day", flat=True)) == NOV
    assert run.created == 7
    assert set(FxRate.objects.values_list("currency", "base", "source")) == {("EUR", "USD", "memory")}
    assert FxRate.objects.get(day=date(2026, 11, 9)).rate == Decimal("1.159")

    again = fx_rates_sync(broker=broker, now=NOW)  # idempotent: nothing missing, nothing asked
    assert again.status == SyncStatus.SUCCESS and again.created == 0
    assert len(broker.fx_requests) == 1
    assert FxRate.objects.count() == 7


def test_only_missing_days_are_asked_and_a_stored_rate_is_never_overwritten():
    _eur_fill(AccountFactory())
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.99")}, day=date(2026, 11, 5), source="simulated")
    broker = _broker(days=[d for d in NOV if d != date(2026, 11, 9)])  # the broker lacks Monday the 9th
    run = fx_rates_sync(broker=broker, now=NOW)
    assert broker.fx_requests == [
        ("EUR", "USD", date(2026, 11, 2), date(2026, 11, 4)),
        ("EUR", "USD", date(2026, 11, 6), date(2026, 11, 10)),
    ]
    assert FxRate.objects.get(day=date(2026, 11, 5)).rate == Decimal("1.99")  # the broker's own, kept
    assert run.created == 5
    assert any("no rate for 2026-11-09" in w for w in run.warnings)
    # The next run asks for the one day still missing, and nothing else.
    fx_rates_sync(broker=broker, now=NOW)
    assert broker.fx_requests[-1] == ("EUR", "USD", date(2026, 11, 9), date(2026, 11, 9))
    assert fx_gaps(currency="EUR", base="USD", since=date(2026, 11, 2), until=date(2026, 11, 10)) == [
        (date(2026, 11, 9), date(2026, 11, 9))
    ]


def test_every_currency_the_ledger_holds_per_base_from_its_own_first_day():
    usd = AccountFactory()
    _eur_fill(usd, at=datetime(2026, 11, 5, 15, tzinfo=UTC))
    _eur_fill(usd, at=datetime(2026, 11, 9, 15, tzinfo=UTC), symbol="SIE")
    AccountStatus.objects.create(account=usd, cash_balances={"USD": "1.0000", "GBP": "5.0000"}, read_at=NOW)
    InstrumentFactory(symbol="AAPL", currency="USD")  # the base itself: no pair
    broker = _broker()
    fx_rates_sync(broker=broker, now=NOW)
    assert broker.fx_requests == [
        ("EUR", "USD", date(2026, 11, 5), date(2026, 11, 10)),
        ("GBP", "USD", date(2026, 11, 5), date(2026, 11, 10)),  # cash: from the account's first fill
    ]


def test_since_overrides_the_first_fill():
    _eur_fill(AccountFactory())
    broker = _broker()
    fx_rates_sync(broker=broker, now=NOW, since=date(2026, 11, 9))
    assert broker.fx_requests == [("EUR", "USD", date(2026, 11, 9), date(2026, 11, 10))]


def test_a_pacing_refusal_leaves_the_gap_for_the_next_run():
    _eur_fill(AccountFactory())
    broker = _broker()
    broker.failures["fx_history"] = PacingViolation("error 162")
    run = fx_rates_sync(broker=broker, now=NOW)
    assert run.status == SyncStatus.SUCCESS and not FxRate.objects.exists()
    assert "left for the next run" in run.warnings[0]
    del broker.failures["fx_history"]
    assert fx_rates_sync(broker=broker, now=NOW).created == 7


def test_the_broker_down_skips_the_run_and_keeps_what_was_stored():
    _eur_fill(AccountFactory())
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.20")}, day=date(2026, 11, 2), source="history")
    broker = _broker()
    broker.failures["fx_history"] = BrokerUnavailable("gateway down")
    run = fx_rates_sync(broker=broker, now=NOW)
    assert (run.status, run.skip_reason, run.kind) == (SyncStatus.SKIPPED, "BROKER_UNREACHABLE", SyncKind.FX_RATES)
    assert list(FxRate.objects.values_list("rate", flat=True)) == [Decimal("1.20")]


# --- the command and the schedule ------------------------------------------------------------------------
@pytest.fixture
def state_with_history(broker_state):
    account = AccountFactory(account_id=EXAMPLE_ACCOUNT_ID)
    yesterday = timezone.localdate() - timedelta(days=1)
    first = yesterday - timedelta(days=6)
    _eur_fill(account, at=datetime.combine(first, datetime.min.time(), tzinfo=UTC) + timedelta(hours=15))
    days = fx_trading_days(first, yesterday)
    with broker_state.edit() as state:
        state["fx_history"] = {"USD": {"EUR": [{"day": d.isoformat(), "rate": "1.16"} for d in days]}}
    return days


def test_the_command_backfills_from_the_state_file_and_exits_0(state_with_history, capsys):
    call_command("sync_fx_rates", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "SUCCESS" and out["created"] == len(state_with_history)
    assert sorted(FxRate.objects.values_list("day", flat=True)) == state_with_history
    assert set(FxRate.objects.values_list("source", flat=True)) == {"simulated"}
    call_command("sync_fx_rates", "--since", state_with_history[0].isoformat())
    assert "0 new" in capsys.readouterr().out


def test_the_command_exits_0_when_skipped_and_1_when_failed_locked_or_given_a_bad_date(
    state_with_history, broker_state, monkeypatch
):
    with broker_state.edit() as state:
        state["connected"] = False
    call_command("sync_fx_rates")  # SKIPPED: no SystemExit
    assert SyncRun.objects.get(kind=SyncKind.FX_RATES).skip_reason == "BROKER_UNREACHABLE"

    with single_flight(FX_RATES_LOCK + ":command"), pytest.raises(SystemExit) as held:
        call_command("sync_fx_rates")
    assert held.value.code == 1

    def boom():
        raise RuntimeError("the ledger is unreadable")

    monkeypatch.setattr("marketdata.services.fx.fx_needs", boom)
    with pytest.raises(SystemExit) as failed:
        call_command("sync_fx_rates")
    assert failed.value.code == 1
    assert SyncRun.objects.filter(kind=SyncKind.FX_RATES).latest("started_at").status == SyncStatus.FAILED
    with pytest.raises(CommandError, match="--since"):
        call_command("sync_fx_rates", "--since", "yesterday")


def test_the_fx_rates_schedule_is_created_once_by_name():
    periodic_tasks_ensure()
    task = PeriodicTask.objects.get(name="FX rates")
    assert (task.task, task.crontab.hour, task.crontab.timezone.key) == (
        "marketdata.sync_fx_rates",
        "1",
        "America/New_York",
    )
    assert task.expire_seconds
    assert "FX rates" not in periodic_tasks_ensure()


# --- API and admin -------------------------------------------------------------------------------
def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _rates() -> None:
    for day, rate in ((date(2026, 11, 2), "1.15"), (date(2026, 11, 3), "1.16")):
        fx_rates_store(base="USD", rates={"EUR": Decimal(rate), "GBP": Decimal("1.27")}, day=day, source="history")
    fx_rates_store(base="EUR", rates={"USD": Decimal("0.86")}, day=date(2026, 11, 3), source="history")


def test_fx_rates_api_for_any_logged_in_user_with_filters():
    _rates()
    assert Client().get("/api/market-data/fx-rates").status_code in (401, 403)
    trader = _client(UserFactory())
    body = trader.get("/api/market-data/fx-rates").json()
    assert len(body["results"]) == 5 and body["results"][0]["day"] == "2026-11-03"
    body = trader.get("/api/market-data/fx-rates?base=usd&currency=EUR&since=2026-11-03").json()
    (row,) = body["results"]
    assert (row["currency"], row["base"], row["day"], Decimal(row["rate"]), row["source"]) == (
        "EUR",
        "USD",
        "2026-11-03",
        Decimal("1.16"),
        "history",
    )
    bad = trader.get("/api/market-data/fx-rates?base=dollars&since=soon")
    assert bad.status_code == 400 and set(bad.json()) == {"base", "since"}


def test_staff_correct_a_rate_in_the_admin_with_a_reason_kept_in_its_history():
    _rates()
    rate = FxRate.objects.get(currency="EUR", base="USD", day=date(2026, 11, 3))
    url = f"/admin/marketdata/fxrate/{rate.pk}/change/"
    form = {"currency": "eur", "base": "USD", "day": "2026-11-03", "rate": "1.1650"}
    staff = _client(UserFactory(superuser=True))
    assert staff.get("/admin/marketdata/fxrate/").status_code == 200
    missing_reason = staff.post(url, form)
    assert missing_reason.status_code == 200 and "This field is required" in missing_reason.content.decode()
    assert staff.post(url, {**form, "reason": "broker rate was stale"}).status_code == 302
    rate.refresh_from_db()
    assert (rate.currency, rate.rate, rate.source) == ("EUR", Decimal("1.1650"), "admin")
    history = rate.history.first()
    assert history.history_change_reason == "broker rate was stale" and history.history_user is not None
    nonsense = staff.post(url, {**form, "currency": "USD", "rate": "-1", "reason": "x"})
    assert "a rate of a currency to itself is 1" in nonsense.content.decode()
    assert "must be positive" in nonsense.content.decode()

    assert _client(UserFactory()).get("/admin/marketdata/fxrate/").status_code == 302  # a trader: to login
    assert Client().get("/admin/marketdata/fxrate/").status_code == 302
