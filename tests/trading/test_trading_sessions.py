"""Trading sessions: one per (day, bot_version, config_hash), stored with each order, read by the trade record."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from tests.trading.test_signals import quote, signal_input
from trading.models import Order, TradingSession
from trading.services.sessions import trading_session_current
from trading.services.signals import paper_trade_close, paper_trades_monitor, signal_create, signal_execute
from trading.tasks import trading_session_on_worker_start

pytestmark = pytest.mark.django_db


def test_one_session_per_day_version_and_settings(clock, settings):
    first = trading_session_current(started_by="worker")
    assert first.day.isoformat() == "2026-12-08" and first.started_at == clock.now and first.started_by == "worker"
    assert first.settings_snapshot["MAX_ORDER_QUANTITY"] == "10000" and len(first.config_hash) == 16
    clock.set(clock.now + timedelta(hours=1))
    assert trading_session_current() == first  # a restart the same day with the same settings carries on
    settings.MAX_POSITION_PCT = Decimal("0.05")
    changed = trading_session_current()
    assert changed != first and changed.config_hash != first.config_hash
    settings.TRADING_BOT_VERSION = "1.1.0"
    deployed = trading_session_current()
    assert deployed.config_hash == changed.config_hash and deployed.bot_version == "1.1.0"
    clock.set(clock.now + timedelta(days=1))
    assert trading_session_current().day.isoformat() == "2026-12-09"
    assert TradingSession.objects.count() == 4


def test_a_worker_start_and_the_monitor_start_the_days_session(clock):
    trading_session_on_worker_start()
    assert TradingSession.objects.get().started_by == "worker"
    clock.set(clock.now + timedelta(days=1))
    paper_trades_monitor()
    assert TradingSession.objects.order_by("started_at").last().started_by == "monitor"


def test_orders_store_their_session_and_records_read_it(paper_account, aapl, clock, settings):
    signal, _ = signal_create(account=paper_account, data=signal_input())
    trade = signal_execute(signal=signal).paper_trade
    entry = Order.objects.get(pk=trade.entry_order_id)
    assert entry.session is not None and entry.config_hash == entry.session.config_hash
    # The settings change after the entry: the exit is in a new session, the record keeps the entry's.
    settings.EOD_CLOSE_MINUTES = 10
    clock.set(clock.now + timedelta(minutes=1))
    quote("101.00", "101.10", clock.now)
    closed = paper_trade_close(trade=trade, reason="MANUAL")
    assert closed.exit_order.session != entry.session
    out = StringIO()
    call_command("export_trade_records", stdout=out, stderr=StringIO())
    record = json.loads(out.getvalue())
    assert record["session_id"] == entry.session.session_id == f"2026-12-08-v1.0.0-{entry.config_hash[:8]}"
    assert record["config_hash"] == entry.config_hash and record["bot_version"] == "1.0.0"
