"""The alerts an execution ingest raises (trading/services/alerts.py): new fills, for those who chose
them, and a broker disagreeing with a staff correction."""

from decimal import Decimal

import pytest

from core.brokers.simulated import SimulatedBroker
from core.models import Alert, AlertKind
from tests.factories import EXAMPLE_ACCOUNT_ID as ACCOUNT
from tests.factories import AccountFactory, AlertChannelFactory, AlertPreferenceFactory, UserFactory
from trading.models import Execution
from trading.services.corrections import execution_correct
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return AccountFactory(account_id=ACCOUNT)


@pytest.fixture
def trader(account):
    user = UserFactory()
    account.users.add(user)
    AlertChannelFactory(user=user)
    AlertPreferenceFactory(user=user, kinds=[AlertKind.FILL, AlertKind.BROKER_DISAGREEMENT])
    return user


def ingest(settings, account, capture):
    with capture(execute=True):
        return executions_ingest(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))


def test_new_fills_and_a_disagreement_with_a_staff_correction_are_told(
    settings, broker_state, account, trader, django_capture_on_commit_callbacks
):
    run = ingest(settings, account, django_capture_on_commit_callbacks)
    fills = Alert.objects.get(kind=AlertKind.FILL)
    assert fills.user == trader and fills.title == f"{ACCOUNT}: {run.created} new fill"

    ingest(settings, account, django_capture_on_commit_callbacks)  # nothing new: nothing told
    assert Alert.objects.count() == 1

    stored = Execution.objects.get()
    previous = stored.executed_at
    stored.commission = Decimal("0.00")
    execution_correct(execution=stored, changed=["commission"], reason="refund", previous_executed_at=previous)
    ingest(settings, account, django_capture_on_commit_callbacks)

    disagreement = Alert.objects.get(kind=AlertKind.BROKER_DISAGREEMENT)
    assert "disagrees with 1 staff correction" in disagreement.title
    assert "staff corrected" in disagreement.body
