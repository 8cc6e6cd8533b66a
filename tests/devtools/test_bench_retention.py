"""``manage.py bench_retention`` at toy sizes: it writes, prunes, reports every table and leaves nothing behind."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from core.models import SyncKind, SyncRun, SyncStatus, TaskLock
from devtools.management.commands import bench_retention
from marketdata.models import Instrument
from portfolio.models import AccountSnapshot, PerformanceMetrics, Position, PositionEvent, PositionSnapshot
from tests.factories import AccountFactory
from trading.models import Account

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _hourly_runs(monkeypatch):
    # An ingest and a sync run an hour instead of every minute and 5 minutes: the same code, fewer rows.
    monkeypatch.setattr(bench_retention, "INGEST_EVERY", 3600)
    monkeypatch.setattr(bench_retention, "SYNC_EVERY", 3600)
    monkeypatch.setattr(bench_retention, "EVENT_MINUTES", {14 * 60, 19 * 60})


def _bench(**options) -> str:
    out = StringIO()
    call_command("bench_retention", **{"accounts": 2, "days": 100, "positions": 2, **options}, stdout=out)
    return out.getvalue()


def _bench_rows() -> dict[str, int]:
    prefix = bench_retention.PREFIX
    return {
        "accounts": Account.objects.filter(account_id__startswith=prefix).count(),
        "instruments": Instrument.objects.filter(symbol__startswith=prefix).count(),
        "positions": Position.objects.filter(account__account_id__startswith=prefix).count(),
        "events": PositionEvent.objects.filter(position__account__account_id__startswith=prefix).count(),
        "snapshots": AccountSnapshot.objects.filter(account__account_id__startswith=prefix).count(),
        "position snapshots": PositionSnapshot.objects.filter(snapshot__account__account_id__startswith=prefix).count(),
        "metrics": PerformanceMetrics.objects.filter(account__account_id__startswith=prefix).count(),
        "runs": SyncRun.objects.filter(account__account_id__startswith=prefix).count(),
        "account-less runs": SyncRun.objects.filter(message=bench_retention.RUN_MARK).count(),
        "sessions": Session.objects.filter(session_key__startswith=bench_retention.KEY_PREFIX).count(),
        "locks": TaskLock.objects.filter(name__startswith=bench_retention.KEY_PREFIX).count(),
    }


def test_writes_prunes_reports_and_cleans_up_after_itself():
    other = AccountFactory(account_id="DU7777777")
    now = timezone.now()
    old_run = SyncRun.objects.create(
        kind=SyncKind.POSITIONS, account=other, status=SyncStatus.SUCCESS, started_at=now - timedelta(days=10)
    )
    Session.objects.create(session_key="someone", session_data="", expire_date=now + timedelta(days=1))

    output = _bench()

    assert f"database: {connection.vendor}; 2 accounts x 100 days, 2 open positions each" in output
    assert "written per account per day: trading_syncrun " in output
    dry = re.search(r"prune --dry-run: ([\d,]+) rows would be deleted", output)
    real = re.search(r"prune: ([\d,]+) rows deleted in", output)
    assert dry and real and dry.group(1) == real.group(1) and int(real.group(1).replace(",", "")) > 0
    assert "the dry run counted otherwise" not in output
    for model in bench_retention.TABLES:
        # rows before, MB before (PostgreSQL only), rows after
        assert re.search(rf"^  {model._meta.db_table}\s+[\d,]+\s+(-|[\d,.]+)\s+[\d,]+", output, re.MULTILINE), model
    assert re.search(r"^  total\s+[\d,]+", output, re.MULTILINE)
    assert "x 50 = 100 accounts" in output
    assert re.search(r"a day later, prune: [\d,]+ rows deleted", output)
    assert "bench data removed" in output
    assert set(_bench_rows().values()) == {0}
    assert Account.objects.filter(pk=other.pk).exists()
    assert SyncRun.objects.filter(pk=old_run.pk).exists()
    assert Session.objects.filter(session_key="someone").exists()


def test_the_prune_keeps_ninety_days():
    output = _bench(keep=True, days=100, accounts=1)

    assert "bench data removed" not in output
    rows = _bench_rows()
    assert rows["accounts"] == 1 and rows["runs"] > 0
    before = timezone.now() - timedelta(days=90)
    # Of what is older than 90 days only FAILED runs (kept a year) and one snapshot a day remain.
    older = SyncRun.objects.filter(account__account_id__startswith=bench_retention.PREFIX, started_at__lt=before)
    assert set(older.values_list("status", flat=True)) == {SyncStatus.FAILED}
    old_days = AccountSnapshot.objects.filter(
        account__account_id__startswith=bench_retention.PREFIX, taken_at__lt=before
    )
    assert old_days.count() == old_days.values("trade_date").distinct().count() > 0
    bench_retention.Command._cleanup()
    assert set(_bench_rows().values()) == {0}


def test_sizes_must_be_positive():
    with pytest.raises(CommandError, match="at least 1"):
        _bench(accounts=0)
