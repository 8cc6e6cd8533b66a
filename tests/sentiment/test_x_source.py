"""The X source against recorded API v2 answers (``responses`` stands in for the network, tweepy runs
for real): pages, normalised posts, a 429 in the middle of a run, refused credentials."""

import json
import time
from pathlib import Path

import pytest
import responses

from core.models import SkipReason, SyncStatus
from marketdata.models import WatchedInstrument
from sentiment.models import Tweet
from sentiment.services.runs import sentiment_ingest_run
from sentiment.sources.base import SourceUnavailable
from sentiment.sources.x import XSource, cashtag_queries
from tests.factories import InstrumentFactory

RECORDED = Path(__file__).parent / "recorded"
SEARCH = "https://api.twitter.com/2/tweets/search/recent"


def _page(name: str) -> dict:
    return json.loads((RECORDED / name).read_text())


def _rate_limited(reset_in: int) -> dict:
    return {
        "json": {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429},
        "status": 429,
        "headers": {
            "x-rate-limit-limit": "60",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(int(time.time()) + reset_in),
        },
    }


def test_cashtag_queries_stay_within_the_length_limit():
    symbols = [f"S{i:04d}" for i in range(200)]
    queries = cashtag_queries(symbols)
    assert len(queries) > 1
    assert all(len(q) <= 512 for q in queries)
    assert sum(q.count("$") for q in queries) == 200
    assert cashtag_queries(["AAPL", "BRK.B"]) == ["($AAPL OR $BRK.B) -is:retweet"]


@responses.activate
def test_pages_are_followed_and_posts_normalised():
    responses.get(SEARCH, json=_page("x_search_page1.json"))
    responses.get(SEARCH, json=_page("x_search_page2.json"))
    batch = XSource(bearer_token="token", sleep=lambda s: None).fetch(symbols=["AAPL", "MSFT", "NVDA"], since=None)
    assert [p.post_id for p in batch.posts] == ["1861234567890123456", "1861234567890123457", "1861234567890123999"]
    first = batch.posts[0]
    assert (first.author, first.author_followers, first.likes, first.retweets, first.replies) == (
        "chartwatcher",
        12400,
        120,
        14,
        9,
    )
    assert first.created_at.isoformat() == "2026-11-20T14:35:02+00:00"
    assert batch.complete
    assert responses.calls[0].request.headers["Authorization"] == "Bearer token"
    assert "next_token=b26v89c19zqg8o3fpds" in responses.calls[1].request.url
    assert "%24AAPL" in responses.calls[0].request.url


@responses.activate
def test_a_429_mid_run_waits_for_the_reset_and_resumes_at_the_same_page():
    responses.get(SEARCH, json=_page("x_search_page1.json"))
    responses.get(SEARCH, **_rate_limited(reset_in=30))
    responses.get(SEARCH, json=_page("x_search_page2.json"))
    slept = []
    batch = XSource(bearer_token="token", max_wait=120, sleep=slept.append).fetch(symbols=["AAPL"], since=None)
    assert len(batch.posts) == 3
    assert batch.complete
    assert len(slept) == 1 and 25 <= slept[0] <= 32
    # the page asked again after the wait is the one refused
    assert "next_token=b26v89c19zqg8o3fpds" in responses.calls[1].request.url
    assert "next_token=b26v89c19zqg8o3fpds" in responses.calls[2].request.url


@responses.activate
def test_a_429_longer_than_the_allowed_wait_keeps_what_came_and_stops(feed, settings):
    responses.get(SEARCH, json=_page("x_search_page1.json"))
    responses.get(SEARCH, **_rate_limited(reset_in=900))
    batch = XSource(bearer_token="token", max_wait=120, sleep=lambda s: pytest.fail("must not wait")).fetch(
        symbols=["AAPL"], since=None
    )
    assert len(batch.posts) == 2
    assert not batch.complete
    assert "more than 120s" in batch.warnings[0]


@responses.activate
def test_refused_credentials_make_the_source_unavailable():
    responses.get(SEARCH, json={"title": "Unauthorized", "status": 401, "detail": "Unauthorized"}, status=401)
    with pytest.raises(SourceUnavailable, match="refused the bearer token"):
        XSource(bearer_token="bad").fetch(symbols=["AAPL"], since=None)


@responses.activate
@pytest.mark.django_db
def test_an_x_run_ingests_and_a_rate_limit_is_a_warning(settings):
    settings.X_BEARER_TOKEN = "token"
    settings.SENTIMENT_RATE_LIMIT_MAX_WAIT = 0
    WatchedInstrument.objects.create(instrument=InstrumentFactory(symbol="AAPL"))
    responses.get(SEARCH, json=_page("x_search_page1.json"))
    responses.get(SEARCH, **_rate_limited(reset_in=60))
    run = sentiment_ingest_run(source="x")
    assert run.status == SyncStatus.SUCCESS
    assert run.created == 2
    assert any("rate limit" in w for w in run.warnings)
    assert set(Tweet.objects.values_list("source", flat=True)) == {"x"}
    responses.reset()
    responses.get(SEARCH, json={"title": "Unauthorized", "status": 401, "detail": "Unauthorized"}, status=401)
    skipped = sentiment_ingest_run(source="x")
    assert (skipped.status, skipped.skip_reason) == (SyncStatus.SKIPPED, SkipReason.SOURCE_UNAVAILABLE)
