"""Real processes for the tests that start them: celery workers and beat, management commands.

They run against the test database (PostgreSQL: other processes cannot open an in-memory SQLite
database) and, for Celery, Redis. Their output goes to a file, so a chatty child never blocks on a pipe.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)
POLL = 0.1


def redis_unavailable_reason() -> str | None:
    urls = {"REDIS_URL": settings.REDIS_URL, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}
    for name, url in urls.items():
        if not url.startswith("redis://"):
            return f"{name} is not a redis:// URL ({url or 'unset'})"
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
        except redis.RedisError as exc:
            return f"Redis at {name}={url} does not answer: {exc}"
    return None


def shared_database_unavailable_reason() -> str | None:
    if connection.vendor != "postgresql":
        return f"needs a test database other processes can open (PostgreSQL); this one is {connection.vendor}"
    return None


def subprocess_database_url() -> str:
    """The test database (not the one settings name) as a DATABASE_URL for the child processes."""
    test_db = connection.settings_dict
    base = os.environ.get("DATABASE_URL")
    if base:
        return urlunsplit(urlsplit(base)._replace(path="/" + quote(test_db["NAME"])))
    auth = quote(test_db["USER"] or "")
    if test_db["PASSWORD"]:
        auth += ":" + quote(test_db["PASSWORD"])
    port = f":{test_db['PORT']}" if test_db["PORT"] else ""
    return f"postgres://{auth}@{test_db['HOST']}{port}/{quote(test_db['NAME'])}"


def subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a child: the test database, this test's broker state file, nothing from a
    developer's .env."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV_FILE": str(tmp_path / "no.env"),
        "DATABASE_URL": subprocess_database_url(),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "VAR_DIR": str(tmp_path / "var"),
        "BROKER": "simulated",
        "BROKER_STATE_FILE": settings.BROKER_STATE_FILE,
        "DEMO_MODE": "false",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Process:
    """``python <args>`` in the project directory, its output in ``log_dir/<name>.log``."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, *args], cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @classmethod
    def celery(cls, name: str, args: list[str], **kwargs) -> "Process":
        return cls(name, ["-m", "celery", "-A", "config", *args], **kwargs)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")

    def wait_for_log(self, text: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            self.assert_running()
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not log {text!r} within {timeout}s:\n{self.log()}")
            time.sleep(POLL)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as the OOM killer or a pulled plug would do it."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()


def wait_until(done, *, timeout: float, what: str, processes: tuple[Process, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        for process in processes:
            process.assert_running()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL)
