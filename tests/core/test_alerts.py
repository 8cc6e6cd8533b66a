"""Alerts (core/alerts.py, core/alert_channels.py): each channel against a local HTTP receiver that
records what it was sent, the rate limit, preferences and access, retries with every attempt
recorded, secrets kept out of records and logs, and the events that raise alerts."""

import json
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from core.alerts import alert_raise, alerts_check_runs
from core.live import connection_state_record
from core.models import (
    Alert,
    AlertAttempt,
    AlertDelivery,
    AlertKind,
    AlertStatus,
    DeliveryStatus,
    SyncKind,
    SyncRun,
    SyncStatus,
)
from core.tasks import alert_deliver_task
from tests.factories import AccountFactory, AlertChannelFactory, AlertPreferenceFactory, UserFactory
from trading.models import RiskEvent, RiskEventKind
from trading.services.alerts import risk_event_alert

pytestmark = pytest.mark.django_db
SECRET = "T0PSECRET-abc123"


class Receiver:
    """A local HTTP server that records every request and answers from a script (default 200)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body or b"null")}
                )
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status == 200 else b"nope: " + self.path.encode())

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.ALERT_TELEGRAM_API = None
    server = Receiver()
    settings.ALERT_TELEGRAM_API = server.url
    settings.ALERT_DELIVERY_RETRIES = 2
    yield server
    server.close()


@pytest.fixture
def account():
    return AccountFactory(account_id="U7654321")


@pytest.fixture
def trader(account):
    user = UserFactory(email="trader@example.com")
    account.users.add(user)
    return user


def raise_and_deliver(django_capture_on_commit_callbacks, **kwargs) -> list[Alert]:
    with django_capture_on_commit_callbacks(execute=True):
        return alert_raise(**kwargs)


def test_an_alert_reaches_every_channel_in_its_format(receiver, trader, account, django_capture_on_commit_callbacks):
    AlertChannelFactory(user=trader, kind="SLACK", url=f"{receiver.url}/services/{SECRET}")
    AlertChannelFactory(user=trader, kind="DISCORD", url=f"{receiver.url}/api/webhooks/1/{SECRET}")
    AlertChannelFactory(user=trader, kind="TELEGRAM", token=SECRET, address="42")
    AlertChannelFactory(user=trader, kind="WEBHOOK", url=f"{receiver.url}/hook", token=SECRET)
    AlertChannelFactory(user=trader, kind="EMAIL", url="")

    alerts = raise_and_deliver(
        django_capture_on_commit_callbacks,
        kind=AlertKind.RISK_OPENED, account=account, title="U7654321: Daily loss opened", body="-3.4%",
    )  # fmt: skip

    assert [a.status for a in alerts] == [AlertStatus.SENT]
    by_path = {r["path"]: r for r in receiver.requests}
    assert by_path[f"/services/{SECRET}"]["json"] == {"text": "U7654321: Daily loss opened\n-3.4%"}
    assert by_path[f"/api/webhooks/1/{SECRET}"]["json"] == {"content": "U7654321: Daily loss opened\n-3.4%"}
    assert by_path[f"/bot{SECRET}/sendMessage"]["json"] == {
        "chat_id": "42",
        "text": "U7654321: Daily loss opened\n-3.4%",
    }
    hook = by_path["/hook"]
    assert hook["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert hook["json"]["kind"] == "RISK_OPENED" and hook["json"]["account"] == "U7654321"
    assert [m.to for m in mail.outbox] == [["trader@example.com"]]
    assert "Daily loss opened" in mail.outbox[0].subject
    assert AlertDelivery.objects.filter(status=DeliveryStatus.SENT).count() == 5
    assert AlertAttempt.objects.filter(ok=True).count() == 5
    assert not any(SECRET in a.detail for a in AlertAttempt.objects.all())


def test_a_transient_failure_is_retried_and_every_attempt_recorded(
    receiver, trader, account, django_capture_on_commit_callbacks, caplog
):
    AlertChannelFactory(user=trader, kind="SLACK", url=f"{receiver.url}/services/{SECRET}")
    receiver.answers = [503, 200]

    raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.SYNC_FAILING, account=account, title="x")
    delivery = AlertDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1

    alert_deliver_task.apply(args=[delivery.pk], retries=1)  # the worker, when the retry is due

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 2
    assert [a.ok for a in AlertAttempt.objects.order_by("id")] == [False, True]
    assert AlertAttempt.objects.order_by("id").first().status_code is None
    assert SECRET not in caplog.text
    assert "[secret]" in AlertAttempt.objects.order_by("id").first().detail


def test_retries_run_out_or_a_refusal_ends_the_delivery(receiver, trader, account, django_capture_on_commit_callbacks):
    AlertChannelFactory(user=trader, kind="DISCORD", url=f"{receiver.url}/gone/{SECRET}")
    receiver.answers = [500, 500, 500, 500]
    raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.SYNC_FAILING, account=account, title="x")
    delivery = AlertDelivery.objects.get()
    retry = 0
    while delivery.status == DeliveryStatus.PENDING and retry < 5:  # the worker, as each retry falls due
        retry += 1
        alert_deliver_task.apply(args=[delivery.pk], retries=retry, throw=False)
        delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3  # the try and 2 retries

    AlertDelivery.objects.all().delete()
    receiver.answers = [404]
    raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.SYNC_STALE, account=account, title="y")
    delivery = AlertDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1  # a refusal is not retried


def test_one_alert_per_kind_and_account_per_interval_with_a_count_of_what_was_held(
    settings, receiver, trader, account, django_capture_on_commit_callbacks
):
    settings.ALERT_MIN_INTERVAL = 300
    AlertChannelFactory(user=trader, kind="SLACK", url=f"{receiver.url}/s")
    AlertPreferenceFactory(user=trader, kinds=[AlertKind.FILL])
    for n in range(4):
        raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.FILL, account=account, title=f"fill {n}")
    other = AccountFactory()
    other.users.add(trader)
    raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.FILL, account=other, title="other account")

    assert [r["json"]["text"] for r in receiver.requests] == ["fill 0", "other account"]
    assert Alert.objects.filter(status=AlertStatus.HELD).count() == 3

    Alert.objects.update(created_at=timezone.now() - timedelta(seconds=301))  # the interval has passed
    raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.FILL, account=account, title="fill 4")
    assert receiver.requests[-1]["json"]["text"] == ("fill 4\n(3 more alerts of this kind held back in the last 300 s)")


def test_preferences_choose_kinds_and_accounts(receiver, trader, account, django_capture_on_commit_callbacks):
    AlertChannelFactory(user=trader, kind="SLACK", url=f"{receiver.url}/s")
    other = AccountFactory()
    other.users.add(trader)
    AlertPreferenceFactory(user=trader, kinds=[AlertKind.RISK_OPENED], all_accounts=False, accounts=[other])

    assert (
        raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.RISK_OPENED, account=account, title="a")
        == []
    )
    assert (
        raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.SYNC_STALE, account=other, title="b") == []
    )
    sent = raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.RISK_OPENED, account=other, title="c")
    assert len(sent) == 1 and [r["json"]["text"] for r in receiver.requests] == ["c"]


def test_no_alert_about_an_account_the_user_cannot_see(receiver, account, django_capture_on_commit_callbacks):
    stranger = UserFactory()
    AlertChannelFactory(user=stranger, kind="SLACK", url=f"{receiver.url}/stranger")
    # Even naming the account in the preferences does not open it to them.
    AlertPreferenceFactory(user=stranger, all_accounts=False, accounts=[account])
    staff = UserFactory(staff=True)
    AlertChannelFactory(user=staff, kind="SLACK", url=f"{receiver.url}/staff")

    raise_and_deliver(django_capture_on_commit_callbacks, kind=AlertKind.RISK_OPENED, account=account, title="x")
    raise_and_deliver(
        django_capture_on_commit_callbacks, kind=AlertKind.TEST, account=account, title="test", users=[stranger]
    )

    assert [r["path"] for r in receiver.requests] == ["/staff"]
    assert not Alert.objects.filter(user=stranger).exists()


# --- the events that raise alerts ------------------------------------------------------------------
def test_risk_events_and_circuit_breakers_raise_their_alerts(trader, account, django_capture_on_commit_callbacks):
    AlertChannelFactory(user=trader)
    event = RiskEvent.objects.create(
        account=account, kind=RiskEventKind.DAILY_LOSS, severity="CRITICAL", value=Decimal("-0.05"),
        threshold=Decimal("-0.03"), as_of=timezone.now().date(), message="daily loss 5.00%",
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        risk_event_alert(event=event)
        risk_event_alert(event=event)  # told once
        risk_event_alert(event=event, resolved=True)
    breaker = RiskEvent(pk=999, account=account, kind="circuit_breaker_trip", severity="CRITICAL", value=Decimal(1),
                        threshold=Decimal(1), as_of=timezone.now().date(), message="trading_paused")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        risk_event_alert(event=breaker)
    kinds = list(Alert.objects.order_by("id").values_list("kind", flat=True))
    assert kinds == [AlertKind.RISK_OPENED, AlertKind.RISK_RESOLVED, AlertKind.CIRCUIT_BREAKER]


def test_a_sync_failing_n_times_and_stale_positions_raise_once(settings, trader, account):
    settings.ALERT_SYNC_FAILURES = 3
    AlertChannelFactory(user=trader)
    now = timezone.now()
    for n in range(3):
        SyncRun.objects.create(
            kind=SyncKind.POSITIONS, account=account, status=SyncStatus.FAILED, started_at=now - timedelta(minutes=n),
            message=f"boom {n}",
        )  # fmt: skip
    alerts_check_runs()
    alerts_check_runs()  # the same streak, the same stale spell: nothing new

    assert sorted(Alert.objects.values_list("kind", flat=True)) == [AlertKind.SYNC_FAILING, AlertKind.SYNC_STALE]
    assert "failed 3 times in a row" in Alert.objects.get(kind=AlertKind.SYNC_FAILING).title


def test_the_broker_connection_lost_and_restored(trader):
    AlertChannelFactory(user=trader)
    connection_state_record(name="ibkr x", state="CONNECTED")
    connection_state_record(name="ibkr x", state="LOST", code=1100, message="Connectivity lost")
    connection_state_record(name="ibkr x", state="DISCONNECTED")  # still down: no second alert
    connection_state_record(name="ibkr x", state="CONNECTED", code=1102)
    assert list(Alert.objects.order_by("id").values_list("kind", flat=True)) == [
        AlertKind.BROKER_LOST,
        AlertKind.BROKER_RESTORED,
    ]
