"""Settings come from the environment; a production configuration refuses to start half-configured.

Each case imports the settings in a fresh interpreter with a controlled environment, so the test
process's own settings are never touched and a developer's ``.env`` cannot leak in.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent

# Prints the settings a test looks at, as JSON, once django.setup() has succeeded.
PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "SECRET_KEY": s.SECRET_KEY,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "DB_ENGINE": s.DATABASES["default"]["ENGINE"],
    "DB_NAME": str(s.DATABASES["default"]["NAME"]),
    "CELERY_BROKER_URL": s.CELERY_BROKER_URL,
    "CELERY_BEAT_SCHEDULER": s.CELERY_BEAT_SCHEDULER,
    "CELERY_BEAT_SCHEDULE": getattr(s, "CELERY_BEAT_SCHEDULE", None),
    "CELERY_TASK_TIME_LIMIT": s.CELERY_TASK_TIME_LIMIT,
    "SINGLE_FLIGHT_LOCK_TTL": s.SINGLE_FLIGHT_LOCK_TTL,
    "CELERY_BROKER_TRANSPORT_OPTIONS": s.CELERY_BROKER_TRANSPORT_OPTIONS,
    "BROKER": s.BROKER,
    "BROKER_STATE_FILE": s.BROKER_STATE_FILE,
    "EXCHANGE_TIME_ZONE": s.EXCHANGE_TIME_ZONE,
    "USE_TZ": s.USE_TZ,
    "TIME_ZONE": s.TIME_ZONE,
    "POSITION_SYNC_MARK_MISSING_AS_CLOSED": s.POSITION_SYNC_MARK_MISSING_AS_CLOSED,
    "INSTALLED_APPS": s.INSTALLED_APPS,
    "SECURE_PROXY_SSL_HEADER": s.SECURE_PROXY_SSL_HEADER,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_HSTS_PRELOAD": s.SECURE_HSTS_PRELOAD,
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "API_DOCS_PUBLIC": s.API_DOCS_PUBLIC,
    "COMMANDS": sorted(__import__("django.core.management", fromlist=["x"]).get_commands()),
}))
"""


def _run_settings(tmp_path: Path, *, command: list[str] | None = None, **env: str) -> subprocess.CompletedProcess:
    """Import the settings (or run ``manage.py`` with ``command``) in a fresh interpreter with ``env``."""
    clean_env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV_FILE": str(tmp_path / "no-such.env"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *command] if command else [sys.executable, "-c", PRINT_SETTINGS],
        cwd=BASE_DIR,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _loaded(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _refusal(result: subprocess.CompletedProcess) -> str:
    """The ImproperlyConfigured line of a failed start."""
    assert result.returncode != 0, f"settings loaded but should have been refused: {result.stdout}"
    lines = [line for line in result.stderr.splitlines() if "ImproperlyConfigured" in line]
    assert lines, result.stderr
    return lines[-1]


class TestProductionRefusesToStartHalfConfigured:
    def test_missing_secret_key_is_refused_and_named(self, tmp_path):
        result = _run_settings(
            tmp_path, DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="ledger.example.com", VAR_DIR=str(tmp_path / "var")
        )

        message = _refusal(result)
        assert "DJANGO_SECRET_KEY environment variable" in message
        assert "DJANGO_ALLOWED_HOSTS environment variable" not in message

    def test_missing_allowed_hosts_is_refused_and_named(self, tmp_path):
        result = _run_settings(
            tmp_path, DJANGO_DEBUG="false", DJANGO_SECRET_KEY="s3cret-" * 8, VAR_DIR=str(tmp_path / "var")
        )

        message = _refusal(result)
        assert "DJANGO_ALLOWED_HOSTS environment variable" in message
        assert "DJANGO_SECRET_KEY environment variable" not in message

    @pytest.mark.parametrize(
        "env",
        [
            {"DJANGO_SECRET_KEY": "", "DJANGO_ALLOWED_HOSTS": "ledger.example.com"},
            {"DJANGO_SECRET_KEY": "s3cret-" * 8, "DJANGO_ALLOWED_HOSTS": ""},
        ],
        ids=["empty-secret-key", "empty-allowed-hosts"],
    )
    def test_empty_values_are_refused(self, tmp_path, env):
        result = _run_settings(tmp_path, DJANGO_DEBUG="false", VAR_DIR=str(tmp_path / "var"), **env)

        message = _refusal(result)
        assert "non-empty" in message

    def test_loads_with_secret_key_and_allowed_hosts(self, tmp_path):
        result = _run_settings(
            tmp_path,
            DJANGO_DEBUG="false",
            DJANGO_SECRET_KEY="s3cret-" * 8,
            DJANGO_ALLOWED_HOSTS="ledger.example.com,www.ledger.example.com",
            VAR_DIR=str(tmp_path / "var"),
        )

        loaded = _loaded(result)
        assert loaded["DEBUG"] is False
        assert loaded["SECRET_KEY"] == "s3cret-" * 8
        assert loaded["ALLOWED_HOSTS"] == ["ledger.example.com", "www.ledger.example.com"]

    def test_dot_env_file_is_read(self, tmp_path):
        env_file = tmp_path / "prod.env"
        env_file.write_text(
            "DJANGO_DEBUG=false\n"
            f"DJANGO_SECRET_KEY={'from-the-env-file-' * 3}\n"
            "DJANGO_ALLOWED_HOSTS=ledger.example.com\n"
        )

        loaded = _loaded(_run_settings(tmp_path, DJANGO_ENV_FILE=str(env_file), VAR_DIR=str(tmp_path / "var")))

        assert loaded["DEBUG"] is False
        assert loaded["SECRET_KEY"] == "from-the-env-file-" * 3

    def test_var_dir_from_dot_env_file_is_used(self, tmp_path):
        env_file = tmp_path / "dev.env"
        env_file.write_text(f"VAR_DIR={tmp_path / 'elsewhere'}\n")

        loaded = _loaded(_run_settings(tmp_path, DJANGO_ENV_FILE=str(env_file)))

        assert loaded["DB_NAME"] == str(tmp_path / "elsewhere" / "db.sqlite3")


class TestProductionRefusesAWeakSecretKey:
    HOSTS = {"DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "ledger.example.com"}

    def test_a_one_character_key_is_refused_and_the_problem_named(self, tmp_path):
        result = _run_settings(tmp_path, DJANGO_SECRET_KEY="x", VAR_DIR=str(tmp_path / "var"), **self.HOSTS)

        message = _refusal(result)
        assert "refuses this DJANGO_SECRET_KEY: it is too short (1 characters; use at least 50)" in message

    def test_a_placeholder_key_is_refused_without_printing_it(self, tmp_path):
        key = "django-insecure-" + "0123456789abcdefghij" * 3
        result = _run_settings(tmp_path, DJANGO_SECRET_KEY=key, VAR_DIR=str(tmp_path / "var"), **self.HOSTS)

        message = _refusal(result)
        assert "contains 'insecure': it looks like a placeholder" in message
        assert key not in result.stderr  # a refused key may still be somebody's real secret

    # What is refused, checked in this process (the two starts above show that it stops the process).
    @pytest.mark.parametrize(
        ("key", "problem"),
        [
            ("k" * 20 + "e" * 29, "is too short (49 characters; use at least 50)"),
            ("abcd" * 20, "has fewer than 5 different characters"),
            ("please-CHANGE-ME-" + "0123456789abcdefghij" * 3, "contains 'change-me'"),
            ("changeme" + "0123456789abcdefghij" * 3, "contains 'changeme'"),
            ("dev-only-insecure-secret-key-change-me", "is too short"),
            ("dev-only-insecure-secret-key-change-me" * 2, "contains 'insecure'"),
            ("Zq3-v9Lr_x" * 5, None),
        ],
    )
    def test_what_makes_a_key_weak(self, key, problem):
        from config.settings import _secret_key_weakness

        weakness = _secret_key_weakness(key)
        assert weakness == problem if problem is None else problem in weakness

    def test_debugging_keeps_any_key(self, tmp_path):
        loaded = _loaded(_run_settings(tmp_path, DJANGO_SECRET_KEY="short"))
        assert loaded["SECRET_KEY"] == "short"


class TestHttps:
    PRODUCTION = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "s3cret-" * 8, "DJANGO_ALLOWED_HOSTS": "x.example"}

    def test_production_defaults_are_https_only_and_trust_no_proxy(self, tmp_path):
        loaded = _loaded(_run_settings(tmp_path, VAR_DIR=str(tmp_path / "var"), **self.PRODUCTION))

        assert loaded["SECURE_PROXY_SSL_HEADER"] is None
        assert loaded["SECURE_SSL_REDIRECT"] is True
        assert loaded["SECURE_HSTS_SECONDS"] == 31_536_000
        assert loaded["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
        assert loaded["SECURE_HSTS_PRELOAD"] is False
        assert loaded["SESSION_COOKIE_SECURE"] is True
        assert loaded["API_DOCS_PUBLIC"] is False

    def test_each_can_be_set(self, tmp_path):
        env = {
            "DJANGO_SSL_REDIRECT": "false",
            "DJANGO_HSTS_SECONDS": "3600",
            "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "false",
            "DJANGO_HSTS_PRELOAD": "true",
            "API_DOCS_PUBLIC": "true",
            "DJANGO_BEHIND_PROXY": "true",
        }
        loaded = _loaded(_run_settings(tmp_path, VAR_DIR=str(tmp_path / "var"), **env, **self.PRODUCTION))

        assert loaded["SECURE_SSL_REDIRECT"] is False
        assert loaded["SECURE_HSTS_SECONDS"] == 3600
        assert loaded["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
        assert loaded["SECURE_HSTS_PRELOAD"] is True
        assert loaded["API_DOCS_PUBLIC"] is True
        assert loaded["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]

    def test_development_neither_redirects_nor_sends_hsts(self, tmp_path):
        loaded = _loaded(_run_settings(tmp_path))
        assert loaded["SECURE_SSL_REDIRECT"] is False and loaded["SECURE_HSTS_SECONDS"] == 0

    def test_check_deploy_is_clean_with_the_production_defaults(self, tmp_path):
        result = _run_settings(
            tmp_path,
            command=["check", "--deploy", "--fail-level", "WARNING"],
            VAR_DIR=str(tmp_path / "var"),
            **{**self.PRODUCTION, "DJANGO_SECRET_KEY": "Zq3-v9Lr_x" * 5},
        )

        assert result.returncode == 0, result.stderr
        assert "System check identified no issues (1 silenced)." in result.stdout  # W021: preload is opt-in

    def test_check_deploy_warns_when_https_is_turned_off(self, tmp_path):
        result = _run_settings(
            tmp_path,
            command=["check", "--deploy", "--fail-level", "WARNING"],
            VAR_DIR=str(tmp_path / "var"),
            DJANGO_SSL_REDIRECT="false",
            DJANGO_HSTS_SECONDS="0",
            **{**self.PRODUCTION, "DJANGO_SECRET_KEY": "Zq3-v9Lr_x" * 5},
        )

        assert result.returncode != 0
        assert "security.W004" in result.stderr and "security.W008" in result.stderr


class TestDevelopmentToolsAreNotInProduction:
    """The demo and bench commands write made-up users and data: a production start must not offer them."""

    PRODUCTION = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "s3cret-" * 8, "DJANGO_ALLOWED_HOSTS": "x.example"}
    TOOLS = {"demo_setup", "demo_history", "bench_sync", "bench_ledger", "bench_metrics", "bench_dashboard"}

    def test_production_has_no_devtools_and_no_demo_or_bench_command(self, tmp_path):
        loaded = _loaded(_run_settings(tmp_path, VAR_DIR=str(tmp_path / "var"), **self.PRODUCTION))
        assert "devtools" not in loaded["INSTALLED_APPS"]
        assert self.TOOLS.isdisjoint(loaded["COMMANDS"])
        assert {"sync_positions", "ingest_executions", "import_flex"} <= set(loaded["COMMANDS"])

    def test_devtools_true_installs_them_in_production(self, tmp_path):
        loaded = _loaded(_run_settings(tmp_path, VAR_DIR=str(tmp_path / "var"), DEVTOOLS="true", **self.PRODUCTION))
        assert "devtools" in loaded["INSTALLED_APPS"]
        assert set(loaded["COMMANDS"]) >= self.TOOLS

    def test_development_has_them(self, tmp_path):
        loaded = _loaded(_run_settings(tmp_path, VAR_DIR=str(tmp_path / "var")))
        assert set(loaded["COMMANDS"]) >= self.TOOLS


class TestDefaults:
    def test_development_defaults_with_a_clean_environment(self, tmp_path):
        loaded = _loaded(_run_settings(tmp_path))

        assert loaded["DEBUG"] is True
        assert loaded["DB_ENGINE"] == "django.db.backends.sqlite3"
        assert loaded["DB_NAME"] == str(BASE_DIR / "var" / "db.sqlite3")
        assert loaded["CELERY_BROKER_URL"].startswith("filesystem://")
        assert loaded["BROKER"] == "simulated"
        assert loaded["BROKER_STATE_FILE"] == str(BASE_DIR / "var" / "broker_state.json")
        assert loaded["EXCHANGE_TIME_ZONE"] == "America/New_York"
        assert loaded["USE_TZ"] is True
        assert loaded["TIME_ZONE"] == "UTC"
        assert loaded["POSITION_SYNC_MARK_MISSING_AS_CLOSED"] is False
        assert loaded["CELERY_BEAT_SCHEDULER"] == "django_celery_beat.schedulers:DatabaseScheduler"
        assert not loaded["CELERY_BEAT_SCHEDULE"]

    def test_single_flight_lock_outlives_the_task_time_limit(self, tmp_path):
        loaded = _loaded(_run_settings(tmp_path, CELERY_TASK_TIME_LIMIT="900"))

        assert loaded["CELERY_TASK_TIME_LIMIT"] == 900
        assert loaded["SINGLE_FLIGHT_LOCK_TTL"] > 900

    def test_redis_redelivers_a_dead_workers_task_soon_after_the_time_limit(self, tmp_path):
        """kombu's default visibility timeout is an hour: a task whose worker was killed waited that long."""
        loaded = _loaded(_run_settings(tmp_path, CELERY_BROKER_URL="redis://redis:6379/1"))

        options = loaded["CELERY_BROKER_TRANSPORT_OPTIONS"]
        assert options["visibility_timeout"] == loaded["CELERY_TASK_TIME_LIMIT"] + 60 == 360
        # Looked for every tenth of the timeout, not kombu's 10 x 10 s.
        assert (options["unacked_restore_interval"], options["unacked_restore_throttle"]) == (36, 1)

    def test_visibility_timeout_follows_the_time_limit_or_its_own_variable(self, tmp_path):
        redis = {"CELERY_BROKER_URL": "redis://redis:6379/1"}
        loaded = _loaded(_run_settings(tmp_path, **redis, CELERY_TASK_TIME_LIMIT="900"))
        assert loaded["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == 960

        loaded = _loaded(_run_settings(tmp_path, **redis, CELERY_VISIBILITY_TIMEOUT="5"))
        options = loaded["CELERY_BROKER_TRANSPORT_OPTIONS"]
        assert (options["visibility_timeout"], options["unacked_restore_interval"]) == (5, 1)

    def test_database_url_selects_another_database(self, tmp_path):
        loaded = _loaded(_run_settings(tmp_path, DATABASE_URL="postgres://ledger:pw@db.example.com:5432/ledger"))

        assert loaded["DB_ENGINE"] == "django.db.backends.postgresql"
        assert loaded["DB_NAME"] == "ledger"


class TestBackupEncryptionKey:
    def test_a_key_that_is_not_a_fernet_key_stops_the_start(self, tmp_path):
        result = _run_settings(tmp_path, VAR_DIR=str(tmp_path / "var"), BACKUP_ENCRYPTION_KEY="correct horse battery")

        assert "BACKUP_ENCRYPTION_KEY must be Fernet keys" in _refusal(result)

    def test_several_keys_load(self, tmp_path):
        keys = "7Nf0RZ0bXmXj4uE4mXWkR0l1fW8yVZVbq5c3yB1j0lU=, ZmRlZmRlZmRlZmRlZmRlZmRlZmRlZmRlZmRlZmRlZmQ="

        _loaded(_run_settings(tmp_path, VAR_DIR=str(tmp_path / "var"), BACKUP_ENCRYPTION_KEY=keys))
