"""Root pytest configuration: test settings that hold for the whole suite."""

import pytest

from config.celery import app as celery_app


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    # Tasks run inline in unit tests; the integration test starts real processes instead.
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    # Nothing a test sends may land in var/celery/queue (e.g. a task sent while eager mode is off).
    celery_app.conf.broker_url = "memory://"
    settings.BROKER = "simulated"
    settings.BROKER_STATE_FILE = str(tmp_path / "broker_state.json")
    settings.SENTIMENT_FEED_FILE = str(tmp_path / "sentiment_feed.json")
    settings.DEMO_MODE = False
    if "filebased" in settings.CACHES["default"]["BACKEND"]:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
