"""Production redirects plain http to HTTPS, except the health check that comes from inside."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def production_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000


def test_plain_http_is_redirected(production_https):
    response = Client().get("/accounts/login/")
    assert response.status_code == 301 and response["Location"] == "https://testserver/accounts/login/"


def test_the_health_check_answers_over_plain_http(production_https):
    assert Client().get("/healthz").status_code == 200


def test_hsts_is_sent_over_https(production_https):
    response = Client().get("/accounts/login/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_a_forwarded_proto_header_is_ignored_unless_behind_a_proxy(production_https):
    assert Client().get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https").status_code == 301


def test_behind_a_proxy_its_forwarded_proto_is_believed(production_https, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert Client().get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https").status_code == 200
