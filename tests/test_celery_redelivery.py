"""A task whose worker was SIGKILLed mid-run runs again within the visibility timeout, and doubles nothing.

With ``task_acks_late`` a task is acknowledged when it ends; one whose worker died is never
acknowledged, and Redis hands it to another worker once CELERY_VISIBILITY_TIMEOUT has passed
(kombu's default: an hour). The second delivery must be harmless: here an execution ingest killed
between two accounts runs again, the first account's fills are not doubled, and the second
account's run, left RUNNING by the dead worker, does not make the retry skip ("another sync is
running"): its holder is gone, so it is marked FAILED and a new run ingests the account.

A real worker on a queue of its own, against Redis and the PostgreSQL test database; skipped without them.
"""

import json
import time
import uuid

import pytest
import redis
from django.conf import settings

from core.holders import Holder
from core.models import FailReason, SyncKind, SyncRun, SyncStatus
from tests.factories import AccountFactory, ExecutionRowFactory
from tests.processes import (
    Process,
    redis_unavailable_reason,
    shared_database_unavailable_reason,
    subprocess_env,
    wait_until,
)
from trading.models import Execution

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VISIBILITY_TIMEOUT = 5
STARTUP_TIMEOUT = 30
FIRST, SECOND = "DU1234567", "DU7654321"


def _queue_forgotten(client: redis.Redis, queue: str) -> None:
    """Nothing of this test's queue left in Redis: its list and bindings, and its messages in kombu's
    shared "unacked" table, which any worker with a short visibility timeout would hand out again."""
    for tag, entry in client.hgetall("unacked").items():
        if json.loads(entry)[2] == queue:  # [message, exchange, routing key]
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")


def test_a_task_whose_worker_was_killed_runs_again_and_doubles_nothing(broker_state, tmp_path):
    reason = redis_unavailable_reason() or shared_database_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with broker_state.edit() as state:
        example = broker_state.account(state, FIRST)
        fills = [ExecutionRowFactory(exec_id=f"{SECOND}.{n}", time=f"2026-11-2{n}T14:32:15Z") for n in range(2)]
        state["accounts"].append({**example, "account_id": SECOND, "executions": fills, "cash_flows": []})
    AccountFactory(account_id=FIRST)
    AccountFactory(account_id=SECOND)

    queue = f"test-redelivery-{uuid.uuid4().hex[:12]}"
    marker = tmp_path / "stalled"
    env = subprocess_env(
        tmp_path,
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CACHE_KEY_PREFIX=queue,
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        TASK_QUEUE=queue,  # what the workers send (the after-fills task) stays on this queue
    )

    def worker(name: str, **extra: str) -> Process:
        args = ["worker", "--pool=solo", "-l", "INFO", "-Q", queue, "-n", f"{name}-{queue}@%h"]
        args += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        args = ["-m", "tests.stalled_broker", "celery", "-A", "config", *args]
        return Process(name, args, env={**env, **extra}, log_dir=tmp_path)

    processes: list[Process] = []
    failed = True
    try:
        doomed = worker("worker-a", STALL_ACCOUNT=SECOND, STALL_MARKER=str(marker))
        processes.append(doomed)
        doomed.wait_for_log(" ready.", timeout=STARTUP_TIMEOUT)
        send = Process.celery(
            "send", ["call", "trading.ingest_executions", "--queue", queue], env=env, log_dir=tmp_path
        )
        assert send.popen.wait(timeout=STARTUP_TIMEOUT) == 0, send.log()
        send.stop()

        wait_until(
            marker.exists, timeout=STARTUP_TIMEOUT, what="the ingest to reach the second account", processes=(doomed,)
        )
        left = SyncRun.objects.get(kind=SyncKind.EXECUTIONS, account__account_id=SECOND)
        assert left.status == SyncStatus.RUNNING and Holder.parse(left.holder).pid == doomed.pid
        assert Execution.objects.count() == 1  # the first account's fill, committed before the kill

        doomed.kill()
        killed_at = time.monotonic()
        rescuer = worker("worker-b")
        processes.append(rescuer)

        def ingested_again() -> bool:
            return SyncRun.objects.filter(
                kind=SyncKind.EXECUTIONS, account__account_id=SECOND, status=SyncStatus.SUCCESS
            ).exists()

        # Within the visibility timeout and kombu's look for overdue tasks (a second here), plus a start.
        timeout = VISIBILITY_TIMEOUT + STARTUP_TIMEOUT
        wait_until(ingested_again, timeout=timeout, what="the task to run again", processes=(rescuer,))
        rerun_after = time.monotonic() - killed_at
        failed = False
    finally:
        for process in reversed(processes):
            process.stop()
        _queue_forgotten(redis.Redis.from_url(settings.CELERY_BROKER_URL), queue)
        if failed:
            for process in processes:
                print(f"----- {process.name} log ({process.log_path}) -----\n{process.log()}")
    print(f"redelivery: the killed worker's task ran again {rerun_after:.1f}s after the kill")

    assert rescuer.log().count("Task trading.ingest_executions[") == 2  # received, succeeded: once
    # Nothing doubled: one fill of the first account (ingested twice), two of the second.
    assert Execution.objects.filter(account__account_id=FIRST).count() == 1
    assert Execution.objects.filter(account__account_id=SECOND).count() == 2
    first_runs = SyncRun.objects.filter(kind=SyncKind.EXECUTIONS, account__account_id=FIRST).order_by("pk")
    assert [(r.status, r.created, r.unchanged) for r in first_runs] == [
        (SyncStatus.SUCCESS, 1, 0),  # the killed worker
        (SyncStatus.SUCCESS, 0, 1),  # the second delivery
    ]
    left.refresh_from_db()
    assert (left.status, left.fail_reason) == (SyncStatus.FAILED, FailReason.HOLDER_GONE)
    assert not SyncRun.objects.filter(status=SyncStatus.RUNNING).exists()
