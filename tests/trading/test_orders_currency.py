"""Orders in a contract's currency other than the account's base (domain-rules.md "Currencies"): the
order's value converts at the stored rate before the risk checks compare it with net liquidation or cash;
no rate, no guess; a paper account (cash in its base only) refuses them."""

from datetime import timedelta
from decimal import Decimal

import pytest

from core.brokers.base import BrokerAccount
from core.brokers.contracts import InstrumentSpec
from core.brokers.memory import MemoryBroker
from marketdata.fx import fx_rates_store
from marketdata.services import instrument_get_or_create
from portfolio.models import AccountStatus
from tests.factories import AccountFactory, QuoteFactory
from trading.models import OrderStatus
from trading.services.orders import OrderInput, order_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def sap(clock):
    instrument = instrument_get_or_create(spec=InstrumentSpec(symbol="SAP", currency="EUR", exchange="IBIS"))
    QuoteFactory(instrument=instrument, bid=Decimal("99.90"), ask=Decimal("100.00"), last=Decimal("100"), at=clock.now)
    return instrument


@pytest.fixture
def live(settings, trader, clock):
    settings.LIVE_TRADING_ENABLED = True
    settings.BROKER = "simulated"
    account = AccountFactory(account_id="DU1", users=[trader])
    AccountStatus.objects.create(account=account, net_liquidation=Decimal(100_000), read_at=clock.now)
    return account


def place(account, cid, quantity, broker=None):
    data = OrderInput(client_order_id=cid, symbol="SAP", currency="EUR", side="BUY", quantity=Decimal(quantity))
    broker = broker or MemoryBroker(accounts=[BrokerAccount("DU1", "MARGIN", "USD")])
    return order_execute(account=account, data=data, broker=broker).order


def failed(order) -> dict[str, str]:
    return {c["name"]: c["message"] for c in order.checks if not c["passed"]}


def test_a_eur_order_is_sized_in_usd_at_the_stored_rate(live, sap, clock):
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.16")}, day=clock.now.date(), source="test")
    # 90 x 100.00 EUR = 10,440 USD: more than 10% of 100,000 USD, though 9,000 (euros) is not.
    refused = place(live, "big", 90)
    assert refused.status == OrderStatus.REJECTED
    assert set(failed(refused)) == {"position_size"} and "10,440.00" in failed(refused)["position_size"]
    passed = place(live, "ok", 86)
    assert passed.status != OrderStatus.REJECTED, passed.checks


def test_without_a_recent_rate_a_eur_order_is_refused_not_valued_at_one(live, sap, clock, settings):
    settings.FX_RATE_MAX_AGE_DAYS = 7
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.16")}, day=clock.now.date() - timedelta(days=8), source="t")
    refused = place(live, "norate", 10)
    assert refused.status == OrderStatus.REJECTED
    assert "no EUR/USD rate" in failed(refused)["currency"]


def test_a_paper_account_refuses_an_order_in_another_currency(paper_account, sap, clock):
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.16")}, day=clock.now.date(), source="test")
    refused = place(paper_account, "paper", 1)
    assert refused.status == OrderStatus.REJECTED
    assert "paper account holds cash in its base currency (USD) only" in failed(refused)["currency"]
