"""Trade records of open trades (outcome "open", exit fields empty) and the seed's validation on export."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from core.brokers.contracts import InstrumentSpec
from marketdata.services import instrument_get_or_create
from tests.factories import QuoteFactory
from tests.trading.test_signals import quote, signal_input
from trading.models import Execution, ExecutionSource
from trading.rules.trade_records import trade_record_problems
from trading.selectors import trade_records_iter
from trading.services.ledger import ledger_recompute
from trading.services.signals import paper_trade_close, signal_create, signal_execute

pytestmark = pytest.mark.django_db


def export(*args) -> tuple[list[dict], str]:
    out, err = StringIO(), StringIO()
    call_command("export_trade_records", *args, stdout=out, stderr=err)
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_an_open_trade_has_a_record_with_empty_exit_fields(paper_account, aapl, clock, client, trader):
    signal, _ = signal_create(account=paper_account, data=signal_input())
    signal_execute(signal=signal)
    records, err = export()
    assert len(records) == 1 and "1 trade record(s) written, 0 skipped" in err
    record = records[0]
    assert record["outcome"] == "open" and record["order_id"] == f"sig-{signal.pk}-1"
    assert (record["quantity"], record["price"], record["commission"]) == ("100", "100", "1")
    assert record["decision_reasoning"] == "broke the morning range on volume" and record["session_id"]
    for name in ("exit_timestamp", "exit_reasoning", "profit_loss", "net_profit_loss", "hold_duration_seconds"):
        assert record[name] is None
    # fxagg's base-currency figures: the entry's value and commission at the opening day's rate.
    assert (record["currency"], record["total_value_base"], record["commission_base"]) == ("USD", "10000", "1")
    assert record["net_profit_loss_base"] is None
    client.force_login(trader)
    assert [r["outcome"] for r in client.get("/api/trading/trade-records", {"outcome": "open"}).json()] == ["open"]
    assert client.get("/api/trading/trade-records", {"outcome": "win"}).json() == []
    # Closed: the open record becomes the closed one, never both.
    clock.set(clock.now + timedelta(minutes=1))
    quote("104.00", "104.10", clock.now)
    paper_trade_close(trade=signal.paper_trade, reason="MANUAL")
    assert [r["outcome"] for r in export()[0]] == ["win"]


def test_an_open_short_of_several_fills_is_one_record(paper_account, clock):
    instrument = instrument_get_or_create(spec=InstrumentSpec(symbol="MSFT"))
    for n, (quantity, price) in enumerate([(10, "400"), (30, "404")]):
        Execution.objects.create(
            broker="ibkr",
            exec_id=f"TWS-{n}",
            account=paper_account,
            instrument=instrument,
            side="SELL",
            quantity=Decimal(quantity),
            price=Decimal(price),
            commission=Decimal(1),
            executed_at=clock.now + timedelta(minutes=n),
            trade_date=clock.now.date(),
            settlement_date=clock.now.date() + timedelta(days=1),
            source=ExecutionSource.API,
        )
    ledger_recompute(account=paper_account, affected={instrument.pk: clock.now}, today=clock.now.date())
    (record,) = list(trade_records_iter())
    assert record["action"] == "SELL" and record["quantity"] == "40" and record["price"] == "403"
    assert record["outcome"] == "open" and record["order_id"] is None and record["strategy_name"] is None
    assert record["commission"] == "2" and record["timestamp"] == "2026-12-08T15:00:00Z"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"symbol": "toolong"}, "symbol"),
        ({"symbol": "ABCDEF"}, "symbol"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "10001"}, "quantity"),
        ({"price": "0"}, "price"),
        ({"timestamp": "2026-12-08 15:00:00"}, "timestamp"),
        ({"exit_timestamp": "2026-12-08T10:00:00-05:00"}, "exit_timestamp"),
    ],
)
def test_validation_names_the_field(change, field):
    valid = {
        "symbol": "BRK.B",
        "quantity": "10000",
        "price": "0.01",
        "timestamp": "2026-12-08T15:00:00Z",
        "exit_timestamp": None,
    }
    assert trade_record_problems(valid) == []
    problems = trade_record_problems({**valid, **change})
    assert len(problems) == 1 and problems[0].startswith(field)


def test_an_option_symbol_is_not_held_to_the_stock_rule():
    record = {"symbol": "SPY   261218C00600000", "quantity": "2", "price": "5", "timestamp": "2026-12-08T15:00:00Z"}
    assert trade_record_problems(record, sec_type="OPT") == []


def test_an_invalid_record_is_skipped_with_a_warning_naming_it_and_counted(paper_account, aapl, clock):
    signal, _ = signal_create(account=paper_account, data=signal_input())
    signal_execute(signal=signal)  # a valid open trade in AAPL
    big = instrument_get_or_create(spec=InstrumentSpec(symbol="BIG"))
    QuoteFactory(instrument=big, at=clock.now, fetched_at=clock.now)
    Execution.objects.create(  # 20,000 shares bought in TWS: over the seed's 10,000 limit
        broker="ibkr",
        exec_id="TWS-BIG",
        account=paper_account,
        instrument=big,
        side="BUY",
        quantity=Decimal(20000),
        price=Decimal(5),
        commission=Decimal(1),
        executed_at=clock.now,
        trade_date=clock.now.date(),
        settlement_date=clock.now.date() + timedelta(days=1),
        source=ExecutionSource.API,
    )
    ledger_recompute(account=paper_account, affected={big.pk: clock.now}, today=clock.now.date())
    records, err = export()
    assert [r["symbol"] for r in records] == ["AAPL"]
    assert "warning: skipped the trade record of PAPER1 BIG opened 2026-12-08T15:00:00Z" in err
    assert "quantity 20000 is not > 0 and <= 10,000" in err
    assert "1 trade record(s) written, 1 skipped as invalid" in err
