"""Options flow with OPTIONS_FLOW_SOURCE=broker and BROKER=ibkr: the run end to end through the IBKR
adapter and the IB Gateway simulator serving the state file's option chains and prints."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from core.models import SkipReason, SyncStatus
from marketdata.models import WatchedInstrument
from sentiment.models import OptionsFlow, OptionsPattern
from sentiment.services.runs import options_flow_ingest_run
from tests.factories import InstrumentFactory, OptionsPrintRowFactory
from tests.holders import HOLDER_LOCK_QUERIES

pytestmark = pytest.mark.django_db
NEW_YORK = ZoneInfo("America/New_York")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def ibkr_flow(settings, gateway):
    """NVDA watched, at 141.80, one expiry ten days out with strikes 130..155; flow from IBKR."""
    settings.OPTIONS_FLOW_SOURCE = "broker"
    settings.IBKR_OPTIONS_EXPIRIES = 1
    settings.IBKR_OPTIONS_STRIKES = 2
    settings.IBKR_OPTIONS_TICK_WAIT = 2.0
    WatchedInstrument.objects.create(instrument=InstrumentFactory(symbol="NVDA"))
    expiry = datetime.now(NEW_YORK).date() + timedelta(days=10)
    with gateway.state.edit() as state:
        state["quotes"]["NVDA"] = {"last": "141.80"}
        state["option_chains"] = {
            "NVDA": {"expiries": [expiry.isoformat()], "strikes": ["130", "135", "140", "145", "150", "155"]}
        }
        state["option_flow"] = []
    return gateway, expiry


def add_prints(gateway, *rows) -> None:
    with gateway.state.edit() as state:
        state["option_flow"] += [dict(row) for row in rows]


def test_prints_from_ibkr_are_stored_once_sided_and_marked_delayed(ibkr_flow, django_assert_num_queries):
    gateway, expiry = ibkr_flow
    earlier = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    add_prints(
        gateway,
        # bought at the ask: a bullish call; sold at the bid: a bullish put (a short put)
        OptionsPrintRowFactory(
            time=iso(earlier), expiry=expiry.isoformat(), strike="140", right="C", size=300, volume=None,
            price="5.10", bid="5.00", ask="5.10", open_interest=50,
        ),
        OptionsPrintRowFactory(
            time=iso(earlier), expiry=expiry.isoformat(), strike="145", right="P", size=20, volume=None,
            price="6.00", bid="6.00", ask="6.20", open_interest=900,
        ),
        # far from the money: not followed
        OptionsPrintRowFactory(time=iso(earlier), expiry=expiry.isoformat(), strike="155", right="C", volume=None),
    )  # fmt: skip
    run = options_flow_ingest_run()
    assert run.status == SyncStatus.SUCCESS, run.message
    assert run.warnings == []
    rows = {(r.strike, r.right): r for r in OptionsFlow.objects.all()}
    assert set(rows) == {(Decimal("140"), "C"), (Decimal("145"), "P")}
    call, put = rows[(Decimal("140"), "C")], rows[(Decimal("145"), "P")]
    assert (call.source, call.size, call.price, call.side, call.direction) == (
        "broker",
        Decimal("300"),
        Decimal("5.1"),
        "BOUGHT",
        "BULLISH",
    )
    assert (call.premium, call.unusual, call.delayed, call.time) == (Decimal("153000.00"), True, True, earlier)
    assert (put.side, put.direction, put.open_interest, put.underlying_price) == (
        "SOLD",
        "BULLISH",
        Decimal("900"),
        Decimal("141.8"),
    )
    # 300 contracts on an open interest of 50: volume over open interest
    assert list(OptionsPattern.objects.values_list("kind", flat=True)) == ["VOLUME_OVER_OI"]

    # A poll that sees nothing new writes nothing: the lock (3), the run (3), the tracked symbols (2), the
    # known volumes (1), the client id's lease (2 x 2), the stored prints (1 in a savepoint), the patterns
    # of no session, the run's end and the lock's release. On PostgreSQL the task lock, the run and the
    # client id's lease each take and release an advisory lock.
    with django_assert_num_queries(19 + 3 * HOLDER_LOCK_QUERIES):
        again = options_flow_ingest_run()
    assert (again.status, again.created, again.updated) == (SyncStatus.SUCCESS, 0, 0)
    assert OptionsFlow.objects.count() == 2

    # Trading since the last poll is one print: the volume since, at the new last price.
    add_prints(
        gateway,
        OptionsPrintRowFactory(
            time=iso(earlier + timedelta(minutes=20)), expiry=expiry.isoformat(), strike="140", right="C",
            size=25, volume=None, price="5.30", bid="5.30", ask="5.40", open_interest=50,
        ),
    )  # fmt: skip
    third = options_flow_ingest_run()
    assert third.created == 1
    latest = OptionsFlow.objects.filter(strike=140).order_by("-volume").first()
    assert (latest.size, latest.volume, latest.price, latest.side) == (
        Decimal("25"),
        Decimal("325"),
        Decimal("5.3"),
        "SOLD",
    )
    assert OptionsFlow.objects.filter(strike=140).count() == 2


def test_volume_a_failed_run_did_not_store_comes_with_the_next_one(ibkr_flow, monkeypatch):
    gateway, expiry = ibkr_flow
    now = iso(datetime.now(UTC) - timedelta(minutes=5))
    add_prints(gateway, OptionsPrintRowFactory(time=now, expiry=expiry.isoformat(), strike="140", size=10, volume=None))
    with gateway.state.edit() as state:
        state["connected"] = False
    down = options_flow_ingest_run()
    assert (down.status, down.skip_reason) == (SyncStatus.SKIPPED, SkipReason.BROKER_UNREACHABLE)
    with gateway.state.edit() as state:
        state["connected"] = True
    add_prints(gateway, OptionsPrintRowFactory(time=now, expiry=expiry.isoformat(), strike="140", size=4, volume=None))
    back = options_flow_ingest_run()
    assert back.status == SyncStatus.SUCCESS, back.message
    assert list(OptionsFlow.objects.values_list("size", "volume")) == [(Decimal("14"), Decimal("14"))]


def test_live_data_is_not_marked_delayed(ibkr_flow, settings):
    gateway, expiry = ibkr_flow
    settings.IBKR_OPTIONS_MARKET_DATA_TYPE = 1
    add_prints(
        gateway,
        OptionsPrintRowFactory(time=iso(datetime.now(UTC)), expiry=expiry.isoformat(), strike="140", volume=None),
    )
    run = options_flow_ingest_run()
    assert run.status == SyncStatus.SUCCESS, run.message
    assert list(OptionsFlow.objects.values_list("delayed", flat=True)) == [False]
