"""Crashes in the middle of a run, on PostgreSQL: the account is not blocked afterwards (issue #16).

- A process killed (SIGKILL) mid-ingest: an immediate rerun proceeds, and marks the killed run FAILED.
- The database restarting mid-sync (its backend terminated, connections refused for a moment): the
  command goes on with the other accounts, reports them all and exits 1; the killed account's run,
  which the command could not even mark FAILED, does not block the next run.

Both need a database other processes (or sessions) share: they are skipped on SQLite, whose holder
checks (a pid on this host) tests/core/test_journal.py covers.
"""

import json
import time
from contextlib import closing

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper

from core.holders import RUN_LOCKS, Holder
from core.models import FailReason, SyncKind, SyncRun, SyncStatus
from portfolio.models import Position
from tests.factories import ExecutionRowFactory
from tests.processes import Process, shared_database_unavailable_reason, subprocess_env, wait_until
from trading.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

FIRST, SECOND, THIRD = "DU1234567", "DU7654321", "DU9999999"


@pytest.fixture(autouse=True)
def _postgresql_only():
    reason = shared_database_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def three_accounts(broker_state):
    """The example account, and two more with fills and positions of their own."""
    with broker_state.edit() as state:
        example = broker_state.account(state, FIRST)
        for account_id, fills in ((SECOND, 2), (THIRD, 1)):
            state["accounts"].append(
                {
                    **example,
                    "account_id": account_id,
                    "executions": [
                        ExecutionRowFactory(exec_id=f"{account_id}.{n}", time=f"2026-11-2{n}T14:32:15Z")
                        for n in range(fills)
                    ],
                    "cash_flows": [],
                }
            )
    return broker_state


def advisory_lock_held(run: SyncRun) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid = %s::int::oid AND objid = %s::int::oid)",
            [RUN_LOCKS, run.pk],
        )
        return cursor.fetchone()[0]


def test_a_process_killed_mid_ingest_does_not_block_an_immediate_rerun(three_accounts, tmp_path, capsys):
    marker = tmp_path / "stalled"
    ingest = Process(
        "ingest",
        ["-m", "tests.stalled_broker", "manage", "ingest_executions"],
        env=subprocess_env(tmp_path, CELERY_BROKER_URL="memory://", STALL_ACCOUNT=SECOND, STALL_MARKER=str(marker)),
        log_dir=tmp_path,
    )
    try:
        wait_until(marker.exists, timeout=60, what="the ingest to reach the second account", processes=(ingest,))
        killed = SyncRun.objects.get(kind=SyncKind.EXECUTIONS, account__account_id=SECOND)
        assert killed.status == SyncStatus.RUNNING and Holder.parse(killed.holder).pid == ingest.pid
        assert SyncRun.objects.get(account__account_id=FIRST).status == SyncStatus.SUCCESS  # committed before

        ingest.kill()
        killed_at = time.monotonic()
        # The kernel closes the dead process's socket, and PostgreSQL ends its session with its locks.
        wait_until(lambda: not advisory_lock_held(killed), timeout=5, what="the killed session's lock to go")
        session_gone_after = time.monotonic() - killed_at

        call_command("ingest_executions")  # exits 0: no SystemExit
    finally:
        ingest.stop()
    out = capsys.readouterr().out
    print(f"killed session gone {session_gone_after * 1000:.0f} ms after SIGKILL")

    assert "another sync is running" not in out
    killed.refresh_from_db()
    assert (killed.status, killed.fail_reason) == (SyncStatus.FAILED, FailReason.HOLDER_GONE)
    assert killed.message == f"abandoned: holder {killed.holder} is gone"
    rerun = SyncRun.objects.filter(account__account_id=SECOND).exclude(pk=killed.pk).get()
    assert (rerun.status, rerun.created) == (SyncStatus.SUCCESS, 2)
    # Nothing doubled: the first account's fill, ingested again, is unchanged.
    assert Execution.objects.count() == 1 + 2 + 1
    assert not SyncRun.objects.filter(status=SyncStatus.RUNNING).exists()


class DatabaseRestart:
    """What a PostgreSQL restart does to a client, made reproducible: its backend is terminated
    (pg_terminate_backend, from another session), then its connection attempts are refused, as a
    server still starting up refuses them, until ``over()``."""

    def __init__(self, monkeypatch) -> None:
        self.down = False
        self.refused = 0
        self.other = connections.create_connection("default")  # the administrator's session
        self.other.ensure_connection()
        connect = DatabaseWrapper.get_new_connection

        def get_new_connection(wrapper, conn_params):
            if self.down:
                import psycopg

                self.refused += 1
                raise psycopg.OperationalError("connection failed: FATAL: the database system is starting up")
            return connect(wrapper, conn_params)

        monkeypatch.setattr(DatabaseWrapper, "get_new_connection", get_new_connection)

    def begin(self, victim) -> None:
        pid = victim.connection.info.backend_pid
        with closing(self.other), self.other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone()[0], f"backend {pid} was not terminated"
        self.down = True

    def over(self) -> None:
        self.down = False


def test_a_database_restart_mid_sync_fails_one_account_and_the_command_goes_on(three_accounts, monkeypatch, capsys):
    import portfolio.services.sync
    from core.brokers.simulated import SimulatedBroker

    restart = DatabaseRestart(monkeypatch)
    positions = SimulatedBroker.positions
    isolated = portfolio.services.sync.sync_run_isolated

    def restart_during_the_second_account(self, account_id):
        if account_id == SECOND and not restart.refused:
            restart.begin(connection)
        return positions(self, account_id)

    def server_back_once_the_account_is_given_up(work, **kwargs):
        try:
            return isolated(work, **kwargs)
        finally:
            restart.over()

    monkeypatch.setattr(SimulatedBroker, "positions", restart_during_the_second_account)
    monkeypatch.setattr(portfolio.services.sync, "sync_run_isolated", server_back_once_the_account_is_given_up)
    with pytest.raises(SystemExit) as exit_info:
        call_command("sync_positions", "--json")

    assert exit_info.value.code == 1
    # Refused: the end of the sync's transaction (Django 5.2 reconnects there), the sync recording its
    # failure, and the command recording it once more after giving the account up.
    assert restart.refused >= 2, restart.refused
    report = {r["account"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert {a: r["status"] for a, r in report.items()} == {FIRST: "SUCCESS", SECOND: "FAILED", THIRD: "SUCCESS"}
    assert "the database system is starting up" in report[SECOND]["message"]
    assert "not recorded" in report[SECOND]["message"]
    # The server refused to record the failure: the run is RUNNING there, but its session, and with
    # it the run's advisory lock, died with the backend.
    killed = SyncRun.objects.get(pk=report[SECOND]["sync_run"])
    assert killed.status == SyncStatus.RUNNING and not advisory_lock_held(killed)
    assert Position.objects.filter(account__account_id=SECOND).count() == 0  # rolled back

    call_command("sync_positions")  # at once, the server back: exits 0, no SystemExit

    out = capsys.readouterr().out
    assert "another sync is running" not in out and f"{SECOND}: SUCCESS" in out
    killed.refresh_from_db()
    assert (killed.status, killed.fail_reason) == (SyncStatus.FAILED, FailReason.HOLDER_GONE)
    assert Position.objects.filter(account__account_id=SECOND).count() == 2
    assert not SyncRun.objects.filter(status=SyncStatus.RUNNING).exists()
