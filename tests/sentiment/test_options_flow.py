"""Options flow from the feed file: premium, side, unusual; patterns detected with their prints."""

from decimal import Decimal

import pytest

from core.models import SyncKind, SyncStatus
from sentiment.models import OptionsFlow, OptionsPattern
from sentiment.services.runs import options_flow_ingest_run
from tests.factories import OptionsPrintRowFactory, sentiment_feed

pytestmark = pytest.mark.django_db


def test_prints_are_stored_with_premium_side_direction_and_unusual_flag(feed, settings):
    settings.OPTIONS_FLOW_MIN_PREMIUM = Decimal(100000)
    feed.write(
        sentiment_feed(
            options_flow=[
                OptionsPrintRowFactory(
                    id="big", size=2500, price="4.35", volume=6200, open_interest=1800, kind="SWEEP"
                ),
                OptionsPrintRowFactory(id="sold-put", right="P", price="4.20", volume=10, open_interest=1800),
                OptionsPrintRowFactory(id="mid", price="4.30", volume=10, open_interest=1800),
            ]
        )
    )
    run = options_flow_ingest_run()
    assert (run.kind, run.status, run.created) == (SyncKind.OPTIONS_FLOW, SyncStatus.SUCCESS, 3)
    rows = {r.print_id: r for r in OptionsFlow.objects.all()}
    assert rows["big"].premium == Decimal("1087500")
    assert (rows["big"].side, rows["big"].direction, rows["big"].unusual) == ("BOUGHT", "BULLISH", True)
    assert (rows["sold-put"].side, rows["sold-put"].direction, rows["sold-put"].unusual) == ("SOLD", "BULLISH", False)
    assert (rows["mid"].side, rows["mid"].direction) == ("UNKNOWN", "")
    assert str(rows["big"].session) == "2026-11-20"


def test_ingesting_again_doubles_nothing(feed):
    rows = [OptionsPrintRowFactory(kind="SWEEP", time=f"2026-11-20T15:0{i}:00Z") for i in range(3)]
    feed.write(sentiment_feed(options_flow=rows))
    options_flow_ingest_run()
    first = list(OptionsPattern.objects.values_list("kind", "key"))
    run = options_flow_ingest_run()
    assert (run.created, run.updated, run.unchanged) == (0, 0, 3)
    assert OptionsFlow.objects.count() == 3
    assert list(OptionsPattern.objects.values_list("kind", "key")) == first


def test_repeated_sweeps_pattern_keeps_its_prints(feed):
    rows = [OptionsPrintRowFactory(id=f"s{i}", kind="SWEEP", time=f"2026-11-20T15:{10 * i:02d}:00Z") for i in range(4)]
    rows[3]["time"] = "2026-11-20T15:31:00Z"  # 31 minutes after the first: outside its window
    feed.write(sentiment_feed(options_flow=rows))
    options_flow_ingest_run()
    sweeps = OptionsPattern.objects.get(kind="REPEATED_SWEEPS")
    assert (sweeps.underlying, sweeps.direction, sweeps.value) == ("NVDA", "BULLISH", Decimal(3))
    assert sorted(sweeps.prints.values_list("print_id", flat=True)) == ["s0", "s1", "s2"]


def test_volume_over_open_interest_and_premium_skew(feed):
    rows = [OptionsPrintRowFactory(id=f"p{i}", volume=500, open_interest=100) for i in range(5)]
    feed.write(sentiment_feed(options_flow=rows))
    options_flow_ingest_run()
    kinds = dict(OptionsPattern.objects.values_list("kind", "direction"))
    assert kinds == {"VOLUME_OVER_OI": "BULLISH", "PREMIUM_SKEW": "BULLISH"}
    assert OptionsPattern.objects.get(kind="PREMIUM_SKEW").prints.count() == 5


def test_a_changed_print_redoes_its_session(feed):
    rows = [OptionsPrintRowFactory(id=f"p{i}", volume=500, open_interest=100) for i in range(5)]
    feed.write(sentiment_feed(options_flow=rows))
    options_flow_ingest_run()
    for row in rows:
        row["volume"] = 499  # just below 5x open interest
    feed.write(sentiment_feed(options_flow=rows))
    run = options_flow_ingest_run()
    assert run.updated == 5
    assert not OptionsPattern.objects.filter(kind="VOLUME_OVER_OI").exists()


def test_malformed_prints_are_skipped_and_named(feed):
    feed.write(
        sentiment_feed(
            options_flow=[
                OptionsPrintRowFactory(id="ok"),
                OptionsPrintRowFactory(id="bad-right", right="X"),
                OptionsPrintRowFactory(id="bad-size", size=0),
                OptionsPrintRowFactory(id="float-price", price=4.35),
            ]
        )
    )
    run = options_flow_ingest_run()
    assert run.status == SyncStatus.SUCCESS
    assert list(OptionsFlow.objects.values_list("print_id", flat=True)) == ["ok"]
    assert run.warnings == [
        "options_flow[1] (bad-right): right: expected C or P, got 'X'; row skipped",
        "options_flow[2] (bad-size): size: must be positive, got 0; row skipped",
        "options_flow[3] (float-price): price: expected a decimal string, got float 4.35; row skipped",
    ]
