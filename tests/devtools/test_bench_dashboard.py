"""``manage.py bench_dashboard`` at toy sizes: it prints the figures of every page and leaves nothing behind."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import call_command

from core.models import SyncRun
from devtools.management.commands.bench_dashboard import PAGES, PREFIX, USERNAME
from marketdata.models import Instrument
from portfolio.models import AccountSnapshot, AccountStatus, PerformanceMetrics, Position
from tests.factories import AccountFactory, InstrumentFactory
from trading.models import Account, CashFlow, Execution

pytestmark = pytest.mark.django_db

TINY = {"accounts": 2, "positions": 3, "fills": 50, "snapshots": 20, "renders": 2}
ROW = re.compile(r"^\s+(?P<page>[a-z-]+)\s+(?P<median>\d+\.\d)\s+(?P<p95>\d+\.\d)\s+(?P<queries>\d+)", re.MULTILINE)


def _bench(**options) -> str:
    out = StringIO()
    call_command("bench_dashboard", **{**TINY, **options}, stdout=out)
    return out.getvalue()


def _bench_rows() -> dict[str, int]:
    return {
        "accounts": Account.objects.filter(account_id__startswith=PREFIX).count(),
        "instruments": Instrument.objects.filter(symbol__startswith=PREFIX).count(),
        "positions": Position.objects.filter(account__account_id__startswith=PREFIX).count(),
        "fills": Execution.objects.filter(account__account_id__startswith=PREFIX).count(),
        "snapshots": AccountSnapshot.objects.filter(account__account_id__startswith=PREFIX).count(),
        "metrics": PerformanceMetrics.objects.filter(account__account_id__startswith=PREFIX).count(),
        "runs": SyncRun.objects.filter(account__account_id__startswith=PREFIX).count(),
        "statuses": AccountStatus.objects.filter(account__account_id__startswith=PREFIX).count(),
        "cash flows": CashFlow.objects.filter(account__account_id__startswith=PREFIX).count(),
        "users": get_user_model().objects.filter(username=USERNAME).count(),
    }


def test_prints_every_page_twice_and_cleans_up_after_itself():
    other = AccountFactory(account_id="DU7777777")
    InstrumentFactory(symbol="KEEP")
    sessions_before = Session.objects.count()

    output = _bench()

    assert "database: " in output and "2 accounts x 3 open positions, 50 fills, 20 snapshots" in output
    rows = ROW.findall(output)
    assert [page for page, *_ in rows] == PAGES * 2  # as built, then with the account's data doubled
    for page, median, p95, queries in rows:
        assert 0 < float(median) <= float(p95), page
        assert int(queries) > 0, page
    assert "queries per page independent of data size: yes" in output
    assert re.search(r"target: overview median \d+\.\d ms <= 50 ms: (met|MISSED)", output)
    assert "bench data removed" in output
    assert set(_bench_rows().values()) == {0}
    assert Session.objects.count() == sessions_before
    assert Account.objects.filter(pk=other.pk).exists() and Instrument.objects.filter(symbol="KEEP").exists()


def test_keep_leaves_the_data_and_a_later_run_replaces_it():
    _bench(keep=True)
    kept = _bench_rows()
    assert kept["accounts"] == 2 and kept["instruments"] == 6 and kept["users"] == 1
    # Doubling the first account: 3 more positions, its 25 fills again, 10 more snapshots.
    assert kept["positions"] == 2 * 3 + 3 and kept["fills"] == 50 + 25 and kept["snapshots"] == 20 + 10

    _bench()  # starts by removing what the last run kept

    assert set(_bench_rows().values()) == {0}
