"""Cash per currency (#17): a EUR cash balance in a USD account stored on AccountStatus and on snapshots
with its base-currency total, a missing rate flagged (never counted as 1), the broker's rates stored as
today's daily rates, the account-status and snapshots APIs, and the overview's Cash card."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from core.models import SyncStatus
from marketdata.fx import fx_rates_store
from marketdata.models import FxRate
from marketdata.services.fx import fx_rate_save
from portfolio.models import AccountSnapshot, AccountStatus, SnapshotSource
from portfolio.services.snapshots import snapshot_take
from portfolio.services.sync import positions_sync
from tests.factories import EXAMPLE_ACCOUNT_ID, AccountFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return AccountFactory(account_id=EXAMPLE_ACCOUNT_ID)


def _cash(broker_state, *, cash=None, rates=None) -> None:
    with broker_state.edit() as state:
        row = broker_state.account(state, EXAMPLE_ACCOUNT_ID)
        row["cash_balances"] = cash if cash is not None else {"USD": "20000.00", "EUR": "4310.34"}
        row["fx_rates"] = rates if rates is not None else {"EUR": "1.16"}


def _sync(settings, account):
    return positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))


def test_a_eur_cash_balance_in_a_usd_account_is_stored_with_its_base_total(settings, broker_state, account):
    _cash(broker_state)
    run = _sync(settings, account)
    assert run.status == SyncStatus.SUCCESS, run.message
    status = AccountStatus.objects.get(account=account)
    assert status.cash_balances == {"EUR": "4310.3400", "USD": "20000.0000"}
    assert status.cash_total_base == Decimal("24999.9944")  # 20,000 + 4,310.34 x 1.16 (not 24,310.34 at 1)
    assert status.cash_fx_missing == []
    # The broker's rate is today's daily rate, from the broker.
    rate = FxRate.objects.get()
    assert (rate.currency, rate.base, rate.day, rate.rate, rate.source) == (
        "EUR",
        "USD",
        timezone.localdate(),
        Decimal("1.16"),
        "simulated",
    )


def test_a_balance_without_a_broker_rate_converts_at_the_stored_daily_rate(settings, broker_state, account):
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.10")}, day=timezone.localdate(), source="history")
    _cash(broker_state, rates={})
    _sync(settings, account)
    status = AccountStatus.objects.get(account=account)
    assert status.cash_total_base == Decimal("24741.374")  # 20,000 + 4,310.34 x 1.10
    assert status.cash_fx_missing == []


def test_a_missing_rate_leaves_the_total_empty_and_flagged_never_one(settings, broker_state, account):
    _cash(broker_state, cash={"USD": "20000.00", "EUR": "4310.34", "GBP": "100.00"})
    _sync(settings, account)
    status = AccountStatus.objects.get(account=account)
    assert status.cash_balances["GBP"] == "100.0000"
    assert status.cash_total_base is None  # not 25,099.99, nor 24,999.99 presented as the whole
    assert status.cash_fx_missing == ["GBP"]


def test_a_zero_balance_needs_no_rate(settings, broker_state, account):
    _cash(broker_state, cash={"USD": "20000.00", "CHF": "0.00"}, rates={})
    _sync(settings, account)
    status = AccountStatus.objects.get(account=account)
    assert (status.cash_total_base, status.cash_fx_missing) == (Decimal("20000.00"), [])
    assert status.cash_balances["CHF"] == "0.0000"


def test_a_later_sync_updates_the_balances_and_rate_of_the_day(settings, broker_state, account):
    _cash(broker_state)
    _sync(settings, account)
    _cash(broker_state, cash={"USD": "100.00"}, rates={"EUR": "1.17"})
    _sync(settings, account)
    status = AccountStatus.objects.get(account=account)
    assert (status.cash_balances, status.cash_total_base) == ({"USD": "100.0000"}, Decimal("100.00"))
    assert FxRate.objects.get().rate == Decimal("1.17")  # one row per day, replaced


def test_a_staff_correction_of_todays_rate_is_not_undone_by_a_sync(settings, broker_state, account):
    fx_rate_save(rate=FxRate(currency="EUR", base="USD", day=timezone.localdate(), rate=Decimal("1.20")), reason="typo")
    _cash(broker_state)
    _sync(settings, account)
    rate = FxRate.objects.get()
    assert (rate.rate, rate.source) == (Decimal("1.20"), "admin")
    assert rate.history.first().history_change_reason == "typo"


def test_a_failed_sync_changes_nothing(settings, broker_state, account, monkeypatch):
    _cash(broker_state)
    _sync(settings, account)
    _cash(broker_state, cash={"USD": "1.00", "EUR": "2.00"}, rates={"EUR": "1.50"})

    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("portfolio.services.sync._store", boom)
    run = _sync(settings, account)
    assert run.status == SyncStatus.FAILED
    status = AccountStatus.objects.get(account=account)
    assert status.cash_balances == {"EUR": "4310.3400", "USD": "20000.0000"}
    assert FxRate.objects.get().rate == Decimal("1.16")


def test_an_unreachable_broker_changes_nothing(settings, broker_state, account):
    _cash(broker_state)
    _sync(settings, account)
    with broker_state.edit() as state:
        state["connected"] = False
    assert _sync(settings, account).status == SyncStatus.SKIPPED
    assert AccountStatus.objects.get(account=account).cash_total_base == Decimal("24999.9944")
    assert FxRate.objects.count() == 1


def test_snapshots_keep_the_cash_per_currency_broker_and_computed(settings, broker_state, account):
    _cash(broker_state)
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    snapshot = snapshot_take(account=account, broker=broker, at=timezone.now() - timedelta(hours=1))
    assert snapshot.source == SnapshotSource.BROKER
    snapshot.refresh_from_db()
    assert snapshot.cash_balances == {"EUR": "4310.3400", "USD": "20000.0000"}
    assert (snapshot.cash_total_base, snapshot.cash_fx_missing) == (Decimal("24999.9944"), [])
    assert FxRate.objects.get().source == "simulated"

    # The broker goes away: the COMPUTED snapshot takes the balances last read, at the latest stored rate.
    _sync(settings, account)
    fx_rates_store(base="USD", rates={"EUR": Decimal("1.20")}, day=timezone.localdate(), source="history")
    with broker_state.edit() as state:
        state["connected"] = False
    computed = snapshot_take(account=account, broker=broker)
    computed.refresh_from_db()
    assert computed.source == SnapshotSource.COMPUTED
    assert computed.cash_balances == {"EUR": "4310.3400", "USD": "20000.0000"}
    assert computed.cash_total_base == Decimal("25172.408")  # 20,000 + 4,310.34 x 1.20


def test_a_computed_snapshot_without_any_rate_flags_the_currency(settings, broker_state, account):
    AccountStatus.objects.create(
        account=account,
        total_cash=Decimal("1000"),
        cash_balances={"USD": "500.00", "CHF": "450.00"},
        read_at=timezone.now(),
    )
    with broker_state.edit() as state:
        state["connected"] = False
    snapshot = snapshot_take(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    snapshot.refresh_from_db()
    assert (snapshot.cash_total_base, snapshot.cash_fx_missing) == (None, ["CHF"])


# --- APIs and the overview ---------------------------------------------------------------------------
def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_account_status_api_carries_cash_per_currency_to_its_traders_only(settings, broker_state):
    trader, other = UserFactory(), UserFactory()
    account = AccountFactory(account_id=EXAMPLE_ACCOUNT_ID, users=[trader])
    _cash(broker_state, cash={"USD": "20000.00", "EUR": "4310.34", "GBP": "1.00"})
    _sync(settings, account)
    (row,) = _client(trader).get("/api/portfolio/account-status").json()["results"]
    assert row["account"] == EXAMPLE_ACCOUNT_ID
    assert row["cash_balances"] == {"EUR": "4310.3400", "GBP": "1.0000", "USD": "20000.0000"}
    assert (row["cash_total_base"], row["fx_missing"], row["currency"]) == (None, ["GBP"], "USD")
    assert _client(other).get("/api/portfolio/account-status").json()["results"] == []
    assert Client().get("/api/portfolio/account-status").status_code in (401, 403)


def test_snapshots_api_carries_cash_per_currency(settings, broker_state):
    trader = UserFactory()
    account = AccountFactory(account_id=EXAMPLE_ACCOUNT_ID, users=[trader])
    _cash(broker_state)
    snapshot_take(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    AccountSnapshot.objects.create(
        account=account, taken_at=timezone.now() - timedelta(days=3), trade_date=date(2026, 1, 2)
    )
    old, new = _client(trader).get("/api/portfolio/snapshots").json()["results"]
    assert (old["cash_balances"], old["cash_total_base"], old["fx_missing"]) == (None, None, None)
    assert new["cash_balances"] == {"EUR": "4310.3400", "USD": "20000.0000"}
    assert (new["cash_total_base"], new["fx_missing"]) == ("24999.9944", [])


def test_overview_shows_cash_per_currency_and_the_base_total_or_why_not(settings, broker_state):
    trader = UserFactory()
    account = AccountFactory(account_id=EXAMPLE_ACCOUNT_ID, users=[trader])
    _cash(broker_state)
    _sync(settings, account)
    page = _client(trader).get(f"/?account={EXAMPLE_ACCOUNT_ID}").content.decode()
    assert "EUR</span> €4,310.34" in page and "USD</span> $20,000.00" in page
    assert "in USD: $24,999.99" in page

    _cash(broker_state, rates={})  # the broker gives no EUR rate and none is stored
    FxRate.objects.all().delete()
    _sync(settings, account)
    page = _client(trader).get(f"/?account={EXAMPLE_ACCOUNT_ID}").content.decode()
    assert "EUR</span> €4,310.34" in page
    assert "in USD: unknown: no EUR rate" in page
