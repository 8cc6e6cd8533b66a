"""Options flow through the broker boundary: the simulated broker's state file, and a broker without it."""

import pytest

from core.models import SkipReason, SyncStatus
from marketdata.models import WatchedInstrument
from sentiment.models import OptionsFlow
from sentiment.services.runs import options_flow_ingest_run
from tests.factories import InstrumentFactory, OptionsPrintRowFactory

pytestmark = pytest.mark.django_db


def test_prints_of_tracked_underlyings_come_from_the_simulated_broker(settings, broker_state):
    settings.OPTIONS_FLOW_SOURCE = "broker"
    WatchedInstrument.objects.create(instrument=InstrumentFactory(symbol="NVDA"))
    with broker_state.edit() as state:
        state["option_flow"] = [
            OptionsPrintRowFactory(id="n1", underlying="NVDA"),
            OptionsPrintRowFactory(id="a1", underlying="AAPL"),  # not tracked
            OptionsPrintRowFactory(id="bad", underlying="NVDA", right="Z"),
        ]
    run = options_flow_ingest_run()
    assert run.status == SyncStatus.SUCCESS, run.message
    assert list(OptionsFlow.objects.values_list("source", "print_id")) == [("broker", "n1")]
    assert run.warnings == ["option_flow[2] (bad): right: expected C or P, got 'Z'; row skipped"]


def test_an_unreachable_broker_skips_the_run(settings, broker_state):
    settings.OPTIONS_FLOW_SOURCE = "broker"
    with broker_state.edit() as state:
        state["connected"] = False
    run = options_flow_ingest_run()
    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.BROKER_UNREACHABLE)


def test_a_print_the_broker_says_is_from_delayed_data_is_stored_so(settings, broker_state):
    settings.OPTIONS_FLOW_SOURCE = "broker"
    WatchedInstrument.objects.create(instrument=InstrumentFactory(symbol="NVDA"))
    with broker_state.edit() as state:
        state["option_flow"] = [OptionsPrintRowFactory(id="d1", delayed=True), OptionsPrintRowFactory(id="l1")]
    assert options_flow_ingest_run().status == SyncStatus.SUCCESS
    assert dict(OptionsFlow.objects.values_list("print_id", "delayed")) == {"d1": True, "l1": False}
