import json
from pathlib import Path

import pytest


class FeedFile:
    """The sentiment feed file of one test (SENTIMENT_FEED_FILE); every write replaces it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, feed: dict) -> dict:
        self.path.write_text(json.dumps(feed, indent=2), encoding="utf-8")
        return feed

    def write_raw(self, text: str) -> None:
        self.path.write_text(text, encoding="utf-8")


@pytest.fixture
def feed(settings, tmp_path) -> FeedFile:
    settings.SENTIMENT_FEED_FILE = str(tmp_path / "sentiment_feed.json")
    settings.SENTIMENT_SOURCES = ["file"]
    settings.OPTIONS_FLOW_SOURCE = "file"
    return FeedFile(Path(settings.SENTIMENT_FEED_FILE))
