"""The sentiment API: logged-in users only, paginated, 400 naming a bad field."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from sentiment.models import AggregatedSentiment, ConfluenceScore
from sentiment.services.runs import options_flow_ingest_run, sentiment_ingest_run
from tests.factories import OptionsPrintRowFactory, RedditRowFactory, TweetRowFactory, UserFactory, sentiment_feed

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    c = Client()
    c.force_login(UserFactory())
    return c


@pytest.fixture
def ingested(feed):
    feed.write(
        sentiment_feed(
            tweets=[
                TweetRowFactory(id="1", text="$AAPL wonderful, love it", created_at="2026-11-20T14:00:00Z"),
                TweetRowFactory(id="2", text="$MSFT awful, hate it", created_at="2026-11-20T15:00:00Z"),
            ],
            reddit_posts=[
                RedditRowFactory(id="t3_x", title="$AAPL", body="great results", created_at="2026-11-20T16:00:00Z")
            ],
            options_flow=[OptionsPrintRowFactory(id=f"p{i}", kind="SWEEP", size=300) for i in range(3)],
        )
    )
    sentiment_ingest_run(source="file")
    options_flow_ingest_run()


@pytest.mark.parametrize(
    "url",
    [
        "/api/sentiment/posts",
        "/api/sentiment/symbols/AAPL",
        "/api/sentiment/confluence/AAPL",
        "/api/options-flow",
        "/api/options-flow/patterns",
        "/sentiment/",
    ],
)
def test_anonymous_users_are_refused(url):
    response = Client().get(url)
    assert response.status_code in (302, 401, 403)


def test_posts_with_scores_filtered_and_paginated(client, ingested):
    body = client.get("/api/sentiment/posts").json()
    assert body["count"] == 3
    assert [p["post_id"] for p in body["results"]] == ["t3_x", "2", "1"]  # newest first
    reddit = body["results"][0]
    assert (reddit["platform"], reddit["title"], reddit["text"], reddit["label"]) == (
        "reddit",
        "$AAPL",
        "great results",
        "BULLISH",
    )
    assert isinstance(reddit["compound"], str)
    aapl = client.get("/api/sentiment/posts", {"symbol": "aapl", "source": "x"}).json()
    assert [p["post_id"] for p in aapl["results"]] == ["1"]
    bearish = client.get("/api/sentiment/posts", {"label": "BEARISH"}).json()
    assert [p["post_id"] for p in bearish["results"]] == ["2"]
    since = client.get("/api/sentiment/posts", {"since": "2026-11-20T14:30:00Z"}).json()
    assert since["count"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"symbol": "$$$"}, "symbol"),
        ({"source": "facebook"}, "source"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-20T14:00:00"}, "since"),  # no zone
        ({"label": "happy"}, "label"),
    ],
)
def test_bad_post_filters_answer_400_naming_the_field(client, params, field):
    response = client.get("/api/sentiment/posts", params)
    assert response.status_code == 400
    assert field in response.json()


def test_symbol_window(client):
    as_of = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    AggregatedSentiment.objects.create(
        symbol="AAPL", window="7d", as_of=as_of, mentions=4, bullish=3, neutral=1, bearish=0,
        mean_compound=Decimal("0.5"), weighted_compound=Decimal("0.6"), change=Decimal("0.1"), spike=Decimal("2.5"),
        per_source={"x": {"mentions": 4}}, computed_at=as_of,
    )  # fmt: skip
    body = client.get("/api/sentiment/symbols/aapl", {"window": "7d"}).json()
    assert (body["mentions"], body["weighted_compound"], body["spike"]) == (4, "0.6000000000", "2.5000000000")
    assert body["per_source"] == {"x": {"mentions": 4}}
    assert client.get("/api/sentiment/symbols/AAPL", {"window": "1h"}).status_code == 404
    assert "window" in client.get("/api/sentiment/symbols/AAPL", {"window": "1y"}).json()


def test_confluence_latest_and_history(client):
    hour = datetime(2026, 11, 20, 15, tzinfo=UTC)
    for i in range(3):
        ConfluenceScore.objects.create(
            symbol="AAPL", hour=hour + timedelta(hours=i), score=Decimal(i * 10), sentiment=Decimal("0.1") * i,
            missing=["momentum"], computed_at=hour,
        )  # fmt: skip
    latest = client.get("/api/sentiment/confluence/AAPL").json()
    assert (latest["score"], latest["missing"]) == ("20.00", ["momentum"])
    history = client.get("/api/sentiment/confluence/AAPL", {"since": "2026-11-20T16:00:00Z"}).json()
    assert [row["score"] for row in history["results"]] == ["20.00", "10.00"]
    assert client.get("/api/sentiment/confluence/MSFT").status_code == 404
    assert "since" in client.get("/api/sentiment/confluence/AAPL", {"since": "soon"}).json()


def test_options_flow_and_patterns(client, ingested):
    flow = client.get("/api/options-flow", {"symbol": "NVDA"}).json()
    assert flow["count"] == 3
    assert flow["results"][0]["premium"] == "130500.0000"
    assert client.get("/api/options-flow", {"unusual": "true"}).json()["count"] == 3
    assert client.get("/api/options-flow", {"unusual": "false"}).json()["count"] == 0
    assert "unusual" in client.get("/api/options-flow", {"unusual": "maybe"}).json()
    patterns = client.get("/api/options-flow/patterns", {"symbol": "NVDA"}).json()
    assert {p["kind"] for p in patterns["results"]} == {"REPEATED_SWEEPS"}
    assert sorted(patterns["results"][0]["prints"]) == ["p0", "p1", "p2"]
    assert "symbol" in client.get("/api/options-flow/patterns", {"symbol": "1234567"}).json()
