"""Flex import: history from IBKR Flex reports, one row per fill with the API, nothing written from a bad file.

The parser (IBKR's Flex quirks) is tested in tests/core/test_flex_parser.py.
"""

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import import_module
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from marketdata.models import Instrument
from tests.factories import AccountFactory, ExecutionRowFactory
from tests.flex_reports import ACCOUNT, ACTIVITY, BUY_1, CALL, FIXTURES, PUT_EXPIRY, SELL, flex_xml, trade_row
from trading.calendars import settlement_date
from trading.models import CashFlow, CashFlowKind, Execution, ExecutionSource, Lot
from trading.services import flex
from trading.services.executions import executions_ingest
from trading.services.flex import FlexImportBusy, FlexImportError, flex_import

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


def nothing_written() -> bool:
    return not (
        Execution.objects.exists()
        or CashFlow.objects.exists()
        or SyncRun.objects.exists()
        or Instrument.objects.exists()
    )


# --- import -------------------------------------------------------------------------------------
def test_import_stores_fills_cash_flows_and_a_sync_run(account):
    result = flex_import(path=ACTIVITY)

    (summary,) = result.accounts
    assert (summary.created, summary.updated, summary.unchanged, summary.cash_flows_created) == (6, 0, 0, 2)
    assert summary.skipped_trades == 0 and summary.ignored_cash_transactions == {"Dividends": 1, "Withholding Tax": 1}
    assert set(Execution.objects.values_list("source", flat=True)) == {ExecutionSource.FLEX}
    assert Execution.objects.get(exec_id=BUY_1).commission == Decimal("0.50")
    assert Execution.objects.get(exec_id=CALL).instrument.multiplier == Decimal(100)
    assert sorted(CashFlow.objects.values_list("kind", "amount", "source")) == [
        (CashFlowKind.DEPOSIT, Decimal("10000.00"), ExecutionSource.FLEX),
        (CashFlowKind.WITHDRAWAL, Decimal("2500.00"), ExecutionSource.FLEX),
    ]
    run = SyncRun.objects.get()
    assert (run.kind, run.reason, run.status, run.account) == (
        SyncKind.EXECUTIONS,
        SyncReason.MANUAL,
        SyncStatus.SUCCESS,
        account,
    )
    assert run.message.startswith(f"flex import of {ACTIVITY}") and run.created == 6
    assert not any("skipped" in w for w in run.warnings)


def test_an_expired_option_is_a_fill_at_zero_that_closes_the_position(account):
    """IBKR reports an expiry only as a Flex book entry (no ibExecID, notes "Ep"); the API never does.
    It closes the short put the statement sold: the premium less the commission is realized."""
    flex_import(path=ACTIVITY)
    expiry = Execution.objects.get(exec_id=PUT_EXPIRY)
    assert (expiry.side, expiry.quantity, expiry.price, expiry.commission) == ("BUY", Decimal(1), Decimal(0), 0)
    assert expiry.executed_at == datetime(2025, 10, 17, 20, 20, tzinfo=UTC)  # 16:20 New York
    assert expiry.realized_pnl == Decimal("95.00")  # sold at 0.96 x 100, 1.00 commission, bought back at 0
    assert not Lot.objects.filter(instrument=expiry.instrument).exists()
    flex_import(path=ACTIVITY)  # the same key on the next import: still one row
    assert Execution.objects.filter(instrument=expiry.instrument).count() == 2


def test_broker_settlement_date_is_stored_and_preferred(account):
    flex_import(path=ACTIVITY)
    sell = Execution.objects.get(exec_id=SELL)
    # Sold Fri 2025-10-10: the calendar says Tue 10-14 (Mon 10-13 is Columbus Day, no settlement);
    # the broker's settleDateTarget says 10-15 and wins.
    assert settlement_date(trade_date=sell.trade_date, sec_type="STK") == date(2025, 10, 14)
    assert sell.broker_settlement_date == date(2025, 10, 15) and sell.settlement_date == date(2025, 10, 15)
    call = Execution.objects.get(exec_id=CALL)  # no settleDateTarget: the calendar skips Columbus Day
    assert call.broker_settlement_date is None and call.settlement_date == date(2025, 10, 14)


def test_realized_pnl_is_fifo(account):
    flex_import(path=ACTIVITY)
    # Buy 50 @ 20 (0.50), Buy 50 @ 24 (0.50), Sell 80 @ 25 (1.00): the domain rules' FIFO example.
    assert Execution.objects.get(exec_id=SELL).realized_pnl == Decimal("278.20")
    lot = Lot.objects.get(instrument__symbol="SOFI")
    assert lot.quantity == Decimal("20") and lot.cost_price == Decimal("24.01")


def test_importing_twice_writes_nothing_new(account):
    flex_import(path=ACTIVITY)
    before = list(Execution.objects.values_list("id", "updated_at", "realized_pnl").order_by("id"))
    flows = list(CashFlow.objects.values_list("id", flat=True).order_by("id"))

    (summary,) = flex_import(path=ACTIVITY).accounts

    assert (summary.created, summary.updated, summary.unchanged, summary.cash_flows_created) == (0, 0, 6, 0)
    assert list(Execution.objects.values_list("id", "updated_at", "realized_pnl").order_by("id")) == before
    assert list(CashFlow.objects.values_list("id", flat=True).order_by("id")) == flows


def test_chunked_upserts_give_the_same_result(monkeypatch, account):
    monkeypatch.setattr(flex, "UPSERT_CHUNK", 1)
    (summary,) = flex_import(path=ACTIVITY, progress=True).accounts
    assert summary.created == 6
    assert Execution.objects.get(exec_id=SELL).realized_pnl == Decimal("278.20")


def _api_fill(**extra) -> dict:
    """BUY_1 as the API reports it: the same execId, time in UTC, commission positive, no settlement date."""
    return ExecutionRowFactory(
        exec_id=BUY_1,
        order_id=12,
        perm_id=4102345601,
        symbol="SOFI",
        con_id=443286233,
        exchange="NASDAQ",
        side="BUY",
        quantity="50",
        price="20",
        commission="0.50",
        time="2025-10-08T14:15:00Z",
        **extra,
    )


def _api_state(broker_state, fills: list[dict]) -> None:
    with broker_state.edit() as state:
        row = broker_state.account(state, ACCOUNT)
        row["executions"] = fills
        row["cash_flows"] = []


def test_a_fill_from_the_api_then_from_flex_is_one_row(settings, broker_state, account):
    _api_state(broker_state, [_api_fill()])
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    api_row = Execution.objects.get()
    assert api_row.broker_settlement_date is None

    (summary,) = flex_import(path=ACTIVITY).accounts

    assert (summary.created, summary.updated) == (5, 1)
    row = Execution.objects.get(exec_id=BUY_1)
    assert row.pk == api_row.pk and row.source == ExecutionSource.API
    assert row.broker_settlement_date == date(2025, 10, 9) and row.settlement_date == date(2025, 10, 9)
    assert (row.commission, row.perm_id, row.executed_at) == (api_row.commission, 4102345601, api_row.executed_at)
    assert Execution.objects.count() == 6


def test_the_api_does_not_erase_the_settlement_date_flex_gave(settings, broker_state, account):
    flex_import(path=ACTIVITY)
    _api_state(broker_state, [_api_fill()])
    run = executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    fill = Execution.objects.get(exec_id=BUY_1)
    assert fill.broker_settlement_date == date(2025, 10, 9)
    # The API only adds what Flex did not know (its per-client order id); nothing is erased.
    assert run.updated == 1 and fill.order_id == 12


def test_flex_does_not_erase_the_api_order_id(settings, broker_state, account):
    _api_state(broker_state, [_api_fill()])
    executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    flex_import(path=ACTIVITY)
    assert Execution.objects.get(exec_id=BUY_1).order_id == 12


# --- what is refused, and writes nothing --------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("flex_not_xml.xml", "not an XML file"),
        ("flex_web_service_error.xml", "a Flex web service response, not a report: 1019 Statement generation"),
        ("flex_bad_number.xml", "<Trade accountId=DU1234567, tradeID=7012345602"),
        ("flex_bad_number.xml", "Trade.tradePrice - Can't convert '24.O0'"),
        ("no_such_file.xml", "cannot read the file: No such file or directory"),
    ],
)
def test_a_bad_file_raises_and_writes_nothing(account, name, problem):
    path = FIXTURES / name
    with pytest.raises(FlexImportError) as error:
        flex_import(path=path)
    assert str(error.value).startswith(f"{path}: ")
    assert problem in str(error.value)
    assert nothing_written()


def test_xml_that_is_not_a_flex_report_is_refused(tmp_path, account):
    path = tmp_path / "statement.xml"
    path.write_text('<?xml version="1.0"?><TradeLog><Trade symbol="SOFI"/></TradeLog>', encoding="utf-8")
    with pytest.raises(FlexImportError, match=r"not a Flex report: the root element is <TradeLog>"):
        flex_import(path=path)
    assert nothing_written()


def test_unknown_account_is_refused_before_anything_is_written():
    AccountFactory(account_id="DU7654321")
    with pytest.raises(FlexImportError) as error:
        flex_import(path=ACTIVITY)
    assert str(error.value) == (
        f"{ACTIVITY}: account {ACCOUNT} in the file is not known; run the accounts sync or add it in the admin"
    )
    assert nothing_written()


def test_a_running_execution_sync_stops_the_import(account):
    SyncRun.objects.create(kind=SyncKind.EXECUTIONS, account=account, started_at=timezone.now())
    with pytest.raises(FlexImportBusy, match="another execution sync of DU1234567 is running"):
        flex_import(path=ACTIVITY)
    assert not Execution.objects.exists() and not CashFlow.objects.exists()
    assert SyncRun.objects.filter(status=SyncStatus.SKIPPED).count() == 1


def test_a_failure_while_writing_rolls_back_and_records_a_failed_run(monkeypatch, account):
    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(flex, "ledger_recompute", broken)
    with pytest.raises(RuntimeError):
        flex_import(path=ACTIVITY)
    assert not Execution.objects.exists() and not CashFlow.objects.exists()
    run = SyncRun.objects.get()
    assert run.status == SyncStatus.FAILED and "RuntimeError: disk full" in run.message


# --- the command --------------------------------------------------------------------------------
def test_command_prints_a_summary(account, tmp_path):
    out = StringIO()
    call_command("import_flex", str(ACTIVITY), stdout=out)
    text = out.getvalue()
    assert f"{ACCOUNT}: fills created=6 updated=0 unchanged=0; cash flows created=2 of 2; trades skipped=0" in text
    assert "(Dividends: 1, Withholding Tax: 1)" in text
    assert "warning" not in text
    skipped = tmp_path / "assignment.xml"
    skipped.write_bytes(flex_xml(trade_row(ibExecID="", notes="A", tradeID="7000000002")))
    call_command("import_flex", str(skipped), stdout=out)
    assert "warning: trade 7000000002" in out.getvalue()


def test_command_json(account):
    out = StringIO()
    call_command("import_flex", str(ACTIVITY), "--json", "--progress", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["source"] == str(ACTIVITY)
    assert summary["accounts"][0]["account_id"] == ACCOUNT and summary["accounts"][0]["created"] == 6


def test_command_on_a_bad_file_exits_1_and_writes_nothing(account, capsys):
    path = FIXTURES / "flex_bad_number.xml"
    # run_from_argv turns a CommandError into exit code returncode (and closes the test's connections,
    # so the command is called directly here).
    with pytest.raises(CommandError, match=re.escape("Can't convert '24.O0'")) as error:
        call_command("import_flex", str(path))
    assert error.value.returncode == 1
    with pytest.raises(CommandError, match="not an XML file"):
        call_command("import_flex", str(FIXTURES / "flex_not_xml.xml"))
    assert nothing_written()


# --- cost ----------------------------------------------------------------------------------------
def _fills(count: int, account_id: str, symbol: str, con_id: int) -> bytes:
    rows = [
        trade_row(
            accountId=account_id,
            symbol=symbol,
            conid=str(con_id),
            ibExecID=f"{symbol}.{n:08x}.01.01",
            tradeID=str(7_000_000_000 + n),
            buySell="BUY" if n % 2 == 0 else "SELL",
            quantity="10" if n % 2 == 0 else "-10",
            dateTime=f"2025101{3 + n // 10};1{n % 6}{n:02d}00",  # Mon 10-13 to Thu 10-16
        )
        for n in range(count)
    ]
    return flex_xml(*rows, account=account_id)


def test_queries_do_not_grow_with_the_number_of_fills(tmp_path):
    counts = []
    for size, symbol, con_id in ((4, "SOFI", 443286233), (40, "HOOD", 482627003)):
        account = AccountFactory()
        path = tmp_path / f"{symbol}.xml"
        path.write_bytes(_fills(size, account.account_id, symbol, con_id))
        with CaptureQueriesContext(connection) as queries:
            (summary,) = flex_import(path=path).accounts
        assert summary.created == size
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_expiries_imported_before_are_rekeyed_and_not_doubled(account):
    """Migration trading 0012 re-keys the expiries earlier imports stored as ``flex-expiry-<tradeID>`` to
    the key the sync and this import now give them, so importing the statement again doubles nothing."""
    rekey = import_module("trading.migrations.0012_execution_option_settlement").expiries_rekey
    flex_import(path=ACTIVITY)
    Execution.objects.filter(exec_id=PUT_EXPIRY).update(exec_id="flex-expiry-7012345690")
    rekey(apps, None)
    assert Execution.objects.filter(exec_id=PUT_EXPIRY).exists()
    flex_import(path=ACTIVITY)
    assert not Execution.objects.filter(exec_id__startswith="flex-expiry-").exists()
    assert Execution.objects.filter(instrument__expiry="2025-10-17").count() == 2
