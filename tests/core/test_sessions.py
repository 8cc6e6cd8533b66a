"""Sessions served from the cache (cached_db), written through to the database, forgotten on a restore."""

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client

from core.sessions import session_keys_stored, sessions_cache_forget
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/market-data/quote/!"  # a logged-in request that looks nothing up: 404 logged in, 401/403 not


def logged_in() -> Client:
    browser = Client()
    browser.force_login(UserFactory())
    return browser


def test_the_session_is_in_the_database_too_so_a_cache_flush_logs_nobody_out(django_assert_num_queries):
    browser = logged_in()
    assert session_keys_stored() == [browser.session.session_key]
    cache.clear()
    with django_assert_num_queries(2):  # the session from the database, the user
        assert browser.get(URL).status_code == 404
    with django_assert_num_queries(1):  # cached again: the user only
        assert browser.get(URL).status_code == 404


def test_a_session_the_database_no_longer_holds_is_forgotten_from_the_cache():
    """What a restore does: the replaced database's sessions must not live on in the cache."""
    browser = logged_in()
    key = browser.session.session_key
    Session.objects.filter(session_key=key).delete()  # as a restored database without it
    assert browser.get(URL).status_code == 404  # still served from the cache...

    assert sessions_cache_forget(keys=[key]) >= 1

    assert browser.get(URL).status_code in (401, 403)  # ...until forgotten: the database answers


def test_logging_out_ends_the_cached_session():
    browser = logged_in()
    key = browser.session.session_key
    browser.logout()
    assert not Session.objects.filter(session_key=key).exists()
    assert browser.get(URL).status_code in (401, 403)


def test_nothing_to_forget_with_database_sessions(settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    assert session_keys_stored() == [] and sessions_cache_forget(keys=["abc"]) == 0
