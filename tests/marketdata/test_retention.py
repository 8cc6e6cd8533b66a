"""Bars past MARKETDATA_RETENTION are pruned; the boundary bar stays; daily bars are kept for good."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from core.pruning import prune
from marketdata.models import Bar
from marketdata.retention import MARKET_DATA_PRUNE_STEPS, retention_days
from tests.factories import BarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 31, 12, tzinfo=UTC)


def test_the_default_rules():
    assert retention_days() == {"1m": 30, "5m": 90, "15m": 180, "1h": 730, "1d": None}


def test_retention_at_the_boundary():
    instrument = InstrumentFactory()
    cutoff = NOW - timedelta(days=30)
    at_cutoff = BarFactory(instrument=instrument, bar_size="1m", start=cutoff)
    just_before = BarFactory(instrument=instrument, bar_size="1m", start=cutoff - timedelta(microseconds=1))
    five_minute = BarFactory(instrument=instrument, bar_size="5m", start=cutoff - timedelta(days=1))  # 90 days
    ancient_daily = BarFactory(instrument=instrument, bar_size="1d", start=datetime(2000, 1, 3, tzinfo=UTC))

    report = prune(now=NOW, steps=MARKET_DATA_PRUNE_STEPS)

    assert report.deleted == {"marketdata.Bar": 1}
    assert set(Bar.objects.values_list("pk", flat=True)) == {at_cutoff.pk, five_minute.pk, ancient_daily.pk}
    assert not Bar.objects.filter(pk=just_before.pk).exists()


def test_the_setting_is_read_and_a_bad_one_is_refused(settings):
    settings.MARKETDATA_RETENTION = "1m=7d,1d=3650d"
    assert retention_days()["1m"] == 7 and retention_days()["1d"] == 3650 and retention_days()["5m"] is None
    settings.MARKETDATA_RETENTION = "2m=7d"
    with pytest.raises(ImproperlyConfigured, match="2m"):
        retention_days()


def test_the_command_dry_run_deletes_nothing(capsys):
    BarFactory(bar_size="1m", start=datetime(2020, 1, 2, 15, tzinfo=UTC))
    call_command("prune_market_data", "--dry-run")
    assert "1 rows would be deleted" in capsys.readouterr().out.replace(",", "")
    assert Bar.objects.count() == 1
    call_command("prune_market_data")
    assert Bar.objects.count() == 0
