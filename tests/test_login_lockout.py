"""Brute-force protection of the logins (issue #16, defect 7): django-axes as config/settings.py sets it up.

A username is locked after LOGIN_FAILURE_LIMIT (5) failures from any address, and an address after 5
failures over any usernames, for LOGIN_LOCKOUT_MINUTES (15); a refused login gets the lockout page with
status 429, on the trader's login page and the admin's alike. The product settings are on in every test
of the suite (the suite logs in with force_login, which runs no password check).

Time passing is simulated by ageing the recorded failures (AccessAttempt.attempt_time) rather than by
patching a clock inside axes.
"""

import base64
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db.models import F
from django.test import Client
from django.urls import path
from rest_framework.authentication import BasicAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

import config.urls
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parent.parent
LIMIT = 5
HOME = "203.0.113.10"  # the attacker's (or the forgetful trader's) address
ELSEWHERE = "198.51.100.20"
LOCKOUT_TEXT = "Too many failed logins; try again in 15 minutes or ask staff to unlock."
LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


def _login(client: Client, page: str, username: str, password: str, address: str = HOME, **headers):
    return client.post(page, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _fail(times: int, username: str, page: str = "/accounts/login/", address: str = HOME) -> list[int]:
    """``times`` wrong passwords, each from a fresh client (no cookie ties them together); their statuses."""
    return [_login(Client(), page, username, "wrong-password", address).status_code for _ in range(times)]


def _time_passes(minutes: float) -> None:
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=minutes))


def _assert_lockout_page(response) -> None:
    assert response.status_code == 429
    # The view rendered its form first; the middleware replaced it with the lockout page.
    assert "registration/locked_out.html" in [t.name for t in response.templates]
    assert LOCKOUT_TEXT in response.content.decode()


@pytest.fixture
def trader():
    return UserFactory(username="alice")


@pytest.fixture
def staff():
    return UserFactory(username="ops", superuser=True)


def test_the_settings_are_the_product_settings(settings):
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert settings.AXES_ENABLED is True
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username", "ip_address"]
    assert settings.AXES_RESET_ON_SUCCESS is True
    # Not told it is behind a proxy: the address is the socket's, whatever X-Forwarded-For says.
    assert settings.AXES_IPWARE_META_PRECEDENCE_ORDER == ("REMOTE_ADDR",)


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_five_wrong_passwords_lock_out_even_the_right_one(page, staff):
    client = Client()
    statuses = [_login(client, page, "ops", "wrong-password").status_code for _ in range(LIMIT)]

    # The first four get the form again; the fifth failure already answers with the lockout page.
    assert statuses == [200] * (LIMIT - 1) + [429]
    response = _login(client, page, "ops", TEST_PASSWORD)
    _assert_lockout_page(response)
    assert not _logged_in(client)
    # Every failure is also kept for good, beyond unlocks and cool-offs.
    assert AccessFailureLog.objects.filter(username="ops").count() == LIMIT + 1


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_without_failures_the_right_password_logs_in(page, staff):
    client = Client()

    response = _login(client, page, "ops", TEST_PASSWORD)

    assert response.status_code == 302
    assert _logged_in(client)
    assert AccessLog.objects.filter(username="ops", ip_address=HOME).exists()


def test_the_lockout_page_reads_well(trader):
    _fail(LIMIT, "alice")

    response = _login(Client(), "/accounts/login/", "alice", TEST_PASSWORD)

    _assert_lockout_page(response)
    page = response.content.decode()
    assert "<h1>Too many failed logins</h1>" in page
    assert "After 5 failed logins" in page
    assert 'href="/accounts/login/"' in page


def test_failures_on_one_login_page_count_on_the_other(staff):
    _fail(LIMIT - 1, "ops", page="/accounts/login/")
    _fail(1, "ops", page="/admin/login/")

    _assert_lockout_page(_login(Client(), "/admin/login/", "ops", TEST_PASSWORD))


class TestWhatIsLocked:
    """Username OR address (settings.AXES_LOCKOUT_PARAMETERS): each counted on its own."""

    def test_another_user_from_the_same_address_is_locked(self, trader):
        bob = UserFactory(username="bob")
        _fail(LIMIT, "alice")

        _assert_lockout_page(_login(Client(), "/accounts/login/", bob.username, TEST_PASSWORD))

    def test_another_user_from_another_address_is_not(self, trader):
        bob = UserFactory(username="bob")
        _fail(LIMIT, "alice")
        client = Client()

        assert _login(client, "/accounts/login/", bob.username, TEST_PASSWORD, address=ELSEWHERE).status_code == 302
        assert _logged_in(client)

    def test_the_locked_username_is_locked_from_every_address(self, trader):
        _fail(LIMIT, "alice")

        _assert_lockout_page(_login(Client(), "/accounts/login/", "alice", TEST_PASSWORD, address=ELSEWHERE))

    def test_one_user_guessed_from_many_addresses_is_locked(self, trader):
        for n in range(LIMIT):
            _fail(1, "alice", address=f"192.0.2.{n + 1}")

        _assert_lockout_page(_login(Client(), "/accounts/login/", "alice", TEST_PASSWORD, address=ELSEWHERE))

    def test_password_spraying_from_one_address_is_locked(self, trader):
        for n in range(LIMIT):
            _fail(1, f"user{n}")

        _assert_lockout_page(_login(Client(), "/accounts/login/", "alice", TEST_PASSWORD))


class TestCoolOff:
    def test_after_the_cool_off_the_right_password_works(self, trader):
        _fail(LIMIT, "alice")
        _time_passes(14)
        _assert_lockout_page(_login(Client(), "/accounts/login/", "alice", TEST_PASSWORD))

        # The refused attempt restarted the wait: 15 minutes from now, not from the fifth failure.
        _time_passes(14)
        _assert_lockout_page(_login(Client(), "/accounts/login/", "alice", TEST_PASSWORD))

        _time_passes(15.1)
        client = Client()
        assert _login(client, "/accounts/login/", "alice", TEST_PASSWORD).status_code == 302
        assert _logged_in(client)

    def test_old_failures_do_not_count(self, trader):
        _fail(LIMIT - 1, "alice")
        _time_passes(16)

        assert _fail(LIMIT - 1, "alice") == [200] * (LIMIT - 1)
        assert _login(Client(), "/accounts/login/", "alice", TEST_PASSWORD).status_code == 302


class TestSuccessResetsTheCount:
    def test_a_successful_login_forgets_the_failures_before_it(self, trader):
        assert _fail(LIMIT - 1, "alice") == [200] * (LIMIT - 1)
        assert _login(Client(), "/accounts/login/", "alice", TEST_PASSWORD).status_code == 302
        assert not AccessAttempt.objects.exists()

        assert _fail(LIMIT - 1, "alice") == [200] * (LIMIT - 1)
        assert _login(Client(), "/accounts/login/", "alice", TEST_PASSWORD).status_code == 302


class TestStaffUnlock:
    CHANGELIST = "/admin/axes/accessattempt/"

    def _staff_client(self, staff) -> Client:
        client = Client()
        client.force_login(staff)
        return client

    def test_the_admin_lists_the_attempts_with_the_lock(self, trader, staff):
        _fail(LIMIT, "alice")

        response = self._staff_client(staff).get(self.CHANGELIST)

        assert response.status_code == 200
        row = response.context["cl"].result_list[0]
        assert (row.username, row.ip_address) == ("alice", HOME)
        assert (row.username_total, row.address_total) == (LIMIT, LIMIT)
        assert response.context["cl"].model_admin.locked_out(row) is True
        assert "Unlock: delete the selected failed logins" in response.content.decode()

    def test_the_sums_span_rows(self, trader, staff):
        # Three failures from one address and two from another: no row reaches 5, the username does.
        _fail(3, "alice")
        _fail(2, "alice", address=ELSEWHERE)

        response = self._staff_client(staff).get(self.CHANGELIST)

        rows = response.context["cl"].result_list
        model_admin = response.context["cl"].model_admin
        assert sorted(r.failures_since_start for r in rows) == [2, 3]
        assert {r.username_total for r in rows} == {LIMIT}
        assert all(model_admin.locked_out(r) for r in rows)

    def test_unlock_action_lets_the_user_in(self, trader, staff):
        _fail(LIMIT, "alice")
        _assert_lockout_page(_login(Client(), "/accounts/login/", "alice", TEST_PASSWORD))
        selected = list(AccessAttempt.objects.filter(username="alice").values_list("pk", flat=True))

        response = self._staff_client(staff).post(
            self.CHANGELIST, {"action": "unlock", "_selected_action": selected}, follow=True
        )

        assert response.status_code == 200
        assert "Deleted 1 failed login record(s) (usernames: alice; addresses: 203.0.113.10)" in (
            response.content.decode()
        )
        assert not AccessAttempt.objects.exists()
        client = Client()
        assert _login(client, "/accounts/login/", "alice", TEST_PASSWORD).status_code == 302
        assert _logged_in(client)

    def test_unlock_needs_the_delete_permission(self, trader):
        viewer = UserFactory(username="viewer", staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_accessattempt"))
        client = Client()
        client.force_login(viewer)
        _fail(LIMIT, "alice")

        response = client.get(self.CHANGELIST)

        assert response.status_code == 200
        assert "unlock" not in response.context["cl"].model_admin.get_actions(response.wsgi_request)

    def test_manage_py_axes_reset_username(self, trader, capsys):
        _fail(LIMIT, "alice", address=ELSEWHERE)

        call_command("axes_reset_username", "alice")

        assert "1 attempts removed." in capsys.readouterr().out
        assert _login(Client(), "/accounts/login/", "alice", TEST_PASSWORD).status_code == 302


class TestApi:
    """Tokens and sessions are not passwords: axes leaves them alone; a password check through DRF is guarded."""

    def test_a_token_call_works(self, trader):
        token = Token.objects.create(user=trader)

        response = Client().get("/api/sync/status", HTTP_AUTHORIZATION=f"Token {token.key}", REMOTE_ADDR=HOME)

        assert response.status_code == 200

    def test_a_token_call_works_while_the_password_login_is_locked(self, trader):
        token = Token.objects.create(user=trader)
        _fail(LIMIT, "alice")

        response = Client().get("/api/sync/status", HTTP_AUTHORIZATION=f"Token {token.key}", REMOTE_ADDR=HOME)

        assert response.status_code == 200

    def test_a_session_call_works(self, trader):
        client = Client()
        assert _login(client, "/accounts/login/", "alice", TEST_PASSWORD).status_code == 302

        assert client.get("/api/sync/status", REMOTE_ADDR=HOME).status_code == 200


class BasicProbe(APIView):
    """An API view with DRF's BasicAuthentication, which the product does not enable (yet)."""

    authentication_classes = [BasicAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"user": request.user.get_username()})


urlpatterns = [path("basic-probe", BasicProbe.as_view()), *config.urls.urlpatterns]


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.urls(__name__)
def test_basic_authentication_is_guarded_too(trader):
    assert Client().get("/basic-probe", HTTP_AUTHORIZATION=_basic("alice", TEST_PASSWORD)).json() == {"user": "alice"}

    statuses = [
        Client().get("/basic-probe", HTTP_AUTHORIZATION=_basic("alice", "wrong-password"), REMOTE_ADDR=HOME).status_code
        for _ in range(LIMIT)
    ]
    assert statuses == [401] * LIMIT

    # Locked: the right password is refused too. Through DRF the refusal is DRF's 401, not the lockout
    # page: axes marks DRF's request wrapper, which the middleware (seeing Django's request) never reads.
    response = Client().get("/basic-probe", HTTP_AUTHORIZATION=_basic("alice", TEST_PASSWORD), REMOTE_ADDR=HOME)
    assert response.status_code == 401
    assert AccessAttempt.objects.get(username="alice").failures_since_start == LIMIT + 1
    # The same lock holds on the login page.
    _assert_lockout_page(_login(Client(), "/accounts/login/", "alice", TEST_PASSWORD))


class TestClientAddress:
    """Whose address counts: X-Forwarded-For only when the settings are told there is a proxy."""

    def test_without_a_proxy_a_forged_forwarded_for_does_not_give_a_fresh_address(self, trader):
        # Spraying while sending a new X-Forwarded-For each time: still one address, still locked.
        for n in range(LIMIT):
            _login(Client(), "/accounts/login/", f"user{n}", "wrong-password", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")

        assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HOME}
        response = _login(Client(), "/accounts/login/", "alice", TEST_PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99")
        _assert_lockout_page(response)

    @pytest.fixture
    def behind_proxy(self, settings, tmp_path):
        """The settings config/settings.py makes with DJANGO_BEHIND_PROXY=true, applied to this process."""
        for name, value in _settings_with(tmp_path, DJANGO_BEHIND_PROXY="true").items():
            setattr(settings, name, tuple(value) if isinstance(value, list) else value)
        return settings

    def test_behind_the_proxy_the_right_most_forwarded_address_counts(self, trader, behind_proxy):
        proxy = "10.0.0.2"
        # The client prepends a made-up entry each time; the proxy appends the address it saw.
        for n in range(LIMIT):
            _login(
                Client(),
                "/accounts/login/",
                f"user{n}",
                "wrong-password",
                address=proxy,
                HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {HOME}",
            )

        assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HOME}
        locked = _login(Client(), "/accounts/login/", "alice", TEST_PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR=HOME)
        _assert_lockout_page(locked)
        # Another client behind the same proxy is not the locked address.
        bob = UserFactory(username="bob")
        client = Client()
        response = _login(
            client, "/accounts/login/", bob.username, TEST_PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR=ELSEWHERE
        )
        assert response.status_code == 302
        assert _logged_in(client)


def _settings_with(tmp_path: Path, **env: str) -> dict:
    """The client-address settings of config/settings.py under ``env``, read in a fresh interpreter."""
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({n: getattr(s, n, None) for n in "
        "('AXES_IPWARE_META_PRECEDENCE_ORDER', 'AXES_IPWARE_PROXY_COUNT', 'IPWARE_STRICT')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_ENV_FILE": str(tmp_path / "no-such.env"),
            "VAR_DIR": str(tmp_path / "var"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_proxy_settings(tmp_path):
    assert _settings_with(tmp_path) == {
        "AXES_IPWARE_META_PRECEDENCE_ORDER": ["REMOTE_ADDR"],
        "AXES_IPWARE_PROXY_COUNT": None,
        "IPWARE_STRICT": None,
    }
    assert _settings_with(tmp_path, DJANGO_BEHIND_PROXY="true") == {
        "AXES_IPWARE_META_PRECEDENCE_ORDER": ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"],
        "AXES_IPWARE_PROXY_COUNT": 0,
        "IPWARE_STRICT": False,
    }


@pytest.mark.parametrize(("name", "value"), [("LOGIN_FAILURE_LIMIT", "0"), ("LOGIN_LOCKOUT_MINUTES", "0")])
def test_a_limit_or_lockout_below_one_is_refused(tmp_path, name, value):
    with pytest.raises(AssertionError, match="must be at least 1"):
        _settings_with(tmp_path, **{name: value})
