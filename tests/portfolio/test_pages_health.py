"""The sync health page: who sees which runs, filters, warnings, the heartbeat, pagination, queries."""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from core.heartbeat import HEARTBEAT_COUNT_KEY, HEARTBEAT_LAST_KEY
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from portfolio.services.sync import positions_sync
from portfolio.views.health import PAGE_SIZE
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_heartbeat():
    cache.delete_many([HEARTBEAT_LAST_KEY, HEARTBEAT_COUNT_KEY])


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _run(account, *, kind=SyncKind.POSITIONS, status=SyncStatus.SUCCESS, minutes_ago: float = 5, **fields) -> SyncRun:
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return SyncRun.objects.create(
        kind=kind,
        account=account,
        status=status,
        started_at=started,
        finished_at=started + timedelta(milliseconds=1500),
        duration_ms=1500,
        **fields,
    )


def _messages(page: str) -> list[str]:
    return re.findall(r'<td class="message">([^<]*)</td>', page)


def test_anonymous_is_sent_to_login():
    response = Client().get("/sync-health/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_trader_sees_runs_of_their_accounts_only():
    trader = UserFactory()
    mine = AccountFactory(account_id="DU1234567", users=[trader])
    theirs = AccountFactory(account_id="DU9999999", users=[UserFactory()])
    _run(mine, message="mine")
    _run(theirs, message="theirs")
    _run(None, kind=SyncKind.MARKET_DATA, message="global")

    page = _client(trader).get("/sync-health/", {"account": "DU9999999"}).content.decode()

    assert _messages(page) == ["mine"]
    assert "DU9999999" not in page


def test_staff_see_every_run():
    staff = UserFactory(staff=True)
    _run(AccountFactory(), message="one", minutes_ago=3)
    _run(AccountFactory(), message="two", minutes_ago=2)
    _run(None, kind=SyncKind.MARKET_DATA, message="global", minutes_ago=1)

    page = _client(staff).get("/sync-health/").content.decode()

    assert _messages(page) == ["global", "two", "one"]


def test_a_real_sync_and_an_unreachable_broker(settings, broker_state):
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    positions_sync(account=account, broker=broker)
    with broker_state.edit() as state:
        state["connected"] = False
    positions_sync(account=account, broker=broker)

    page = _client(trader).get("/sync-health/").content.decode()

    assert "2 created" in page
    assert "broker unreachable" in page
    assert '<span class="badge status-skipped">Skipped</span>' in page
    # Why, from the run's skip_reason (data, not the message text).
    assert '<span class="muted small" data-skip-reason="BROKER_UNREACHABLE">Broker unreachable</span>' in page


def test_filters_by_kind_status_and_account_and_ignores_unknown_values():
    trader = UserFactory()
    first = AccountFactory(account_id="DU1000001", users=[trader])
    second = AccountFactory(account_id="DU1000002", users=[trader])
    _run(first, message="positions ok", minutes_ago=4)
    _run(first, kind=SyncKind.EXECUTIONS, message="executions ok", minutes_ago=3)
    _run(first, status=SyncStatus.FAILED, message="positions failed", minutes_ago=2)
    _run(second, message="second ok", minutes_ago=1)
    client = _client(trader)

    def shown(**query):
        response = client.get("/sync-health/", query)
        assert response.status_code == 200
        return _messages(response.content.decode())

    assert shown(kind="EXECUTIONS") == ["executions ok"]
    assert shown(status="FAILED") == ["positions failed"]
    assert shown(kind="POSITIONS", status="SUCCESS") == ["second ok", "positions ok"]
    assert shown(account="DU1000002") == ["second ok"]
    everything = ["second ok", "positions failed", "executions ok", "positions ok"]
    assert shown(kind="NOPE", status="<script>", account="DU9999999") == everything


def test_run_details_warnings_are_expandable():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    _run(
        account,
        reason=SyncReason.MANUAL,
        created=2,
        unchanged=7,
        warnings=["META (25): absent at the broker", "row 3: no symbol"],
        message="9 broker rows; 2 events",
    )

    page = _client(trader).get("/sync-health/").content.decode()

    assert "<summary>2 warnings</summary>" in page
    assert "<li>META (25): absent at the broker</li>" in page and "<li>row 3: no symbol</li>" in page
    assert "2 created" in page and "7 unchanged" in page and "1.5 s" in page
    assert "· Manual</span>" in page


def test_heartbeat_alive_stale_or_missing():
    client = _client(UserFactory())
    assert "No heartbeat" in client.get("/sync-health/").content.decode()

    cache.set(HEARTBEAT_LAST_KEY, timezone.now() - timedelta(seconds=30))
    cache.set(HEARTBEAT_COUNT_KEY, 12)
    page = client.get("/sync-health/").content.decode()
    assert "Alive" in page and "(12 so far)" in page

    cache.set(HEARTBEAT_LAST_KEY, timezone.now() - timedelta(minutes=10))
    assert "Stale</span> Last heartbeat 10 minutes ago" in client.get("/sync-health/").content.decode()


def test_position_sync_state_per_account():
    trader = UserFactory()
    fresh = AccountFactory(account_id="DU1000001", users=[trader])
    stale = AccountFactory(account_id="DU1000002", users=[trader])
    _run(fresh, minutes_ago=1)
    _run(stale, minutes_ago=120)

    page = _client(trader).get("/sync-health/").content.decode()

    assert re.search(r"DU1000001.*?Fresh</span>", page, re.S)
    assert re.search(r"DU1000002.*?Stale</span>", page, re.S)


def test_runs_paginate_newest_first():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    for n in range(PAGE_SIZE + 3):
        _run(account, message=f"run {n}", minutes_ago=n)
    client = _client(trader)

    first = client.get("/sync-health/", {"status": "SUCCESS"}).content.decode()
    second = client.get("/sync-health/", {"status": "SUCCESS", "page": 2}).content.decode()

    assert _messages(first)[0] == "run 0" and len(_messages(first)) == PAGE_SIZE
    assert "status=SUCCESS&amp;page=2" in first
    assert _messages(second) == [f"run {n}" for n in range(PAGE_SIZE, PAGE_SIZE + 3)]


@pytest.mark.parametrize("size", [2, 20])
def test_sync_health_queries_do_not_grow_with_runs(size, django_assert_num_queries):
    trader = UserFactory()
    accounts = [AccountFactory(users=[trader]) for _ in range(2)]
    for n in range(size):
        _run(accounts[n % 2], minutes_ago=n, warnings=["w"] * n)
    client = _client(trader)
    # user (session cached), accounts with their sync state, their latest runs, the oldest running run, the
    # failures of the last hour, the open differences with the broker, page count, page rows
    with django_assert_num_queries(8):
        page = client.get("/sync-health/").content.decode()
    assert len(_messages(page)) == size
