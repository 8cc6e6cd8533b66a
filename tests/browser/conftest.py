"""Browser tests: headless Chromium driven by Playwright's sync API against pytest-django's ``live_server``.

Playwright cannot download its own browsers here, so it drives the system Chromium (Debian's
``/usr/bin/chromium``; ``CHROMIUM_PATH`` points elsewhere, e.g. on a laptop). Without it the tests are
skipped with the reason, so ``make test`` still passes on a machine without Chromium; in CI (the ``CI``
environment variable is set) a missing or broken Chromium fails them instead: a browser suite that
silently stops running proves nothing.

Fixtures:
- ``browser``: one Chromium for the module (starting it costs about a second).
- ``page``: a fresh context (cookies, storage) per test at 1280x800, closed after the test.
- ``login(page, user)``: logs in through the login form, as a trader would.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.factories import TEST_PASSWORD

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Generous: the live server runs the sync inline (Celery is eager) and the page polls every 1.5 to 5 s.
UI_TIMEOUT_MS = 20_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="module")
def _async_unsafe_allowed() -> Iterator[None]:
    """Let the test thread use the ORM while Playwright is running.

    Playwright's sync API keeps an asyncio event loop running in the test's thread from start to
    stop, and Django refuses ORM calls in a thread with a running loop ("You cannot call this from an
    async context"). Nothing here is async code sharing a connection between coroutines: the test
    thread is an ordinary synchronous caller, so the check is a false alarm for it. The variable is
    set only while this module's browser runs (module scope: it also covers the database flush after
    the last test, which happens before the browser stops) and restored afterwards, so the rest of
    the suite keeps Django's protection.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(_async_unsafe_allowed):
    if not Path(CHROMIUM).is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (install Debian's chromium, or set CHROMIUM_PATH)")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - playwright is in requirements/dev.txt
        _unavailable(f"playwright is not installed ({exc})")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except PlaywrightError as exc:
        playwright.stop()
        _unavailable(f"Playwright could not start {CHROMIUM}: {str(exc).splitlines()[0]}")
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def page(browser, live_server):
    """A page of a fresh browser context; uncaught JavaScript errors are collected in ``page.js_errors``."""
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    context = browser.new_context(viewport=DESKTOP, base_url=live_server.url, locale="en-US")
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture
def login() -> Callable:
    """``login(page, user)``: fill in the login form with the factories' password and submit it."""

    def _login(page, user, password: str = TEST_PASSWORD) -> None:
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)

    return _login
