"""Positions, events and sync endpoints: access, filters, validation, decimals as strings."""

import pytest
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from core.models import SyncKind, SyncRun, SyncStatus
from portfolio.models import PositionStatus
from portfolio.services.sync import positions_sync
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


@pytest.fixture
def trader():
    return UserFactory()


@pytest.fixture
def account(trader):
    return AccountFactory(account_id=ACCOUNT, users=[trader])


@pytest.fixture
def synced(settings, broker_state, account):
    return positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_is_refused():
    assert Client().get("/api/portfolio/positions").status_code == 403


def test_trader_sees_own_positions_with_decimals_as_strings(trader, synced):
    body = client_for(trader).get("/api/portfolio/positions").json()
    assert body["count"] == 2 and {"next", "previous", "results"} <= body.keys()
    aapl = next(r for r in body["results"] if r["symbol"] == "AAPL")
    assert aapl["account"] == ACCOUNT and aapl["sec_type"] == "STK"
    assert aapl["quantity"] == "100.00000000" and aapl["average_price"] == "150.25000000"
    assert aapl["unrealized_pnl"] == "485.0000" and aapl["realized_pnl_estimated"] is False
    assert aapl["status"] == PositionStatus.OPEN and aapl["closed_at"] is None


def test_other_traders_accounts_are_invisible(synced):
    outsider = UserFactory()
    other = AccountFactory(users=[outsider])
    client = client_for(outsider)
    assert client.get("/api/portfolio/positions").json()["count"] == 0
    response = client.get("/api/portfolio/positions", {"account": ACCOUNT})
    assert response.status_code == 400 and "account" in response.json()
    assert client.get("/api/portfolio/positions", {"account": other.account_id}).status_code == 200


def test_staff_sees_all(synced):
    assert client_for(UserFactory(is_staff=True)).get("/api/portfolio/positions").json()["count"] == 2


def test_status_and_symbol_filters(trader, synced, broker_state, settings, account):
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)["positions"][0]["quantity"] = "0"
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    client = client_for(trader)
    assert [r["symbol"] for r in client.get("/api/portfolio/positions").json()["results"]] == ["SPY"]
    closed = client.get("/api/portfolio/positions", {"status": "closed"}).json()["results"]
    assert [(r["symbol"], r["status"]) for r in closed] == [("AAPL", "CLOSED")]
    assert closed[0]["realized_pnl_estimated"] is True
    assert client.get("/api/portfolio/positions", {"status": "all"}).json()["count"] == 2
    assert client.get("/api/portfolio/positions", {"status": "all", "symbol": "aapl"}).json()["count"] == 1


def test_bad_status_is_a_400_naming_the_field(trader, synced):
    response = client_for(trader).get("/api/portfolio/positions", {"status": "sideways"})
    assert response.status_code == 400
    assert "status" in response.json()


def test_events_of_a_position(trader, synced):
    client = client_for(trader)
    position_id = client.get("/api/portfolio/positions", {"symbol": "AAPL"}).json()["results"][0]["id"]
    events = client.get(f"/api/portfolio/positions/{position_id}/events").json()["results"]
    assert [e["kind"] for e in events] == ["OPENED"]
    assert events[0]["quantity_before"] == "0.00000000"
    assert events[0]["quantity_after"] == "100.00000000"
    assert client_for(UserFactory()).get(f"/api/portfolio/positions/{position_id}/events").status_code == 404


def test_sync_request_answers_202_with_run_ids_and_runs_after_commit(
    trader, account, broker_state, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(trader).post("/api/sync/positions", {"account": ACCOUNT}, content_type="application/json")
    assert response.status_code == 202
    (run,) = response.json()["runs"]
    assert run["account"] == ACCOUNT and run["status"] == "RUNNING"
    stored = SyncRun.objects.get(pk=run["id"])
    assert stored.status == SyncStatus.SUCCESS and stored.reason == "API"  # the eager task carried it out


def test_sync_request_for_all_my_accounts(trader, account, broker_state):
    AccountFactory(users=[trader])
    AccountFactory()  # not mine
    response = client_for(trader).post("/api/sync/positions", {}, content_type="application/json")
    assert response.status_code == 202 and len(response.json()["runs"]) == 2


def test_sync_request_for_someone_elses_account_is_a_400(account):
    response = client_for(UserFactory()).post(
        "/api/sync/positions", {"account": ACCOUNT}, content_type="application/json"
    )
    assert response.status_code == 400 and "account" in response.json()


def test_sync_request_while_running_reports_skipped(trader, account):
    SyncRun.objects.create(kind=SyncKind.POSITIONS, account=account, started_at=timezone.now())
    response = client_for(trader).post("/api/sync/positions", {"account": ACCOUNT}, content_type="application/json")
    assert response.status_code == 202
    assert response.json()["runs"][0]["status"] == "SKIPPED"
    assert response.json()["runs"][0]["message"] == "another sync is running"


@pytest.mark.django_db(transaction=True)  # no request transaction: the task is sent at once, as in life
def test_sync_request_when_the_task_queue_is_away_answers_503_and_leaves_no_running_run(
    trader, account, broker_state, monkeypatch
):
    """Before: a 500, and a RUNNING run that blocked the account until the lock TTL (issue #16)."""
    from kombu.exceptions import OperationalError

    from portfolio.tasks import positions_sync_run_task

    def unreachable(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(positions_sync_run_task, "apply_async", unreachable)
    response = client_for(trader).post("/api/sync/positions", {"account": ACCOUNT}, content_type="application/json")

    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == (
        "the sync could not be queued: could not be queued: OperationalError: "
        "Error 111 connecting to redis:6379. Connection refused."
    )
    (run,) = body["runs"]
    assert (run["status"], run["fail_reason"]) == ("FAILED", "ENQUEUE_FAILED")
    assert not SyncRun.objects.filter(status=SyncStatus.RUNNING).exists()

    monkeypatch.undo()  # the queue is back: the next request is not told "another sync is running"
    response = client_for(trader).post("/api/sync/positions", {"account": ACCOUNT}, content_type="application/json")
    assert response.status_code == 202 and response.json()["runs"][0]["status"] == "RUNNING"


def test_sync_status(trader, synced, settings):
    body = client_for(trader).get("/api/sync/status").json()["results"]
    assert len(body) == 1
    (item,) = body
    assert item["account"] == ACCOUNT and item["in_progress"] is False and item["stale"] is False
    assert item["latest_run"]["id"] == synced.pk and item["latest_run"]["status"] == "SUCCESS"
    assert item["last_success_at"] is not None
    settings.POSITION_SYNC_STALE_AFTER = 0
    assert client_for(trader).get("/api/sync/status").json()["results"][0]["stale"] is True


def test_sync_status_never_synced_is_stale(trader, account):
    (item,) = client_for(trader).get("/api/sync/status").json()["results"]
    assert item["latest_run"] is None and item["last_success_at"] is None and item["stale"] is True


def test_sync_status_queries_do_not_grow_with_accounts(trader, django_assert_max_num_queries):
    for _ in range(6):
        account = AccountFactory(users=[trader])
        SyncRun.objects.create(
            kind=SyncKind.POSITIONS,
            account=account,
            started_at=timezone.now(),
            status=SyncStatus.SUCCESS,
            finished_at=timezone.now(),
        )
    client = client_for(trader)
    with django_assert_max_num_queries(4):  # session, user, accounts with annotations, latest runs
        assert len(client.get("/api/sync/status").json()["results"]) == 6


def test_positions_list_queries_do_not_grow_with_rows(trader, synced, django_assert_num_queries):
    client = client_for(trader)
    # user (session cached), count, page
    with django_assert_num_queries(3):
        client.get("/api/portfolio/positions")


def test_live_positions_from_the_broker(trader, account, broker_state):
    client = client_for(trader)
    body = client.get("/api/trading/ibkr/positions").json()
    assert {r["symbol"] for r in body["results"]} == {"AAPL", "SPY"}
    spy = next(r for r in body["results"] if r["symbol"] == "SPY")
    assert spy["average_price"] == "5.12400000" and spy["multiplier"] == "100.00000000"


def test_live_positions_when_the_broker_is_down_is_503(trader, account, broker_state):
    with broker_state.edit() as state:
        state["connected"] = False
    response = client_for(trader).get("/api/trading/ibkr/positions")
    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]
