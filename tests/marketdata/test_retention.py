"""Bars past MARKETDATA_RETENTION are pruned; the boundary bar stays; daily bars are kept for good."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from core.pruning import prune
from marketdata.models import Bar
from marketdata.partitions import bar_partitions_ensure
from marketdata.retention import MARKET_DATA_PRUNE_STEPS, bar_cutoffs, market_data_prune, retention_days
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


@pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's")
def test_postgresql_drops_whole_expired_months_and_deletes_the_rest_row_by_row():
    instrument = InstrumentFactory()
    cutoffs = bar_cutoffs(NOW)  # 1m: 2026-12-01 12:00
    created = bar_partitions_ensure(now=NOW, cutoffs={**cutoffs, "1m": datetime(2026, 10, 1, tzinfo=UTC)})
    assert "marketdata_bar_1m_202610" in created and "marketdata_bar_1m_202611" in created
    october = BarFactory(instrument=instrument, bar_size="1m", start=datetime(2026, 10, 15, 15, tzinfo=UTC))
    november = BarFactory(instrument=instrument, bar_size="1m", start=datetime(2026, 11, 30, 15, tzinfo=UTC))
    december_old = BarFactory(instrument=instrument, bar_size="1m", start=datetime(2026, 12, 1, 11, tzinfo=UTC))
    december_kept = BarFactory(instrument=instrument, bar_size="1m", start=datetime(2026, 12, 1, 12, tzinfo=UTC))

    dropped, report = market_data_prune(now=NOW)

    # October and November ended before the cutoff: dropped whole. December's old bar: deleted as a row.
    assert dropped == {"marketdata_bar_1m_202610": 1, "marketdata_bar_1m_202611": 1}
    assert report.deleted == {"marketdata.Bar": 1}
    assert list(Bar.objects.values_list("pk", flat=True)) == [december_kept.pk]
    assert {october.pk, november.pk, december_old.pk}.isdisjoint(Bar.objects.values_list("pk", flat=True))
