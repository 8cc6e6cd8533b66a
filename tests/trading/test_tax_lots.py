"""Tax lots in Form 8949's columns: the holding period, wash sales, the export."""

import csv
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from marketdata.models import Quote
from trading.rules.tax_lots import ClosedLot, is_long_term, tax_lot_row
from trading.services.orders import OrderInput, order_execute

pytestmark = pytest.mark.django_db


def lot(**kwargs) -> ClosedLot:
    values = {
        "account_id": "U1",
        "symbol": "AAPL",
        "quantity": Decimal(10),
        "multiplier": Decimal(1),
        "opened_on": date(2025, 3, 3),
        "closed_on": date(2026, 3, 4),
        "entry_price": Decimal("100.10"),
        "exit_price": Decimal("120.00"),
    }
    values.update(kwargs)
    return ClosedLot(**values)


def test_a_lot_held_more_than_a_year_is_long_term():
    row = tax_lot_row(lot(), replacement_quantity=Decimal(0))
    assert row["term"] == "long" and row["proceeds"] == "1200.00" and row["cost_basis"] == "1001.00"
    assert row["gain_or_loss"] == "199.00" and row["code"] == "" and not row["wash_sale"]
    # Sold on the anniversary: exactly one year is not more than one year.
    assert tax_lot_row(lot(closed_on=date(2026, 3, 3)), replacement_quantity=Decimal(0))["term"] == "short"
    assert is_long_term(date(2024, 2, 29), date(2025, 3, 1)) and not is_long_term(date(2024, 2, 29), date(2025, 2, 28))


def test_a_loss_with_a_purchase_within_30_days_is_a_wash_sale_with_an_estimated_adjustment():
    losing = lot(opened_on=date(2026, 3, 1), closed_on=date(2026, 3, 10), exit_price=Decimal("90.10"))
    row = tax_lot_row(losing, replacement_quantity=Decimal(5))  # half the shares bought back
    assert row["wash_sale"] and row["code"] == "W" and row["term"] == "short"
    assert row["gain_or_loss"] == "-50.00" and row["adjustment"] == "50.00"  # half of the 100.00 loss disallowed
    assert tax_lot_row(losing, replacement_quantity=Decimal(0))["wash_sale"] is False


def test_export_flags_a_paper_loss_bought_back_within_30_days(paper_account, aapl, clock):
    def trade(cid: str, side: str, bid: str, ask: str, when: datetime) -> None:
        clock.set(when)
        Quote.objects.update(bid=Decimal(bid), ask=Decimal(ask), at=when, fetched_at=when)
        order = order_execute(
            account=paper_account,
            data=OrderInput(client_order_id=cid, symbol="AAPL", side=side, quantity=Decimal(10)),
        ).order
        assert order.status == "FILLED", order.reject_reasons

    trade("b1", "BUY", "99.90", "100.00", datetime(2026, 12, 8, 15, tzinfo=UTC))
    trade("s1", "SELL", "95.00", "95.10", datetime(2026, 12, 9, 15, tzinfo=UTC))
    trade("b2", "BUY", "94.90", "95.00", datetime(2026, 12, 14, 15, tzinfo=UTC) + timedelta(hours=1))
    out = StringIO()
    call_command("export_tax_lots", "--year", "2026", "--account", "PAPER1", stdout=out, stderr=StringIO())
    rows = list(csv.DictReader(StringIO(out.getvalue())))
    assert len(rows) == 1
    row = rows[0]
    assert (row["date_acquired"], row["date_sold"], row["code"], row["term"]) == (
        "2026-12-08",
        "2026-12-09",
        "W",
        "short",
    )
    assert Decimal(row["gain_or_loss"]) == 0 and Decimal(row["adjustment"]) > 0
