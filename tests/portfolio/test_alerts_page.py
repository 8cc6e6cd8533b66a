"""The alerts page (portfolio/views/alerts.py), the connection banner on the overview and /healthz."""

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from core.live import connection_state_record
from core.models import Alert, AlertChannel, AlertKind, AlertPreference, BrokerConnection
from tests.factories import AccountFactory, AlertChannelFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader(client):
    user = UserFactory(email="t@example.com")
    client.force_login(user)
    return user


@pytest.fixture
def mine(trader):
    account = AccountFactory(account_id="U1000001")
    account.users.add(trader)
    return account


def test_the_page_offers_only_the_accounts_the_user_may_see(client, trader, mine):
    AccountFactory(account_id="U9999999")
    page = client.get(reverse("alerts")).content.decode()
    assert "U1000001" in page and "U9999999" not in page


def test_preferences_are_saved_and_another_users_account_is_refused(client, trader, mine):
    other = AccountFactory(account_id="U9999999")
    answer = client.post(reverse("alerts"), {"kinds": [AlertKind.RISK_OPENED], "accounts": [other.pk]})
    assert answer.status_code == 200 and "valid choice" in answer.content.decode()
    assert not AlertPreference.objects.exists()

    client.post(reverse("alerts"), {"kinds": [AlertKind.RISK_OPENED, AlertKind.FILL], "accounts": [mine.pk]})
    preference = AlertPreference.objects.get(user=trader)
    assert preference.kinds == [AlertKind.RISK_OPENED, AlertKind.FILL] and not preference.all_accounts
    assert list(preference.accounts.all()) == [mine]


def test_channels_are_added_with_their_secrets_kept_out_of_the_page(client, trader):
    client.post(
        reverse("alert-channel-add"), {"kind": "SLACK", "name": "desk", "url": "https://hooks.slack.test/T/B/SECRET9"}
    )
    channel = AlertChannel.objects.get(user=trader)
    assert channel.url.endswith("SECRET9")
    assert "SECRET9" not in client.get(reverse("alerts")).content.decode()
    client.post(reverse("alert-channel-add"), {"kind": "DISCORD", "name": "no url"})
    assert AlertChannel.objects.count() == 1  # refused, with the reason in a message


def test_the_test_button_sends_to_the_users_channels(client, trader, django_capture_on_commit_callbacks):
    AlertChannelFactory(user=trader, kind="EMAIL", url="")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("alert-test"))
    assert [m.to for m in mail.outbox] == [["t@example.com"]]
    assert Alert.objects.get().kind == AlertKind.TEST


def test_another_users_channel_cannot_be_removed(client, trader):
    theirs = AlertChannelFactory()
    assert client.post(reverse("alert-channel-remove", args=[theirs.pk])).status_code == 404
    assert AlertChannel.objects.filter(pk=theirs.pk).exists()


def test_the_overview_shows_a_lost_connection_and_a_listener_that_stopped(client, trader, mine):
    connection_state_record(name="ibkr 127.0.0.1:4002", state="CONNECTED")
    assert "Broker connection" not in client.get(reverse("overview")).content.decode()

    connection_state_record(name="ibkr 127.0.0.1:4002", state="LOST", code=1100, message="Connectivity lost")
    page = client.get(reverse("overview")).content.decode()
    assert "Broker connection: gateway up, its link to the broker lost (ibkr 127.0.0.1:4002)" in page
    assert "IBKR 1100" in page

    BrokerConnection.objects.update(checked_at=timezone.now() - timezone.timedelta(minutes=5))
    assert (
        "the event listener for ibkr 127.0.0.1:4002 is not running" in client.get(reverse("overview")).content.decode()
    )


def test_healthz_reports_the_broker_connections(client):
    connection_state_record(name="simulated", state="DISCONNECTED", message="down")
    body = client.get("/healthz").json()
    assert body["broker_connections"][0]["name"] == "simulated"
    assert body["broker_connections"][0]["state"] == "DISCONNECTED"
