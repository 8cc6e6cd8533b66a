"""The ways a position sync starts: periodic task, command, admin action."""

import json
import zlib
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.brokers.simulated import SimulatedBroker
from core.holders import RUN_LOCKS, TASK_LOCKS
from core.locks import single_flight
from core.models import FailReason, SkipReason, SyncKind, SyncReason, SyncRun, SyncStatus, TaskLock
from core.scheduling import periodic_tasks_ensure
from portfolio.models import Position
from portfolio.tasks import positions_sync_run_task, positions_sync_task
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


def test_position_sync_periodic_task_defaults():
    periodic_tasks_ensure()
    task = PeriodicTask.objects.get(name="Position sync")
    assert task.task == "portfolio.sync_positions"
    assert task.interval.every == 300 and task.interval.period == "seconds"
    assert task.expire_seconds and task.expire_seconds < 300


def test_task_syncs_every_account(account, broker_state):
    result = positions_sync_task.delay().get()
    assert result["status"] == "DONE"
    assert [r["status"] for r in result["runs"]] == ["SUCCESS"]
    assert Position.objects.count() == 2
    assert SyncRun.objects.get().reason == SyncReason.SCHEDULE


def test_task_is_single_flight(account, broker_state):
    with single_flight("portfolio.sync_positions") as acquired:
        assert acquired
        result = positions_sync_task.delay().get()
    assert result["status"] == "SKIPPED"
    assert not SyncRun.objects.exists()


def test_run_task_ignores_a_run_that_is_not_running(account, broker_state):
    run = SyncRun.objects.create(
        kind=SyncKind.POSITIONS, account=account, status=SyncStatus.SUCCESS, started_at=account.created_at
    )
    assert positions_sync_run_task.delay(run.pk).get()["status"] == "SKIPPED"
    assert not Position.objects.exists()


def test_command_json_summary(account, broker_state, capsys):
    call_command("sync_positions", "--json")
    out = json.loads(capsys.readouterr().out)
    (run,) = out["runs"]
    assert run["account"] == ACCOUNT and run["status"] == "SUCCESS" and run["created"] == 2


def test_command_text_summary_and_unknown_account(account, broker_state, capsys):
    call_command("sync_positions", "--account", ACCOUNT)
    assert f"{ACCOUNT}: SUCCESS created=2" in capsys.readouterr().out
    with pytest.raises(CommandError, match="account NOPE is not known to the database or the broker"):
        call_command("sync_positions", "--account", "NOPE")


def test_command_exit_codes(account, broker_state, monkeypatch):
    with broker_state.edit() as state:
        state["connected"] = False
    call_command("sync_positions")  # SKIPPED exits 0: no exception
    assert SyncRun.objects.get().status == SyncStatus.SKIPPED
    broker_state.write({"connected": True, "accounts": [{"account_id": ACCOUNT, "positions": []}]})

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("portfolio.services.sync._write", explode)
    with pytest.raises(SystemExit) as exit_info:
        call_command("sync_positions")
    assert exit_info.value.code == 1


def test_command_exits_1_when_an_account_could_not_be_synced_because_another_run_is_in_progress(
    account, broker_state, capsys
):
    """Not synced is not a success: a script or a person running the command must see it (issue #16)."""
    SyncRun.objects.create(kind=SyncKind.POSITIONS, account=account, started_at=timezone.now())  # queued by the API

    with pytest.raises(SystemExit) as exit_info:
        call_command("sync_positions")

    assert exit_info.value.code == 1
    assert f"{ACCOUNT}: SKIPPED" in capsys.readouterr().out
    assert SyncRun.objects.filter(skip_reason=SkipReason.ANOTHER_RUNNING).count() == 1


def test_command_goes_on_after_an_account_whose_sync_broke_and_exits_1(account, broker_state, monkeypatch, capsys):
    """An error escaping one account's sync (here a broker adapter bug) fails that account's run
    only: every other account is synced and reported, and no run is left RUNNING."""
    broken = AccountFactory(account_id="DU0000001")  # sorts first: before the fix nothing after it ran
    positions = SimulatedBroker.positions

    def adapter_bug(self, account_id):
        if account_id == broken.account_id:
            raise KeyError("conId")
        return positions(self, account_id)

    monkeypatch.setattr(SimulatedBroker, "positions", adapter_bug)
    with pytest.raises(SystemExit) as exit_info:
        call_command("sync_positions", "--json")

    assert exit_info.value.code == 1
    runs = {r["account"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert runs[broken.account_id]["status"] == "FAILED" and runs[broken.account_id]["message"] == "KeyError: 'conId'"
    assert runs[ACCOUNT]["status"] == "SUCCESS"
    assert not SyncRun.objects.filter(status=SyncStatus.RUNNING).exists()
    assert SyncRun.objects.get(account=broken).fail_reason == FailReason.ERROR


def test_the_periodic_sync_is_not_blocked_by_the_lock_of_a_worker_that_died(account, broker_state, other_process):
    """Before: "another sync is running" until the lock's expiry (SINGLE_FLIGHT_LOCK_TTL, 360 s)."""
    owner = other_process.holder(namespace=TASK_LOCKS, key=zlib.crc32(b"portfolio.sync_positions"), alive=False)
    now = timezone.now()
    TaskLock.objects.create(
        name="portfolio.sync_positions", owner=owner, acquired_at=now, expires_at=now + timedelta(seconds=360)
    )

    result = positions_sync_task.delay().get()

    assert result["status"] == "DONE" and [r["status"] for r in result["runs"]] == ["SUCCESS"]


def test_a_run_task_delivered_again_after_its_worker_died_carries_the_run_out(account, broker_state, other_process):
    """Redis hands a dead worker's task to another worker: that one takes the orphaned run over."""
    run = SyncRun.objects.create(kind=SyncKind.POSITIONS, account=account, started_at=timezone.now())
    dead = other_process.holder(namespace=RUN_LOCKS, key=run.pk, alive=False)
    SyncRun.objects.filter(pk=run.pk).update(holder=dead)

    result = positions_sync_run_task.delay(run.pk).get()

    assert result["status"] == "SUCCESS" and result["sync_run"] == run.pk
    assert Position.objects.count() == 2


def test_a_run_task_delivered_twice_leaves_the_run_to_the_live_worker(account, broker_state, other_process):
    run = SyncRun.objects.create(kind=SyncKind.POSITIONS, account=account, started_at=timezone.now())
    alive = other_process.holder(namespace=RUN_LOCKS, key=run.pk, alive=True)
    SyncRun.objects.filter(pk=run.pk).update(holder=alive)

    result = positions_sync_run_task.delay(run.pk).get()

    assert result == {"sync_run": run.pk, "status": "SKIPPED", "message": "another worker is carrying the run out"}
    assert not Position.objects.exists()


def test_admin_sync_now_action(account, broker_state, django_capture_on_commit_callbacks):
    client = Client()
    client.force_login(UserFactory(superuser=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/trading/account/", {"action": "sync_now", "_selected_action": [account.pk]}, follow=True
        )
    assert response.status_code == 200
    assert "Position sync enqueued" in response.content.decode()
    run = SyncRun.objects.get(reason=SyncReason.MANUAL)
    assert run.status == SyncStatus.SUCCESS
    # The new positions sent for the fills (a direct task call from portfolio to trading); the new
    # fills came back through trading's after-fills hook as one more position sync, and it stops there.
    chain = list(SyncRun.objects.order_by("pk").values_list("kind", "reason", "status"))
    assert chain == [
        (SyncKind.POSITIONS, SyncReason.MANUAL, SyncStatus.SUCCESS),
        (SyncKind.EXECUTIONS, SyncReason.AFTER_TRADE, SyncStatus.SUCCESS),
        (SyncKind.POSITIONS, SyncReason.AFTER_TRADE, SyncStatus.SUCCESS),
    ]


@pytest.mark.parametrize(
    "url",
    [
        "/admin/portfolio/position/",
        "/admin/portfolio/positionevent/",
        "/admin/portfolio/accountstatus/",
        "/admin/core/syncrun/",
        "/admin/trading/account/",
        "/admin/marketdata/instrument/",
        "/admin/django_celery_beat/periodictask/",
        "/admin/trading/execution/",
        "/admin/trading/cashflow/",
        "/admin/trading/lot/",
        "/admin/trading/lotmatch/",
        "/admin/trading/roundtrip/",
        "/admin/trading/settlementtracking/",
        "/admin/trading/daytrade/",
        "/admin/trading/tradefrequencytracking/",
        "/admin/trading/cashaccountstate/",
        "/admin/trading/cashviolation/",
        "/admin/trading/riskevent/",
        "/admin/portfolio/accountsnapshot/",
        "/admin/portfolio/performancemetrics/",
    ],
)
def test_admin_pages_load_for_staff_with_data(url, account, broker_state):
    call_command("sync_positions")
    call_command("ingest_executions")
    client = Client()
    client.force_login(UserFactory(superuser=True))
    assert client.get(url).status_code == 200


def test_admin_position_detail_shows_events(account, broker_state):
    call_command("sync_positions")
    client = Client()
    client.force_login(UserFactory(superuser=True))
    position = Position.objects.get(instrument__symbol="AAPL")
    page = client.get(f"/admin/portfolio/position/{position.pk}/change/").content.decode()
    assert "Opened" in page


def test_admin_is_staff_only(account):
    client = Client()
    client.force_login(UserFactory())
    assert client.get("/admin/portfolio/position/").status_code == 302
