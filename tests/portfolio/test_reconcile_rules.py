"""The comparison of the broker with the fills (portfolio/rules/reconcile.py), without a database."""

from datetime import date
from decimal import Decimal

import pytest

from marketdata.models import Instrument
from portfolio.models import ReconcileCause
from portfolio.rules.reconcile import figures_agree, reconcile_cause

D = Decimal
TODAY = date(2026, 11, 20)
STOCK = Instrument(symbol="AAPL", sec_type="STK")
CALL = Instrument(symbol="SPY", sec_type="OPT", expiry=date(2026, 11, 20), multiplier=D(100))


@pytest.mark.parametrize(
    ("fills", "fills_avg", "broker", "broker_avg", "agree"),
    [
        ("100", "150.26", "100", "150.26", True),
        ("100", "150.26", "100", "150.26004", True),  # the broker's rounding of its average
        ("100", "150.26", "100", "150.25", False),  # a cent per share apart: not rounding
        ("100", "150.26", "90", "150.26", False),
        ("0", None, "0", None, True),
        ("-50", "11.99", "-50", None, True),  # no average from the broker: the quantity decides
    ],
)
def test_figures_agree(fills, fills_avg, broker, broker_avg, agree):
    result = figures_agree(
        fills_quantity=D(fills),
        fills_average=D(fills_avg) if fills_avg else None,
        broker_quantity=D(broker),
        broker_average=D(broker_avg) if broker_avg else None,
    )
    assert result is agree


@pytest.mark.parametrize(
    ("instrument", "fills", "broker", "moved", "expiring", "cause"),
    [
        (STOCK, "100", "100", False, set(), ReconcileCause.COST),
        (STOCK, "10", "30", True, set(), ReconcileCause.FILL_PENDING),
        (STOCK, "0", "50", False, set(), ReconcileCause.TRANSFER_IN),
        (STOCK, "100", "40", False, set(), ReconcileCause.TRANSFER_OUT),
        (STOCK, "100", "0", False, set(), ReconcileCause.TRANSFER_OUT),
        (STOCK, "100", "-100", False, set(), ReconcileCause.FILL_PENDING),
        (CALL, "-2", "0", True, {"SPY"}, ReconcileCause.EXPIRY),
        (Instrument(symbol="SPY", sec_type="STK"), "0", "-200", True, {"SPY"}, ReconcileCause.EXPIRY),
    ],
)
def test_likely_cause(instrument, fills, broker, moved, expiring, cause):
    assert (
        reconcile_cause(
            instrument=instrument,
            fills_quantity=D(fills),
            broker_quantity=D(broker),
            broker_moved=moved,
            expiring_underlyings=expiring,
            today=TODAY,
        )
        == cause
    )
