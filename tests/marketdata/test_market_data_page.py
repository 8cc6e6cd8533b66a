"""The Market data page, the admin, the schedules and the sync_market_data command."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from django_celery_beat.models import PeriodicTask

from core.models import SyncKind, SyncRun, SyncStatus
from core.scheduling import periodic_tasks_ensure
from marketdata.models import Bar, Instrument, Quote, WatchedInstrument
from tests.factories import BarFactory, InstrumentFactory, QuoteFactory, UserFactory, WatchedInstrumentFactory

pytestmark = pytest.mark.django_db


def _client(**user) -> Client:
    client = Client()
    client.force_login(UserFactory(**user))
    return client


def _watched(count: int, bars: int) -> None:
    for _ in range(count):
        watch = WatchedInstrumentFactory(bar_sizes=["1d", "5m"])
        QuoteFactory(instrument=watch.instrument, last=Decimal("155.10"))
        for i in range(bars):
            BarFactory(
                instrument=watch.instrument,
                bar_size="5m",
                start=datetime(2026, 11, 30, 14, 30, tzinfo=UTC) + timedelta(minutes=5 * i),
            )
        BarFactory(instrument=watch.instrument, bar_size="1d")


def test_the_page_lists_watched_instruments_newest_bars_quotes_the_last_run_and_gaps():
    _watched(1, 3)
    SyncRun.objects.create(
        kind=SyncKind.MARKET_DATA,
        status=SyncStatus.SUCCESS,
        started_at=datetime(2026, 11, 30, 22, tzinfo=UTC),
        message="bars of 1 instrument(s): 3 bars new",
        warnings=["gap: SYM 5m 2026-11-27 14:30..2026-11-27 18:00: the broker has no bars there"],
    )
    page = _client().get("/market-data/").content.decode()
    assert "Market data" in page and "5m: Nov 30, 2026 09:40" in page  # newest 5m bar, exchange time
    assert "155.10000000" in page and "gap: SYM 5m 2026-11-27" in page and "bars of 1 instrument(s)" in page


@pytest.mark.parametrize(("instruments", "bars"), [(2, 3), (6, 60)])
def test_the_page_keeps_a_constant_number_of_queries(instruments, bars, django_assert_num_queries):
    _watched(instruments, bars)
    client = _client()
    # user (session cached), watches with quotes, open positions (no instruments: none), newest bars, last run,
    # last bars run
    with django_assert_num_queries(6):
        assert client.get("/market-data/").status_code == 200


def test_the_page_and_the_admin_need_their_logins():
    assert Client().get("/market-data/").status_code == 302
    assert _client().get("/admin/marketdata/watchedinstrument/").status_code == 302  # staff only
    staff = _client(is_staff=True, is_superuser=True)
    WatchedInstrumentFactory()
    assert staff.get("/admin/marketdata/watchedinstrument/").status_code == 200
    assert staff.get("/admin/marketdata/bar/").status_code == 200
    assert staff.get("/admin/marketdata/quote/").status_code == 200


def test_the_admin_refuses_an_unknown_bar_size():
    staff = _client(is_staff=True, is_superuser=True)
    instrument = InstrumentFactory()
    response = staff.post(
        "/admin/marketdata/watchedinstrument/add/",
        {"instrument": instrument.pk, "bar_sizes": '["1d", "2m"]', "enabled": "on"},
    )
    assert response.status_code == 200 and "unknown bar size(s) 2m" in response.content.decode()
    assert not WatchedInstrument.objects.exists()


def test_the_four_schedules_are_created_once_by_name():
    periodic_tasks_ensure()
    names = {"Quotes", "Intraday bars", "Daily bars", "Market data retention"}
    tasks = {t.name: t for t in PeriodicTask.objects.filter(name__in=names)}
    assert set(tasks) == names and all(t.expire_seconds for t in tasks.values())
    assert tasks["Quotes"].interval.every == 60 and tasks["Intraday bars"].interval.every == 300
    assert tasks["Daily bars"].crontab.timezone.key == "America/New_York"
    tasks["Quotes"].interval.every = 30
    tasks["Quotes"].interval.save()
    assert periodic_tasks_ensure() == []  # staff's interval survives


def test_the_command_creates_an_unwatched_symbol_and_stores_its_bars_and_quote(broker_state, capsys):
    call_command("sync_market_data", "--symbol", "aapl", "--since", "2026-11-18", "--json")
    out = json.loads(capsys.readouterr().out)

    assert out["status"] == "SUCCESS"
    instrument = Instrument.objects.get(symbol="AAPL")
    assert Bar.objects.filter(instrument=instrument, bar_size="1d").count() == 1
    assert Quote.objects.get(instrument=instrument).last is not None


def test_the_command_exits_0_when_the_broker_is_down_and_1_on_a_bad_date(broker_state):
    with broker_state.edit() as state:
        state["connected"] = False
    call_command("sync_market_data", "--symbol", "AAPL", "--quotes-only")  # SKIPPED: no SystemExit
    assert SyncRun.objects.get().skip_reason == "BROKER_UNREACHABLE"
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--since"):
        call_command("sync_market_data", "--since", "yesterday")
