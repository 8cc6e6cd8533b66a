"""The API schema and its docs are for logged-in users unless API_DOCS_PUBLIC opens them (#16, defect 11)."""

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_cannot_read_the_schema():
    response = Client().get("/api/schema/")
    assert response.status_code == 403


def test_anonymous_is_sent_to_log_in_for_the_docs():
    response = Client().get("/api/docs/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/api/docs/"


def test_a_logged_in_user_reads_both():
    client = Client()
    client.force_login(UserFactory())
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200 and "/api/sync/positions" in schema.json()["paths"]
    assert client.get("/api/docs/").status_code == 200


def test_a_token_reads_the_schema():
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=UserFactory())
    response = Client().get("/api/schema/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200


def test_api_docs_public_opens_both_to_anyone(settings):
    settings.API_DOCS_PUBLIC = True
    assert Client().get("/api/schema/").status_code == 200
    assert Client().get("/api/docs/").status_code == 200
