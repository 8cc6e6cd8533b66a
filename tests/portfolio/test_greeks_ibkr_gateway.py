"""IBKR's model Greeks over the socket: the IB Gateway simulator serves the state file's ``greeks`` as
option computation ticks (13 live, 83 delayed), with IBKR's sentinels for what is not computed; the
adapter reads ``modelGreeks``, never stores a sentinel, and the refresh prefers them."""

from decimal import Decimal

import pytest

from core.brokers import get_broker
from core.brokers.contracts import SecType
from core.brokers.ibkr import _model_greeks
from portfolio.models import PositionGreeks
from portfolio.services.greeks import greeks_refresh
from portfolio.services.sync import positions_sync
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db
GREEKS = {
    "delta": "0.52",
    "gamma": "0.031",
    "theta": "-0.21",
    "vega": "0.44",
    "iv": "0.183",
    "underlying_price": "598.10",
}


def set_option_greeks(broker_state, greeks) -> None:
    with broker_state.edit() as state:
        for row in broker_state.account(state, ACCOUNT)["positions"]:
            if row["sec_type"] == "OPT":
                row["greeks"] = greeks


def option_spec():
    broker = get_broker()
    return next(p.instrument for p in broker.positions(ACCOUNT).items if p.instrument.sec_type == SecType.OPTION)


def test_the_adapter_reads_ibkr_model_greeks_over_the_socket(gateway, broker_state):
    set_option_greeks(broker_state, GREEKS)
    spec = option_spec()
    assert get_broker().positions(ACCOUNT).items  # IBKR's positions carry no Greeks: they come apart

    fetched = get_broker().option_greeks([spec])

    (row,) = fetched.items
    greeks = row.greeks
    assert (greeks.delta, greeks.gamma, greeks.theta, greeks.vega, greeks.iv) == (
        Decimal("0.52"),
        Decimal("0.031"),
        Decimal("-0.21"),
        Decimal("0.44"),
        Decimal("0.183"),
    )
    assert greeks.underlying_price == Decimal("598.1")
    assert gateway.sim is not None


def test_greeks_ibkr_did_not_compute_arrive_as_sentinels_and_are_never_stored(gateway, broker_state):
    set_option_greeks(broker_state, {"delta": "0.52", "iv": "0.183"})  # no gamma, theta, vega, underlying
    fetched = get_broker().option_greeks([option_spec()])
    (row,) = fetched.items
    assert row.greeks.delta == Decimal("0.52")
    assert row.greeks.gamma is row.greeks.theta is row.greeks.vega is row.greeks.underlying_price is None
    assert not row.greeks.complete


def test_an_option_without_model_greeks_is_left_out_with_a_warning(gateway, broker_state):
    fetched = get_broker().option_greeks([option_spec()])  # the example has no greeks
    assert fetched.items == ()
    assert "no model Greeks from IBKR" in fetched.warnings[0]


def test_the_refresh_prefers_ibkr_model_greeks(gateway, broker_state):
    set_option_greeks(broker_state, GREEKS)
    account = AccountFactory(account_id=ACCOUNT)
    positions_sync(account=account, broker=get_broker())
    result = greeks_refresh(broker=get_broker())
    assert result.from_broker == 1
    greeks = PositionGreeks.objects.get()
    assert greeks.source == "BROKER" and greeks.delta == Decimal("0.52") and greeks.theta == Decimal("-0.21")


class Computation:
    def __init__(self, **values):
        defaults = {"impliedVol": None, "delta": None, "gamma": None, "vega": None, "theta": None, "undPrice": None}
        self.__dict__.update(defaults | values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # ib_async passes vega's and theta's -2 ("not computed") through as numbers: they are not Greeks.
        ({"delta": 0.5, "gamma": 0.03, "vega": -2.0, "theta": -2.0, "impliedVol": 0.2}, {"vega": None, "theta": None}),
        ({"delta": float("nan"), "gamma": 1.7976931348623157e308, "impliedVol": -1.0}, None),
        ({"delta": 0.5, "undPrice": -1.0}, {"delta": Decimal("0.5"), "underlying_price": None}),
    ],
)
def test_ibkr_sentinels_never_become_numbers(values, expected):
    greeks = _model_greeks(Computation(**values))
    if expected is None:
        assert greeks is None
    else:
        for name, value in expected.items():
            assert getattr(greeks, name) == value
    assert _model_greeks(None) is None
