"""Exchange rates and cash per currency at the broker boundary (#17): the simulated broker's
``cash_balances``, ``fx_rates`` and ``fx_history``, the memory broker, and the IBKR adapter's
``ExchangeRate``/``CashBalance`` account values and cash-pair history, served by the gateway simulator
from the same state file."""

from datetime import date
from decimal import Decimal

import pytest

from core.brokers.base import BrokerError, FxDay
from core.brokers.memory import MemoryBroker
from core.brokers.pacing import pacing_acquire
from core.models import HistoricalRequest
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT

EUR_HISTORY = [
    {"day": "2026-11-02", "rate": "1.1500"},
    {"day": "2026-11-03", "rate": "1.1550"},
    {"day": "2026-11-04", "rate": "not a number"},
    {"day": "2026-11-05", "rate": "1.1610"},
    {"day": "2026-11-06", "rate": "1.1700"},
]


def _multi_currency(broker_state, *, cash=None, rates=None, history=None) -> None:
    with broker_state.edit() as state:
        row = broker_state.account(state, ACCOUNT)
        row["cash_balances"] = cash if cash is not None else {"USD": "20000.00", "EUR": "4310.34"}
        row["fx_rates"] = rates if rates is not None else {"EUR": "1.16"}
        state["fx_history"] = history if history is not None else {"USD": {"EUR": EUR_HISTORY}}


# --- the simulated broker -------------------------------------------------------------------------
def test_simulated_broker_reads_cash_balances_and_rates_of_an_account(broker_state, simulated_broker):
    _multi_currency(broker_state)
    (account,) = simulated_broker.accounts().items
    assert account.values.currency == "USD"
    assert account.values.cash_balances == {"USD": Decimal("20000.00"), "EUR": Decimal("4310.34")}
    assert account.values.fx_rates == {"EUR": Decimal("1.16")}


def test_simulated_broker_skips_malformed_entries_with_a_warning_naming_them(broker_state, simulated_broker):
    _multi_currency(
        broker_state,
        cash={"USD": "100.00", "EUR": 12.5, "euro": "3", "GBP": "-40.00"},
        rates={"EUR": "0", "GBP": "1.27", "JPY": "abc", "USD": "1"},
    )
    fetched = simulated_broker.accounts()
    (account,) = fetched.items
    # A negative balance is a debt, kept; a float, a non-code, a zero or unreadable rate are skipped.
    assert account.values.cash_balances == {"USD": Decimal("100.00"), "GBP": Decimal("-40.00")}
    assert account.values.fx_rates == {"GBP": Decimal("1.27")}  # the base's own rate is 1, not listed
    text = "\n".join(fetched.warnings)
    assert f"accounts ({ACCOUNT}).cash_balances.EUR" in text
    assert f"accounts ({ACCOUNT}).cash_balances.euro" in text
    assert f"accounts ({ACCOUNT}).fx_rates.EUR: must be positive" in text
    assert f"accounts ({ACCOUNT}).fx_rates.JPY" in text
    assert len(fetched.warnings) == 4


def test_simulated_broker_ignores_a_cash_section_of_the_wrong_type_with_a_warning(broker_state, simulated_broker):
    _multi_currency(broker_state, cash=["USD", "1"])  # type: ignore[arg-type]
    fetched = simulated_broker.accounts()
    assert fetched.items[0].values.cash_balances == {}
    assert "cash_balances: a list, not an object keyed by currency" in fetched.warnings[0]


def test_simulated_fx_history_within_the_days_asked_skipping_a_bad_row(broker_state, simulated_broker):
    _multi_currency(broker_state)
    fetched = simulated_broker.fx_history("eur", "usd", date(2026, 11, 3), date(2026, 11, 5))
    assert [(r.day, r.rate) for r in fetched.items] == [
        (date(2026, 11, 3), Decimal("1.1550")),
        (date(2026, 11, 5), Decimal("1.1610")),
    ]
    assert all((r.currency, r.base) == ("EUR", "USD") for r in fetched.items)
    assert "fx_history.USD.EUR[2]" in fetched.warnings[0] and "rate" in fetched.warnings[0]
    assert simulated_broker.fx_history("GBP", "USD", date(2026, 11, 1), date(2026, 11, 30)).items == ()


def test_memory_broker_carries_rates_and_history():
    row = FxDay(currency="EUR", base="USD", day=date(2026, 11, 2), rate=Decimal("1.15"))
    broker = MemoryBroker(accounts=[], fx_history=[row])
    assert broker.fx_history("EUR", "USD", date(2026, 11, 1), date(2026, 11, 2)).items == (row,)
    assert broker.fx_history("EUR", "USD", date(2026, 11, 3), date(2026, 11, 9)).items == ()
    assert broker.fx_requests == [
        ("EUR", "USD", date(2026, 11, 1), date(2026, 11, 2)),
        ("EUR", "USD", date(2026, 11, 3), date(2026, 11, 9)),
    ]


# --- IBKR through the gateway simulator ------------------------------------------------------------
def test_ibkr_reads_exchange_rate_and_cash_balance_per_currency(gateway):
    _multi_currency(gateway.state)
    fetched = gateway.broker().accounts()
    (account,) = fetched.items
    # Per-currency ledger rows; the BASE rows (converted totals, rate 1) and the base's own rate are not.
    assert account.values.cash_balances == {"USD": Decimal("20000.00"), "EUR": Decimal("4310.34")}
    assert account.values.fx_rates == {"EUR": Decimal("1.16")}
    assert account.values.net_liquidation == Decimal("100000.00")
    assert fetched.warnings == ()


def test_ibkr_without_rates_lists_cash_only_in_the_base_currency(gateway):
    fetched = gateway.broker().accounts()
    (account,) = fetched.items
    assert account.values.cash_balances == {"USD": Decimal("25000.00")}  # the gateway's TotalCashValue
    assert account.values.fx_rates == {}


@pytest.mark.django_db
def test_ibkr_fx_history_is_the_cash_pairs_daily_midpoint_through_the_pacing_limiter(gateway):
    _multi_currency(gateway.state)
    broker = gateway.broker(pacer=lambda **kw: pacing_acquire(**kw, max_wait=0))
    fetched = broker.fx_history("EUR", "USD", date(2026, 11, 2), date(2026, 11, 5))
    assert [(r.day, r.rate) for r in fetched.items] == [
        (date(2026, 11, 2), Decimal("1.15")),
        (date(2026, 11, 3), Decimal("1.155")),
        (date(2026, 11, 5), Decimal("1.161")),
    ]
    assert list(HistoricalRequest.objects.values_list("contract", flat=True)) == ["EUR.USD"]


def test_ibkr_fx_history_inverts_a_pair_ibkr_lists_the_other_way_round(gateway):
    # IBKR lists USD.JPY, not JPY.USD: the JPY rate in USD is 1 / the USD.JPY midpoint.
    _multi_currency(gateway.state, history={"JPY": {"USD": [{"day": "2026-11-02", "rate": "150.00"}]}})
    (row,) = gateway.broker().fx_history("JPY", "USD", date(2026, 11, 2), date(2026, 11, 2)).items
    assert (row.currency, row.base, row.day) == ("JPY", "USD", date(2026, 11, 2))
    assert row.rate == Decimal("0.0066666667")


def test_ibkr_fx_history_of_a_range_without_rates_is_empty_with_a_warning(gateway):
    _multi_currency(gateway.state)
    fetched = gateway.broker().fx_history("EUR", "USD", date(2025, 1, 6), date(2025, 1, 10))
    assert fetched.items == () and "no rates" in fetched.warnings[0]
    with pytest.raises(BrokerError, match="not a currency pair"):
        gateway.broker().fx_history("EUR", "EUR", date(2025, 1, 6), date(2025, 1, 10))
