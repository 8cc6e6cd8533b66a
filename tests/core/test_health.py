"""/healthz and the sync-health page report stuck runs, recent failures and the queue depth; log lines
carry the request, task, account and run they belong to."""

import io
import json
import logging
import re
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from config.celery import app as celery_app
from core.health import queue_depth, run_health
from core.journal import sync_run_fail, sync_run_start
from core.logcontext import ContextFilter, log_bind, log_clear
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db


def _run(account, status, *, minutes_ago: float, kind=SyncKind.POSITIONS) -> SyncRun:
    return SyncRun.objects.create(
        kind=kind, account=account, status=status, started_at=timezone.now() - timedelta(minutes=minutes_ago)
    )


def test_healthz_reports_the_oldest_running_run_failures_and_the_queue():
    account = AccountFactory(account_id="DU1234567")
    _run(account, SyncStatus.FAILED, minutes_ago=90)  # too old to count
    _run(account, SyncStatus.FAILED, minutes_ago=10)
    _run(account, SyncStatus.FAILED, minutes_ago=5, kind=SyncKind.EXECUTIONS)
    stuck = _run(account, SyncStatus.RUNNING, minutes_ago=30, kind=SyncKind.SNAPSHOTS)
    _run(account, SyncStatus.RUNNING, minutes_ago=1)

    body = Client().get("/healthz").json()

    assert body["runs"]["failed_last_hour"] == 2
    oldest = body["runs"]["oldest_running"]
    assert (oldest["id"], oldest["kind"], oldest["account"]) == (stuck.pk, "SNAPSHOTS", "DU1234567")
    assert 1790 <= oldest["age_seconds"] <= 1900
    assert body["queue"]["name"] == "celery" and isinstance(body["queue"]["depth"], int)


def test_healthz_with_nothing_running():
    body = Client().get("/healthz").json()
    assert body["runs"] == {"oldest_running": None, "failed_last_hour": 0}


def test_run_health_is_two_queries_whatever_the_number_of_runs(django_assert_num_queries):
    account = AccountFactory()
    for minutes in range(20):
        _run(account, SyncStatus.FAILED, minutes_ago=minutes)
    with django_assert_num_queries(2):
        run_health()


def test_queue_depth_counts_waiting_messages_and_says_unknown_when_the_broker_is_away(monkeypatch):
    queue = f"depth-test-{uuid.uuid4().hex}"
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_declare(queue=queue)
        producer = connection.Producer()
        for _ in range(3):
            producer.publish({"x": 1}, routing_key=queue)
    assert queue_depth(queue=queue) == 3
    assert queue_depth(queue=f"never-used-{uuid.uuid4().hex}") == 0
    saved = celery_app.conf.broker_url
    # Nothing listens there. Celery prefers CELERY_BROKER_URL from the environment (CI sets it) to
    # its configuration, so both point there for this check.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        assert queue_depth(queue=queue) is None
    finally:
        monkeypatch.undo()
        celery_app.conf.broker_url = saved
    assert queue_depth(queue=queue) == 3


def test_sync_health_page_shows_the_same_for_the_traders_accounts_only():
    trader = UserFactory()
    mine = AccountFactory(account_id="DU1000001", users=[trader])
    theirs = AccountFactory(account_id="DU9999999", users=[UserFactory()])
    _run(mine, SyncStatus.FAILED, minutes_ago=3)
    _run(theirs, SyncStatus.FAILED, minutes_ago=3)
    _run(theirs, SyncStatus.RUNNING, minutes_ago=50)
    client = Client()
    client.force_login(trader)

    page = client.get("/sync-health/").content.decode()

    assert "Nothing running" in page  # the other trader's stuck run is not this trader's business
    assert '<span class="badge badge-bad">1</span>' in page
    assert re.search(r"Queue: \d+ waiting\.", page)


def test_a_request_id_is_made_or_kept_and_returned():
    made = Client().get("/healthz")["X-Request-ID"]
    assert len(made) == 32
    assert Client().get("/healthz", HTTP_X_REQUEST_ID="edge-abc.123")["X-Request-ID"] == "edge-abc.123"
    # Anything else from outside (log injection, absurd sizes) is replaced.
    assert Client().get("/healthz", HTTP_X_REQUEST_ID="a\nb")["X-Request-ID"] != "a\nb"
    assert len(Client().get("/healthz", HTTP_X_REQUEST_ID="x" * 500)["X-Request-ID"]) == 32


def _json_lines(fn) -> list[dict]:
    """Run ``fn`` with a handler configured like LOGGING's JSON console handler; the lines it wrote."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    config = settings.LOGGING["formatters"]["json"]
    factory = config["()"]
    module, name = factory.rsplit(".", 1)
    formatter = getattr(__import__(module, fromlist=[name]), name)(config["fmt"], rename_fields=config["rename_fields"])
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("core.journal")
    logger.addHandler(handler)
    try:
        fn()
    finally:
        logger.removeHandler(handler)
        log_clear()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_journal_lines_name_the_account_and_the_run_in_json():
    account = AccountFactory(account_id="DU1234567")

    def work():
        log_bind(task_id="task-1")
        run, started = sync_run_start(kind=SyncKind.POSITIONS, account=account, reason=SyncReason.SCHEDULE)
        assert started
        logging.getLogger("core.journal").warning("something about the run")
        sync_run_fail(run=run, exc=ValueError("boom"))

    (line,) = [line for line in _json_lines(work) if line["message"] == "something about the run"]
    run = SyncRun.objects.get()
    assert line["level"] == "WARNING" and line["logger"] == "core.journal"
    assert (line["task_id"], line["account"], line["run_id"]) == ("task-1", "DU1234567", str(run.pk))
    assert line["request_id"] == ""


def test_text_format_shows_the_bound_fields():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    log_bind(account="DU1", run_id=7)
    try:
        ContextFilter().filter(record)
    finally:
        log_clear()
    text = logging.Formatter(settings.LOGGING["formatters"]["text"]["format"]).format(record)
    assert text.endswith("x [account=DU1 run_id=7]: hello")
