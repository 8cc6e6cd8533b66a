"""On a fresh database the first position sync creates the broker's accounts and syncs them."""

import json

import pytest
from django.core.management import CommandError, call_command

from core.brokers.simulated import SimulatedBroker
from core.locks import lock_acquire
from core.models import SyncKind, SyncRun, SyncStatus, TaskLock
from portfolio.models import AccountStatus, Position
from portfolio.services.sync import positions_sync_accounts
from portfolio.tasks import positions_sync_task
from tests.factories import EXAMPLE_ACCOUNT_ID, AccountFactory, AccountRowFactory, StockPositionRowFactory
from trading.models import Account, AccountType

pytestmark = pytest.mark.django_db


class CountingBroker(SimulatedBroker):
    """The simulated broker, counting the calls to accounts()."""

    accounts_calls = 0

    def accounts(self):
        self.accounts_calls += 1
        return super().accounts()


def test_command_on_a_fresh_database_creates_and_syncs(broker_state, capsys):
    call_command("sync_positions")

    out = capsys.readouterr().out
    assert f"accounts created from the broker: {EXAMPLE_ACCOUNT_ID}" in out
    assert f"{EXAMPLE_ACCOUNT_ID}: SUCCESS created=2" in out
    account = Account.objects.get(account_id=EXAMPLE_ACCOUNT_ID)
    assert (account.account_type, account.base_currency) == (AccountType.MARGIN, "USD")
    assert Position.objects.filter(account=account).count() == 2
    assert AccountStatus.objects.get(account=account).net_liquidation == 100000
    assert not TaskLock.objects.exists()


def test_command_json_on_a_fresh_database(broker_state, capsys):
    call_command("sync_positions", "--json")

    report = json.loads(capsys.readouterr().out)
    assert report["accounts"] == {"created": [EXAMPLE_ACCOUNT_ID], "warnings": []}
    (run,) = report["runs"]
    assert (run["account"], run["status"], run["created"]) == (EXAMPLE_ACCOUNT_ID, "SUCCESS", 2)


def test_periodic_task_on_a_fresh_database(broker_state):
    result = positions_sync_task.delay().get()

    assert [(r["account"], r["status"]) for r in result["runs"]] == [(EXAMPLE_ACCOUNT_ID, "SUCCESS")]
    assert Position.objects.count() == 2


def test_the_broker_is_asked_for_its_accounts_once(settings, broker_state):
    """One answer creates the missing accounts and gives every account its values."""
    AccountFactory(account_id="DU0000001")
    with broker_state.edit() as state:
        state["accounts"].append(AccountRowFactory(account_id="DU0000001", positions=[StockPositionRowFactory()]))
        state["accounts"].append(AccountRowFactory(account_id="DU0000002"))
    broker = CountingBroker(settings.BROKER_STATE_FILE)

    runs = positions_sync_accounts(broker=broker)

    assert [(r.account.account_id, r.status) for r in runs] == [
        ("DU0000001", SyncStatus.SUCCESS),
        ("DU0000002", SyncStatus.SUCCESS),
        (EXAMPLE_ACCOUNT_ID, SyncStatus.SUCCESS),
    ]
    assert broker.accounts_calls == 1
    assert AccountStatus.objects.count() == 3
    assert all(not r.warnings for r in runs)


def test_accounts_are_created_by_the_accounts_sync_rules():
    """A type the broker does not state: created as MARGIN with the accounts sync's warning."""
    from core.brokers.base import AccountValues, BrokerAccount
    from core.brokers.memory import MemoryBroker

    broker = MemoryBroker(accounts=[BrokerAccount("U1", None, "EUR", AccountValues())])

    runs = positions_sync_accounts(broker=broker)

    account = Account.objects.get(account_id="U1")
    assert (account.account_type, account.base_currency) == (AccountType.MARGIN, "EUR")
    assert account.seen_at_broker_at is not None
    assert [(r.account.account_id, r.status) for r in runs] == [("U1", SyncStatus.SUCCESS)]


def test_named_account_the_broker_lists_is_created_and_synced(broker_state, capsys):
    call_command("sync_positions", "--account", EXAMPLE_ACCOUNT_ID)

    assert f"{EXAMPLE_ACCOUNT_ID}: SUCCESS created=2" in capsys.readouterr().out
    assert Position.objects.count() == 2


def test_named_account_nobody_knows_is_an_error(broker_state):
    with pytest.raises(CommandError, match="account NOPE is not known to the database or the broker"):
        call_command("sync_positions", "--account", "NOPE")
    assert not Account.objects.exists()
    assert not SyncRun.objects.exists()


def test_broker_down_and_no_accounts_says_so(broker_state, capsys):
    with broker_state.edit() as state:
        state["connected"] = False

    with pytest.raises(CommandError) as excinfo:
        call_command("sync_positions", "--json")

    message = "no accounts in the database, and the broker could not be asked for them: broker unreachable: "
    assert str(excinfo.value).startswith(message)
    report = json.loads(capsys.readouterr().out)
    assert report["runs"] == [] and report["message"].startswith(message)
    assert not SyncRun.objects.exists()


def test_broker_down_with_known_accounts_skips_them(broker_state, capsys):
    AccountFactory(account_id="DU0000001")
    with broker_state.edit() as state:
        state["connected"] = False

    call_command("sync_positions")  # SKIPPED exits 0

    assert "DU0000001: SKIPPED" in capsys.readouterr().out
    run = SyncRun.objects.get(kind=SyncKind.POSITIONS)
    assert run.status == SyncStatus.SKIPPED and "unreachable" in run.message
    assert list(Account.objects.values_list("account_id", flat=True)) == ["DU0000001"]


def test_named_account_while_another_accounts_sync_runs_asks_to_try_again(broker_state):
    lock_acquire(name="trading.accounts_sync")

    with pytest.raises(CommandError, match="another accounts sync is running; try again"):
        call_command("sync_positions", "--account", EXAMPLE_ACCOUNT_ID)
    assert not Account.objects.exists()
