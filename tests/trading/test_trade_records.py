"""The 27-field trade record: the API, the JSONL and CSV export, fills without an order of ours."""

import csv
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from marketdata.models import Quote
from trading.fx import TRADE_RECORD_BASE_FIELDS
from trading.models import PaperTrade
from trading.rules.trade_records import TRADE_RECORD_FIELDS, TradeRecordInput, trade_record
from trading.services.signals import SignalInput, paper_trades_monitor, signal_create, signal_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_trade(paper_account, aapl, clock):
    signal, _ = signal_create(
        account=paper_account,
        data=SignalInput(
            signal_id="s-1",
            symbol="AAPL",
            action="BUY",
            entry_price=Decimal("100.00"),
            stop_loss=Decimal("98.00"),
            take_profit=Decimal("104.00"),
            risk_amount=Decimal("200"),
            strategy="breakout",
            entry_type="market",
            reasoning="broke the morning range on volume",
            indicators=["vwap", "rsi"],
        ),
    )
    signal_execute(signal=signal)
    clock.set(clock.now + timedelta(minutes=30))
    Quote.objects.update(bid=Decimal("104.00"), ask=Decimal("104.10"), at=clock.now)
    paper_trades_monitor()


def test_the_jsonl_line_of_a_paper_trade(closed_trade, settings):
    settings.TRADING_BOT_VERSION = "1.0.0"
    out = StringIO()
    call_command("export_trade_records", "--format", "jsonl", stdout=out, stderr=StringIO())
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    # The seed's 27 fields in its order, then the figures in the account's base currency (trading.fx).
    assert tuple(record) == (*TRADE_RECORD_FIELDS, *TRADE_RECORD_BASE_FIELDS) and len(record) == 33
    config_hash = record.pop("config_hash")
    assert len(config_hash) == 16 and record.pop("session_id") == f"2026-12-08-v1.0.0-{config_hash[:8]}"
    trade = PaperTrade.objects.get()
    assert record.pop("order_id") == f"sig-{trade.signal_id}-1"
    assert record.pop("exit_reasoning") == f"Target reached: paper trade {trade.pk}"
    assert record == {
        "timestamp": "2026-12-08T15:00:00Z",
        "symbol": "AAPL",
        "action": "BUY",
        "quantity": "100",
        "price": "100",
        "total_value": "10000",
        "execution_mode": "PAPER",
        "account_id": "PAPER1",
        "strategy_name": "breakout",
        "entry_type": "market",
        "stop_loss": "98",
        "target": "104",
        "decision_reasoning": "broke the morning range on volume",
        "indicators_used": ["vwap", "rsi"],
        "risk_reward_ratio": "2",
        "outcome": "win",
        "profit_loss": "400",
        "hold_duration_seconds": 1800,
        "exit_timestamp": "2026-12-08T15:30:00Z",
        "slippage": "0",
        "commission": "2",
        "net_profit_loss": "398",
        "bot_version": "1.0.0",
        "currency": "USD",
        "base_currency": "USD",
        "total_value_base": "10000",
        "profit_loss_base": "400",
        "commission_base": "2",
        "net_profit_loss_base": "398",
    }


def test_csv_export_has_the_27_columns(closed_trade):
    out = StringIO()
    call_command("export_trade_records", "--format", "csv", stdout=out, stderr=StringIO())
    rows = list(csv.DictReader(StringIO(out.getvalue())))
    assert (
        tuple(rows[0]) == (*TRADE_RECORD_FIELDS, *TRADE_RECORD_BASE_FIELDS) and rows[0]["indicators_used"] == "vwap;rsi"
    )


def test_api_filters_by_outcome_and_account(closed_trade, client, trader):
    client.force_login(trader)
    assert len(client.get("/api/trading/trade-records", {"account": "PAPER1"}).json()) == 1
    assert client.get("/api/trading/trade-records", {"outcome": "loss"}).json() == []
    assert client.get("/api/trading/trade-records", {"since": "2026-12-09T00:00:00Z"}).json() == []


def test_a_fill_placed_outside_the_product_has_empty_decision_fields():
    record = trade_record(
        TradeRecordInput(
            opened_at=datetime(2026, 12, 8, 15, tzinfo=UTC),
            closed_at=datetime(2026, 12, 8, 16, tzinfo=UTC),
            symbol="MSFT",
            direction="SHORT",
            quantity=Decimal(10),
            average_entry=Decimal("400.50"),
            multiplier=Decimal(1),
            account_id="U1",
            mode="LIVE",
            outcome="LOSS",
            realized_pnl=Decimal("-12.5"),
            commissions=Decimal(2),
            holding_seconds=3600,
            session_id="2026-12-08-abc",
            bot_version="1.0.0",
            config_hash="abc",
        )
    )
    assert record["action"] == "SELL" and record["outcome"] == "loss" and record["profit_loss"] == "-10.5"
    for name in ("order_id", "strategy_name", "decision_reasoning", "stop_loss", "target", "exit_reasoning"):
        assert record[name] is None
    assert record["indicators_used"] == []
