"""bench_fx builds its pairs, times the backfill (the steady run asks nothing) and leaves no data behind."""

from io import StringIO

import pytest
from django.core.management import call_command

from marketdata.models import FxRate, Instrument
from trading.models import Account, Execution

pytestmark = pytest.mark.django_db


def test_bench_fx_runs_and_cleans_up():
    out = StringIO()
    call_command("bench_fx", pairs=2, years=1, repeat=1, stdout=out)
    text = out.getvalue()
    assert "2 requests" in text  # one per pair for the first run, none for the steady run
    assert "steady run (nothing asked)" in text
    assert not FxRate.objects.exists() and not Execution.objects.exists()
    assert not Account.objects.exists() and not Instrument.objects.exists()
