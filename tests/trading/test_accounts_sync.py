"""Accounts from the broker: ``accounts_sync``, the task and the command that run it under a
single-flight lock, and the execution ingest that creates the broker's accounts the database lacks."""

import json
import logging
from datetime import UTC, datetime

import pytest
from celery.exceptions import Retry
from django.core.management import CommandError, call_command
from django.utils import timezone

from core.brokers import BrokerError, BrokerUnavailable
from core.locks import lock_acquire
from core.models import SyncKind, SyncRun, SyncStatus, TaskLock
from tests.factories import EXAMPLE_ACCOUNT_ID, AccountFactory, AccountRowFactory, BrokerStateFactory, UserFactory
from trading.models import Account, AccountType, CashFlow, DayTradeRule, Execution
from trading.services.accounts import accounts_sync
from trading.tasks import accounts_sync_task, executions_ingest_task

pytestmark = pytest.mark.django_db

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def _accounts_state(*rows: dict) -> dict:
    return BrokerStateFactory(accounts=list(rows))


class TestAccountsSync:
    def test_creates_the_accounts_the_broker_lists(self, broker_state, simulated_broker):
        broker_state.write(
            _accounts_state(
                AccountRowFactory(account_id="DU1", account_type="MARGIN", base_currency="USD"),
                AccountRowFactory(account_id="DU2", account_type="CASH", base_currency="EUR"),
            )
        )
        before = timezone.now()

        result = accounts_sync(broker=simulated_broker)

        assert sorted(result.created) == ["DU1", "DU2"]
        assert (result.updated, result.unchanged, result.warnings) == ([], [], [])
        rows = {a.account_id: a for a in Account.objects.all()}
        assert set(rows) == {"DU1", "DU2"}
        assert (rows["DU1"].account_type, rows["DU1"].base_currency) == (AccountType.MARGIN, "USD")
        assert (rows["DU2"].account_type, rows["DU2"].base_currency) == (AccountType.CASH, "EUR")
        assert all(a.seen_at_broker_at >= before for a in rows.values())

    def test_second_run_is_idempotent(self, broker_state, simulated_broker):
        accounts_sync(broker=simulated_broker)
        history_rows = Account.history.count()

        result = accounts_sync(broker=simulated_broker)

        assert Account.objects.count() == 1
        assert result.created == []
        assert result.updated == []
        assert result.unchanged == [EXAMPLE_ACCOUNT_ID]
        # Nothing a person would call a change happened, so nothing lands in the account's history.
        assert Account.history.count() == history_rows

    def test_unchanged_account_is_marked_seen(self, broker_state, simulated_broker):
        account = AccountFactory(account_id=EXAMPLE_ACCOUNT_ID)
        Account.objects.filter(pk=account.pk).update(seen_at_broker_at=LONG_AGO)

        result = accounts_sync(broker=simulated_broker)

        account.refresh_from_db()
        assert result.unchanged == [EXAMPLE_ACCOUNT_ID]
        assert account.seen_at_broker_at > LONG_AGO

    def test_updates_type_and_currency_when_the_broker_changes_them(self, broker_state, simulated_broker):
        accounts_sync(broker=simulated_broker)
        with broker_state.edit() as state:
            row = broker_state.account(state, EXAMPLE_ACCOUNT_ID)
            row["account_type"] = "CASH"
            row["base_currency"] = "CHF"

        result = accounts_sync(broker=simulated_broker)

        account = Account.objects.get(account_id=EXAMPLE_ACCOUNT_ID)
        assert result.updated == [EXAMPLE_ACCOUNT_ID]
        assert result.created == result.unchanged == []
        assert (account.account_type, account.base_currency) == (AccountType.CASH, "CHF")
        assert account.history.first().account_type == AccountType.CASH

    def test_staff_fields_survive_a_sync(self, broker_state, simulated_broker):
        trader = UserFactory()
        account = AccountFactory(
            account_id=EXAMPLE_ACCOUNT_ID,
            name="Main account",
            is_active=False,
            day_trade_rule=DayTradeRule.LEGACY,
            account_type=AccountType.CASH,
            users=[trader],
        )

        accounts_sync(broker=simulated_broker)

        account.refresh_from_db()
        assert account.account_type == AccountType.MARGIN  # the broker states the type: it decides
        assert account.name == "Main account"
        assert account.is_active is False
        assert account.day_trade_rule == DayTradeRule.LEGACY
        assert list(account.users.all()) == [trader]

    def test_a_type_the_broker_does_not_state_never_overwrites_staffs(self):
        """IBKR's summary rarely says margin or cash (AccountType is INDIVIDUAL, IRA...): a new account
        is created as MARGIN with a warning, and an existing one keeps the type staff set."""
        from core.brokers.base import AccountValues, BrokerAccount
        from core.brokers.memory import MemoryBroker

        existing = AccountFactory(account_id="U1", account_type=AccountType.CASH)
        broker = MemoryBroker(
            accounts=[
                BrokerAccount("U1", None, "USD", AccountValues()),
                BrokerAccount("U2", None, "USD", AccountValues()),
            ]
        )
        result = accounts_sync(broker=broker)
        existing.refresh_from_db()
        assert existing.account_type == AccountType.CASH and result.unchanged == ["U1"]
        assert Account.objects.get(account_id="U2").account_type == AccountType.MARGIN
        assert result.warnings == [
            "account U2: the broker does not say margin or cash; created as MARGIN, check it in the admin"
        ]

    def test_leaves_accounts_the_broker_no_longer_lists(self, broker_state, simulated_broker):
        gone = AccountFactory(account_id="DU0000001", name="Old account")
        Account.objects.filter(pk=gone.pk).update(seen_at_broker_at=LONG_AGO)

        result = accounts_sync(broker=simulated_broker)

        gone.refresh_from_db()
        assert result.created == [EXAMPLE_ACCOUNT_ID]
        assert "DU0000001" not in result.unchanged + result.updated
        assert gone.is_active is True
        assert gone.name == "Old account"
        assert gone.seen_at_broker_at == LONG_AGO

    def test_broker_listing_no_accounts_changes_nothing(self, broker_state, simulated_broker):
        kept = AccountFactory()
        broker_state.write(_accounts_state())

        result = accounts_sync(broker=simulated_broker)

        assert (result.created, result.updated, result.unchanged) == ([], [], [])
        assert list(Account.objects.all()) == [kept]

    @pytest.mark.parametrize("how", ["disconnected", "missing-file", "invalid-json"])
    def test_broker_unavailable_writes_nothing(self, broker_state, simulated_broker, how):
        existing = AccountFactory(account_id=EXAMPLE_ACCOUNT_ID, account_type=AccountType.CASH)
        Account.objects.filter(pk=existing.pk).update(seen_at_broker_at=LONG_AGO)
        with broker_state.edit() as state:
            state["accounts"].append(AccountRowFactory(account_id="DU9999999"))
            state["connected"] = how != "disconnected"
        if how == "missing-file":
            broker_state.path.unlink()
        elif how == "invalid-json":
            broker_state.write_raw('{"connected": true, "accounts": [')

        with pytest.raises(BrokerUnavailable):
            accounts_sync(broker=simulated_broker)

        existing.refresh_from_db()
        assert list(Account.objects.values_list("account_id", flat=True)) == [EXAMPLE_ACCOUNT_ID]
        assert existing.account_type == AccountType.CASH
        assert existing.seen_at_broker_at == LONG_AGO

    def test_malformed_account_row_is_a_warning_and_the_others_sync(self, broker_state, simulated_broker, caplog):
        broker_state.write(
            _accounts_state(
                AccountRowFactory(account_id="DU1"),
                AccountRowFactory(account_id="DU2", account_type="IRA"),
                {"account_type": "CASH"},
                AccountRowFactory(account_id="DU3", account_type="CASH"),
            )
        )

        with caplog.at_level(logging.WARNING, logger="trading.services.accounts"):
            result = accounts_sync(broker=simulated_broker)

        assert sorted(Account.objects.values_list("account_id", flat=True)) == ["DU1", "DU3"]
        assert sorted(result.created) == ["DU1", "DU3"]
        assert len(result.warnings) == 2
        assert "accounts[1] (DU2)" in result.warnings[0]
        assert "account_type" in result.warnings[0]
        assert "accounts[2]" in result.warnings[1]
        assert "missing account_id" in result.warnings[1]
        assert "accounts sync" in caplog.text
        assert "IRA" in caplog.text

    def test_account_listed_twice_is_created_once(self, broker_state, simulated_broker):
        broker_state.write(_accounts_state(AccountRowFactory(account_id="DU1"), AccountRowFactory(account_id="DU1")))

        accounts_sync(broker=simulated_broker)

        assert list(Account.objects.values_list("account_id", flat=True)) == ["DU1"]


class TestAccountsSyncTask:
    def test_success(self, broker_state):
        outcome = accounts_sync_task.delay().get()

        assert outcome["status"] == "SUCCESS"
        assert outcome["created"] == [EXAMPLE_ACCOUNT_ID]
        assert outcome["warnings"] == []
        assert Account.objects.filter(account_id=EXAMPLE_ACCOUNT_ID).exists()
        assert not TaskLock.objects.exists()

    def test_second_run_reports_unchanged(self, broker_state):
        accounts_sync_task.delay().get()

        outcome = accounts_sync_task.delay().get()

        assert outcome["status"] == "SUCCESS"
        assert (outcome["created"], outcome["updated"], outcome["unchanged"]) == ([], [], 1)
        assert Account.objects.count() == 1

    def test_skipped_while_another_sync_holds_the_lock(self, broker_state):
        token = lock_acquire(name="trading.accounts_sync")
        assert token is not None

        outcome = accounts_sync_task.delay().get()

        assert outcome["status"] == "SKIPPED"
        assert not Account.objects.exists()
        # The skipped run must not release a lock it does not hold.
        assert TaskLock.objects.get(name="trading.accounts_sync").owner == token

    def test_unavailable_broker_is_retried_releases_the_lock_and_writes_nothing(self, broker_state):
        with broker_state.edit() as state:
            state["connected"] = False

        # With eager propagation Celery raises the Retry instead of scheduling it.
        with pytest.raises(Retry) as excinfo:
            accounts_sync_task.delay()

        assert isinstance(excinfo.value.exc, BrokerUnavailable)
        assert excinfo.value.when > 0
        assert not Account.objects.exists()
        assert not TaskLock.objects.exists()


class TestSyncAccountsCommand:
    def test_text_summary_on_a_fresh_database(self, broker_state, capsys):
        call_command("sync_accounts")

        out = capsys.readouterr().out
        assert "accounts: SUCCESS created=1 updated=0 unchanged=0" in out
        assert f"  created: {EXAMPLE_ACCOUNT_ID}" in out
        assert Account.objects.filter(account_id=EXAMPLE_ACCOUNT_ID).exists()
        assert not TaskLock.objects.exists()

    def test_text_summary_lists_updated_unchanged_and_warnings(self, broker_state, capsys):
        AccountFactory(account_id="DU1", account_type=AccountType.MARGIN, base_currency="USD")
        AccountFactory(account_id="DU2", account_type=AccountType.MARGIN, base_currency="USD")
        broker_state.write(
            _accounts_state(
                AccountRowFactory(account_id="DU1", account_type="MARGIN", base_currency="USD"),
                AccountRowFactory(account_id="DU2", account_type="CASH", base_currency="USD"),
                AccountRowFactory(account_id="DU3", account_type="IRA"),
            )
        )

        call_command("sync_accounts")

        out = capsys.readouterr().out
        assert "accounts: SUCCESS created=0 updated=1 unchanged=1" in out
        assert "  updated: DU2" in out and "  unchanged: DU1" in out
        assert "  warning: " in out and "DU3" in out

    def test_json_summary(self, broker_state, capsys):
        AccountFactory(account_id="DU0000001")
        with broker_state.edit() as state:
            state["accounts"].append(AccountRowFactory(account_id="DU0000001"))

        call_command("sync_accounts", "--json")

        report = json.loads(capsys.readouterr().out)
        assert report == {
            "status": "SUCCESS",
            "created": [EXAMPLE_ACCOUNT_ID],
            "updated": [],
            "unchanged": ["DU0000001"],
            "warnings": [],
            "message": "",
        }

    def test_skipped_while_another_accounts_sync_runs_exits_0(self, broker_state, capsys):
        token = lock_acquire(name="trading.accounts_sync")

        call_command("sync_accounts")  # SKIPPED exits 0: no exception

        assert "accounts: SKIPPED another accounts sync is running" in capsys.readouterr().out
        assert not Account.objects.exists()
        assert TaskLock.objects.get(name="trading.accounts_sync").owner == token
        call_command("sync_accounts", "--json")
        assert json.loads(capsys.readouterr().out)["status"] == "SKIPPED"

    @pytest.mark.parametrize("how", ["disconnected", "missing-file"])
    def test_broker_unreachable_exits_1_with_the_reason(self, broker_state, capsys, how):
        with broker_state.edit() as state:
            state["connected"] = False
        if how == "missing-file":
            broker_state.path.unlink()

        with pytest.raises(CommandError, match="broker unreachable: ") as excinfo:
            call_command("sync_accounts")

        assert excinfo.value.returncode == 1  # what manage.py exits with, the message on stderr
        assert capsys.readouterr().out == ""
        assert not Account.objects.exists()
        assert not TaskLock.objects.exists()

    def test_broker_down_with_json_prints_the_failure_too(self, broker_state, capsys):
        with broker_state.edit() as state:
            state["connected"] = False

        with pytest.raises(CommandError, match="broker unreachable"):
            call_command("sync_accounts", "--json")

        report = json.loads(capsys.readouterr().out)
        assert report["status"] == "FAILED"
        assert report["message"].startswith("broker unreachable: ")
        assert report["created"] == []

    def test_failed_request_exits_1(self, monkeypatch):
        class Refusing:
            name = "refusing"

            def accounts(self):
                raise BrokerError("account summary refused")

        monkeypatch.setattr("trading.management.commands.sync_accounts.get_broker", Refusing)

        with pytest.raises(CommandError, match="broker request failed: account summary refused"):
            call_command("sync_accounts")
        assert not TaskLock.objects.exists()


class TestIngestCreatesTheBrokersAccounts:
    """On a fresh database the first execution ingest creates the broker's accounts and ingests them."""

    def test_command_on_a_fresh_database(self, broker_state, capsys):
        call_command("ingest_executions")

        out = capsys.readouterr().out
        assert f"accounts created from the broker: {EXAMPLE_ACCOUNT_ID}" in out
        assert f"{EXAMPLE_ACCOUNT_ID}: SUCCESS created=1" in out
        account = Account.objects.get(account_id=EXAMPLE_ACCOUNT_ID)
        assert account.account_type == AccountType.MARGIN
        assert Execution.objects.filter(account=account).count() == 1
        assert CashFlow.objects.filter(account=account).count() == 1
        assert not TaskLock.objects.exists()

    def test_command_json_on_a_fresh_database(self, broker_state, capsys):
        call_command("ingest_executions", "--json")

        report = json.loads(capsys.readouterr().out)
        assert report["accounts"] == {"created": [EXAMPLE_ACCOUNT_ID], "warnings": []}
        (run,) = report["runs"]
        assert (run["account"], run["status"], run["created"]) == (EXAMPLE_ACCOUNT_ID, "SUCCESS", 1)

    def test_periodic_task_on_a_fresh_database(self, broker_state):
        outcome = executions_ingest_task.delay().get()

        assert [(r["account"], r["status"], r["created"]) for r in outcome["runs"]] == [
            (EXAMPLE_ACCOUNT_ID, "SUCCESS", 1)
        ]

    def test_only_the_missing_accounts_are_created_and_all_are_ingested(self, broker_state, capsys):
        AccountFactory(account_id=EXAMPLE_ACCOUNT_ID)
        with broker_state.edit() as state:
            state["accounts"].append(AccountRowFactory(account_id="DU0000002", account_type="CASH"))

        call_command("ingest_executions")

        out = capsys.readouterr().out
        assert "accounts created from the broker: DU0000002" in out
        assert Account.objects.get(account_id="DU0000002").account_type == AccountType.CASH
        runs = SyncRun.objects.filter(kind=SyncKind.EXECUTIONS)
        assert sorted(runs.values_list("account__account_id", "status")) == [
            ("DU0000002", SyncStatus.SUCCESS),
            (EXAMPLE_ACCOUNT_ID, SyncStatus.SUCCESS),
        ]

    def test_an_inactive_account_the_broker_lists_stays_inactive_and_unsynced(self, broker_state, capsys):
        AccountFactory(account_id=EXAMPLE_ACCOUNT_ID, is_active=False)

        call_command("ingest_executions")

        assert capsys.readouterr().out.strip() == "no active accounts"
        assert Account.objects.get().is_active is False
        assert not SyncRun.objects.exists()

    def test_named_account_the_broker_lists_is_created_and_ingested(self, broker_state, capsys):
        with broker_state.edit() as state:
            state["accounts"].append(AccountRowFactory(account_id="DU0000002"))

        call_command("ingest_executions", "--account", EXAMPLE_ACCOUNT_ID)

        assert f"{EXAMPLE_ACCOUNT_ID}: SUCCESS created=1" in capsys.readouterr().out
        runs = SyncRun.objects.filter(kind=SyncKind.EXECUTIONS)
        assert list(runs.values_list("account__account_id", flat=True)) == [EXAMPLE_ACCOUNT_ID]

    def test_named_account_nobody_knows_is_an_error(self, broker_state):
        with pytest.raises(CommandError, match="account NOPE is not known to the database or the broker"):
            call_command("ingest_executions", "--account", "NOPE")
        assert not Account.objects.exists()
        assert not SyncRun.objects.exists()

    def test_named_account_unknown_here_with_the_broker_down_is_an_error(self, broker_state):
        with broker_state.edit() as state:
            state["connected"] = False

        with pytest.raises(CommandError, match="account NOPE is not known to the database, and the broker could not"):
            call_command("ingest_executions", "--account", "NOPE")

    def test_broker_down_and_no_accounts_says_so(self, broker_state, capsys):
        with broker_state.edit() as state:
            state["connected"] = False

        with pytest.raises(
            CommandError,
            match="no accounts in the database, and the broker could not be asked for them: broker unreachable: ",
        ):
            call_command("ingest_executions")
        assert not SyncRun.objects.exists()

    def test_broker_down_with_known_accounts_skips_them_as_before(self, broker_state, capsys):
        AccountFactory(account_id=EXAMPLE_ACCOUNT_ID)
        with broker_state.edit() as state:
            state["connected"] = False

        call_command("ingest_executions")  # SKIPPED exits 0

        assert f"{EXAMPLE_ACCOUNT_ID}: SKIPPED" in capsys.readouterr().out
        assert SyncRun.objects.get().status == SyncStatus.SKIPPED

    def test_another_accounts_sync_running_is_a_warning(self, broker_state, capsys):
        lock_acquire(name="trading.accounts_sync")

        call_command("ingest_executions")

        out = capsys.readouterr().out
        assert f"warning: the broker lists accounts the database lacks ({EXAMPLE_ACCOUNT_ID})" in out
        assert "no active accounts" in out
        assert not Account.objects.exists()
