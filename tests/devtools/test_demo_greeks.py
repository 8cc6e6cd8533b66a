"""The demo's option position shows its Greeks: the demo broker sends model Greeks for it, and the
steps `make run` takes (sync, ingest, sync, refresh_greeks) store them on the position."""

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.test import Client

from core.brokers.simulated import SimulatedBroker
from devtools.demo import MARGIN_ACCOUNT_ID, demo_state_build, demo_state_write
from portfolio.models import Position, PositionStatus
from tests.factories import UserFactory
from trading.models import Account

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 in New York


def test_the_demo_option_row_carries_model_greeks_the_broker_reads(tmp_path):
    path = tmp_path / "broker_state.json"
    demo_state_write(path=path, state=demo_state_build(now=NOW))
    fetched = SimulatedBroker(path).positions(MARGIN_ACCOUNT_ID)
    assert fetched.warnings == ()
    (option,) = [p for p in fetched.items if p.instrument.sec_type == "OPT"]
    greeks = option.greeks
    assert greeks is not None and greeks.complete
    assert 0 < greeks.delta < 1  # a call, per share
    assert greeks.theta < 0 and greeks.gamma > 0 and greeks.vega > 0 and greeks.iv > 0


@pytest.mark.django_db
def test_the_demo_option_position_shows_its_greeks(settings, tmp_path):
    settings.BROKER = "simulated"
    settings.BROKER_STATE_FILE = str(tmp_path / "broker_state.json")
    demo_state_write(path=tmp_path / "broker_state.json", state=demo_state_build(now=datetime.now(UTC)))
    for command in ("sync_positions", "ingest_executions", "sync_positions", "refresh_greeks"):
        call_command(command, stdout=None)
    option = Position.objects.select_related("greeks").get(
        account__account_id=MARGIN_ACCOUNT_ID, instrument__sec_type="OPT", status=PositionStatus.OPEN
    )
    assert option.quantity == -2  # the short calls
    assert option.greeks.source == "BROKER"
    assert option.greeks.delta > 0 and option.greeks.entry_source == "BROKER"

    trader = UserFactory()
    Account.objects.get(account_id=MARGIN_ACCOUNT_ID).users.add(trader)
    client = Client()
    client.force_login(trader)
    page = client.get(f"/positions/{option.pk}/").content.decode()
    assert "Broker (model Greeks)" in page
    assert "Portfolio risk" in client.get("/", {"account": MARGIN_ACCOUNT_ID}).content.decode()
