"""Execution ingest, accounts sync and Flex import against broker data that is wrong (issue #16).

A structurally wrong answer skips the run and writes nothing; one bad row is that row's warning
(naming the row and the field), never the whole account's failure on every run; an impossible
settlement date from the broker is refused with a warning and the calendar's date used instead.
The boundary's side is tested in tests/core/test_broker_validation.py.
"""

from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DataError

from core.brokers.simulated import SimulatedBroker
from core.models import SkipReason, SyncKind, SyncRun, SyncStatus
from marketdata.models import Instrument
from tests.core.test_broker_validation import BAD_EXECUTIONS
from tests.factories import AccountFactory, AccountRowFactory, BrokerStateFactory, ExecutionRowFactory
from tests.flex_reports import ACCOUNT as FLEX_ACCOUNT
from tests.flex_reports import flex_xml, trade_row
from trading.models import Account, CashFlow, Execution, SettlementStatus, SettlementTracking
from trading.services import flex
from trading.services.accounts import accounts_sync
from trading.services.executions import executions_ingest, executions_ingest_accounts

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def broker(settings):
    return SimulatedBroker(settings.BROKER_STATE_FILE)


def set_section(broker_state, section: str, value) -> None:
    with broker_state.edit() as state:
        broker_state.account(state, ACCOUNT)[section] = value


# --- a structurally wrong answer --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("section", "value"),
    [("executions", "oops"), ("executions", {"exec_id": "e1"}), ("cash_flows", "oops"), ("cash_flows", {"id": "1"})],
    ids=["executions-string", "executions-object", "cash-flows-string", "cash-flows-object"],
)
def test_a_wrong_typed_section_skips_the_ingest_and_writes_nothing(broker_state, broker, account, section, value):
    set_section(broker_state, section, value)

    run = executions_ingest(account=account, broker=broker)

    assert (run.status, run.skip_reason) == (SyncStatus.SKIPPED, SkipReason.REQUEST_FAILED)
    assert section in run.message and "not a list" in run.message
    assert not Execution.objects.exists() and not CashFlow.objects.exists() and not Instrument.objects.exists()


# --- one bad row ------------------------------------------------------------------------------------
def test_a_fill_time_that_overflows_is_a_warning_and_later_accounts_are_ingested(broker_state, broker):
    """It raised OverflowError out of the ingest: the run stayed RUNNING and no later account was ingested."""
    AccountFactory(account_id="DU0000001")
    AccountFactory(account_id=ACCOUNT)
    AccountFactory(account_id="DU9000000")
    rows = {
        "DU0000001": [ExecutionRowFactory(exec_id="first.bad", time="0001-01-01T00:00:00+14:00")],
        ACCOUNT: [ExecutionRowFactory(exec_id="second.good")],
        "DU9000000": [ExecutionRowFactory(exec_id="third.good", time="2026-11-23T15:00:00Z")],
    }
    broker_state.write(
        BrokerStateFactory(accounts=[AccountRowFactory(account_id=a, executions=r) for a, r in rows.items()])
    )

    runs = executions_ingest_accounts(broker=broker)

    assert [(r.account.account_id, r.status) for r in runs] == [
        ("DU0000001", SyncStatus.SUCCESS),
        (ACCOUNT, SyncStatus.SUCCESS),
        ("DU9000000", SyncStatus.SUCCESS),
    ]
    assert not SyncRun.objects.filter(status=SyncStatus.RUNNING).exists()
    assert sorted(Execution.objects.values_list("exec_id", flat=True)) == ["second.good", "third.good"]
    (warning,) = runs[0].warnings
    assert "executions[0] (first.bad)" in warning and "time" in warning


def test_every_bad_row_is_skipped_with_a_warning_and_the_good_rows_land(broker_state, broker, account):
    bad = [
        ExecutionRowFactory(**{"exec_id": f"bad.{name}", **overrides})
        for name, (overrides, _) in BAD_EXECUTIONS.items()
    ]
    good = [
        ExecutionRowFactory(exec_id="good.1", time="2026-11-16T15:00:00Z"),
        ExecutionRowFactory(exec_id="good.2", side="SELL", quantity="40", time="2026-11-17T15:00:00Z"),
    ]
    set_section(broker_state, "executions", [good[0], *bad, good[1]])

    run = executions_ingest(account=account, broker=broker)

    assert run.status == SyncStatus.SUCCESS and run.created == 2
    assert sorted(Execution.objects.values_list("exec_id", flat=True)) == ["good.1", "good.2"]
    assert list(Instrument.objects.values_list("symbol", flat=True)) == ["AAPL"]
    assert SettlementTracking.objects.count() == 2
    skipped = [w for w in run.warnings if "row skipped" in w]
    assert len(skipped) == len(BAD_EXECUTIONS)
    for index, (name, (_, field)) in enumerate(BAD_EXECUTIONS.items(), start=1):
        assert any(f"executions[{index}]" in w and field in w for w in skipped), name
    assert executions_ingest(account=account, broker=broker).status == SyncStatus.SUCCESS  # and on every run


# --- settlement dates from the broker -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("broker_date", "problem"),
    [("2020-01-01", "before the trade date"), ("2029-11-23", "after the trade date")],
    ids=["years-before", "years-after"],
)
def test_an_impossible_broker_settlement_date_is_refused_for_the_calendars(
    broker_state, broker, account, broker_date, problem
):
    """A date years before the trade date was stored, and the fill counted as settled since then."""
    set_section(broker_state, "executions", [ExecutionRowFactory(exec_id="e1", settlement_date=broker_date)])

    run = executions_ingest(account=account, broker=broker)

    assert run.status == SyncStatus.SUCCESS
    execution = Execution.objects.get()
    assert execution.trade_date == date(2026, 11, 20)
    assert execution.broker_settlement_date is None
    assert execution.settlement_date == date(2026, 11, 23)  # Friday + 1 settlement day
    (warning,) = run.warnings
    assert "execution e1" in warning and broker_date in warning and problem in warning
    assert "computed from the calendar" in warning
    assert SettlementTracking.objects.get().status == SettlementStatus.SETTLED  # by the calendar's date


def test_a_plausible_broker_settlement_date_is_kept(broker_state, broker, account):
    set_section(broker_state, "executions", [ExecutionRowFactory(exec_id="e1", settlement_date="2026-11-24")])

    run = executions_ingest(account=account, broker=broker)

    assert run.warnings == []
    execution = Execution.objects.get()
    assert execution.broker_settlement_date == execution.settlement_date == date(2026, 11, 24)


# --- accounts -------------------------------------------------------------------------------------
def test_an_account_id_that_does_not_fit_is_skipped_and_the_other_accounts_sync(broker_state, broker):
    """It failed the accounts sync (one transaction) for every account, on every run."""
    broker_state.write(
        BrokerStateFactory(
            accounts=[
                AccountRowFactory(account_id="DU1"),
                AccountRowFactory(account_id="X" * 100),
                AccountRowFactory(account_id="DU2"),
            ]
        )
    )

    result = accounts_sync(broker=broker)

    assert result.created == ["DU1", "DU2"]
    assert sorted(Account.objects.values_list("account_id", flat=True)) == ["DU1", "DU2"]
    (warning,) = result.warnings
    assert "accounts[1]" in warning and "account_id" in warning and "100 characters" in warning


def test_an_ingest_creates_the_accounts_that_fit(broker_state, broker):
    broker_state.write(
        BrokerStateFactory(accounts=[AccountRowFactory(account_id="X" * 100), AccountRowFactory(account_id="DU2")])
    )

    runs = executions_ingest_accounts(broker=broker)

    assert [(r.account.account_id, r.status, r.kind) for r in runs] == [
        ("DU2", SyncStatus.SUCCESS, SyncKind.EXECUTIONS)
    ]


# --- the Flex import command --------------------------------------------------------------------------
def test_import_flex_skips_oversized_rows_with_a_reason_and_imports_the_rest(tmp_path):
    """It printed a raw traceback (InvalidOperation) and imported nothing."""
    AccountFactory(account_id=FLEX_ACCOUNT)
    rows = [
        trade_row(tradeID="1", ibExecID="good.1"),
        trade_row(tradeID="2", ibExecID="bad.2", symbol="S" * 300),
        trade_row(tradeID="3", ibExecID="E" * 300),
        trade_row(tradeID="4", ibExecID="bad.4", quantity="99999999999999999999"),
    ]
    path = tmp_path / "oversized.xml"
    path.write_bytes(flex_xml(*rows))
    out = StringIO()

    call_command("import_flex", str(path), stdout=out)

    text = out.getvalue()
    assert "fills created=1 " in text and "trades skipped=3" in text
    assert list(Execution.objects.values_list("exec_id", flat=True)) == ["good.1"]
    warnings = [line.strip() for line in text.splitlines() if line.strip().startswith("warning:")]
    assert len(warnings) == 3
    for trade_id, field in (("2", "symbol"), ("3", "exec_id"), ("4", "quantity")):
        assert any(w.startswith(f"warning: trade {trade_id} ") and field in w for w in warnings), trade_id
    assert SyncRun.objects.get().status == SyncStatus.SUCCESS


def test_import_flex_reports_a_data_error_without_a_traceback(monkeypatch, tmp_path):
    """Whatever still fails at the database is a CommandError (its message, exit 1), not a traceback."""
    AccountFactory(account_id=FLEX_ACCOUNT)
    path = tmp_path / "report.xml"
    path.write_bytes(flex_xml(trade_row()))

    def rejected(**kwargs):
        raise DataError("value too long for type character varying(32)")

    monkeypatch.setattr(flex, "executions_upsert", rejected)

    with pytest.raises(CommandError, match=r"nothing imported: DataError: value too long") as error:
        call_command("import_flex", str(path))

    assert error.value.returncode == 1
    assert not Execution.objects.exists()
    assert SyncRun.objects.get().status == SyncStatus.FAILED


def test_an_adapter_that_raises_fails_its_run_and_the_next_account_is_ingested(broker_state, broker):
    """Defence behind the boundary: whatever an adapter raises besides BrokerError/BrokerUnavailable
    finishes the run FAILED with the reason, instead of leaving it RUNNING and stopping the loop."""
    AccountFactory(account_id="DU0000001")
    AccountFactory(account_id=ACCOUNT)

    class Broken(SimulatedBroker):
        def executions(self, account_id, since=None):
            if account_id == "DU0000001":
                raise OverflowError("date value out of range")
            return super().executions(account_id, since=since)

    runs = executions_ingest_accounts(broker=Broken(broker.path), account_ids=["DU0000001", ACCOUNT])

    assert [(r.account.account_id, r.status) for r in runs] == [
        ("DU0000001", SyncStatus.FAILED),
        (ACCOUNT, SyncStatus.SUCCESS),
    ]
    assert runs[0].message == "OverflowError: date value out of range"
    assert not SyncRun.objects.filter(status=SyncStatus.RUNNING).exists()
