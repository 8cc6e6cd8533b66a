"""Order test fixtures (a fixed clock, a paper account with cash, a stock with a fresh quote): imported by
the order tests' conftest and modules, so trading and portfolio tests share them."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.brokers.contracts import InstrumentSpec
from marketdata.services import instrument_get_or_create
from tests.factories import QuoteFactory, UserFactory
from trading.services.accounts import paper_account_create

# A Tuesday, 10:00 in New York: the market is open.
MARKET_OPEN = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, monkeypatch, at: datetime) -> None:
        self.monkeypatch = monkeypatch
        self.set(at)

    def set(self, at: datetime) -> None:
        self.now = at
        self.monkeypatch.setattr("django.utils.timezone.now", lambda: self.now)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """``timezone.now()`` answers ``clock.now`` (MARKET_OPEN until ``clock.set(...)``)."""
    return Clock(monkeypatch, MARKET_OPEN)


@pytest.fixture
def trader(db):
    return UserFactory()


@pytest.fixture
def paper_account(clock, trader):
    return paper_account_create(
        account_id="PAPER1", cash=Decimal(100000), members=[trader], at=datetime(2026, 12, 1, 14, tzinfo=UTC)
    )


@pytest.fixture
def aapl(clock):
    instrument = instrument_get_or_create(spec=InstrumentSpec(symbol="AAPL"))
    QuoteFactory(instrument=instrument, at=clock.now, fetched_at=clock.now)
    return instrument
