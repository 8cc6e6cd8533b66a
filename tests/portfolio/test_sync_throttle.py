"""Sync requests are limited per user, with one rate and one counter for the API and the "Sync now" form
(issue #16, defect 8: 40 form posts in half a second started 40 runs)."""

import uuid

import pytest
from django.test import Client

from core.models import SyncRun
from portfolio.throttles import SyncRequestThrottle
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
RATE = 30  # API_SYNC_THROTTLE's default, 30/min


@pytest.fixture(autouse=True)
def _own_cache(settings):
    # The throttle counts in the default cache: a cache of this test's own, whatever the others left.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


@pytest.fixture
def trader():
    trader = UserFactory()
    AccountFactory(account_id=ACCOUNT, users=[trader])
    return trader


@pytest.fixture
def client(trader) -> Client:
    client = Client()
    client.force_login(trader)
    return client


def form_post(client: Client, *, follow: bool = False):
    return client.post("/sync-now", {"account": ACCOUNT, "next": f"/?account={ACCOUNT}"}, follow=follow)


def refused(response) -> bool:
    """Whether the form's post was refused: it goes back all the same, saying why."""
    return any("Too many sync requests" in str(message) for message in response.wsgi_request._messages)


def api_post(client: Client):
    return client.post("/api/sync/positions", {"account": ACCOUNT}, content_type="application/json")


def test_the_31st_form_post_within_a_minute_is_refused_with_a_warning(client):
    for _ in range(RATE):
        assert not refused(form_post(client))
    runs = SyncRun.objects.count()

    response = form_post(client, follow=True)

    page = response.content.decode()
    assert response.redirect_chain == [(f"/?account={ACCOUNT}", 302)]
    assert 'class="msg warning"' in page
    assert "Too many sync requests (at most 30/min per user): try again in" in page
    assert SyncRun.objects.count() == runs  # nothing was started


def test_form_and_api_share_the_counter(client):
    for _ in range(RATE // 2):
        assert api_post(client).status_code == 202
    for _ in range(RATE - RATE // 2):
        assert not refused(form_post(client))

    assert api_post(client).status_code == 429
    assert refused(form_post(client))


def test_form_posts_use_up_the_api_allowance(client):
    for _ in range(RATE):
        form_post(client)
    response = api_post(client)
    assert response.status_code == 429 and "throttled" in response.json()["detail"]


def test_the_limit_is_per_user(client, trader):
    for _ in range(RATE):
        form_post(client)
    other = UserFactory()
    AccountFactory(users=[other])
    other_client = Client()
    other_client.force_login(other)
    assert api_post(other_client).status_code != 429
    assert not refused(form_post(other_client))


def test_the_allowance_comes_back_after_a_minute(monkeypatch, client):
    now = [1_000_000.0]
    monkeypatch.setattr(SyncRequestThrottle, "timer", lambda self: now[0])
    for _ in range(RATE):
        form_post(client)
    assert api_post(client).status_code == 429
    now[0] += 61
    assert api_post(client).status_code == 202


def test_the_rate_comes_from_api_sync_throttle(settings, client):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sync": "2/min"}}
    form_post(client)
    assert api_post(client).status_code == 202
    assert "at most 2/min per user" in form_post(client, follow=True).content.decode()
    assert api_post(client).status_code == 429
