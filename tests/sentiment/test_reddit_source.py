"""The Reddit source against recorded answers (``responses`` for the network, praw and prawcore run
for real): the OAuth token, the listing, a 429 mid-run resumed after the last post."""

import pytest
import responses

from sentiment.sources.base import SourceUnavailable
from sentiment.sources.reddit import RedditSource

TOKEN = "https://www.reddit.com/api/v1/access_token"
NEW = "https://oauth.reddit.com/r/wallstreetbets/new"


def _child(pid: str, created: float, title: str, score: int = 10) -> dict:
    return {
        "kind": "t3",
        "data": {
            "id": pid, "name": f"t3_{pid}", "title": title, "selftext": "body text", "author": "deepvalue42",
            "created_utc": created, "score": score, "num_comments": 3, "upvote_ratio": 0.87,
            "subreddit": "wallstreetbets", "permalink": f"/r/wallstreetbets/comments/{pid}/x/",
        },
    }  # fmt: skip


def _listing(children: list[dict], after: str | None) -> dict:
    return {"kind": "Listing", "data": {"after": after, "before": None, "dist": len(children), "children": children}}


NOW = 1_795_000_000.0  # 2026-11-18


def _source(sleep=lambda s: None, max_wait: int = 120) -> RedditSource:
    return RedditSource(
        client_id="id", client_secret="secret", user_agent="test by u/test", subreddits=["wallstreetbets"],
        max_wait=max_wait, sleep=sleep,
    )  # fmt: skip


@pytest.fixture
def token():
    responses.post(TOKEN, json={"access_token": "tok", "token_type": "bearer", "expires_in": 86400, "scope": "*"})


def _since():
    from datetime import UTC, datetime

    return datetime.fromtimestamp(NOW - 3600 * 5, tz=UTC)


@responses.activate
def test_posts_are_read_until_one_older_than_since(token):
    responses.get(
        NEW,
        json=_listing(
            [
                _child("a", NOW, "$TSLA puts are free money"),
                _child("b", NOW - 60, "$AAPL"),
                _child("old", NOW - 3600 * 6, "$MSFT"),
            ],
            after=None,
        ),
    )
    batch = _source().fetch(since=_since())
    assert [p.post_id for p in batch.posts] == ["t3_a", "t3_b"]
    first = batch.posts[0]
    assert (first.author, first.title, first.body, first.score, first.num_comments) == (
        "deepvalue42",
        "$TSLA puts are free money",
        "body text",
        10,
        3,
    )
    assert str(first.upvote_ratio) == "0.87"
    assert responses.calls[1].request.headers["Authorization"] == "bearer tok"


@responses.activate
def test_a_429_mid_run_waits_and_resumes_after_the_last_post(token):
    responses.get(NEW, json=_listing([_child(f"p{i}", NOW - i, f"$AAPL {i}") for i in range(100)], after="t3_p99"))
    responses.get(NEW, status=429, headers={"retry-after": "7"}, body="Too Many Requests")
    responses.get(NEW, json=_listing([_child("q1", NOW - 200, "$AAPL later")], after=None))
    slept = []
    batch = _source(sleep=slept.append).fetch(since=_since())
    assert slept == [7.0]
    assert batch.complete
    assert [p.post_id for p in batch.posts][-1] == "t3_q1"
    assert len(batch.posts) == 101
    listing_calls = [c.request.url for c in responses.calls if "oauth.reddit.com" in c.request.url]
    assert "after=t3_p99" in listing_calls[-1]  # resumed after the last post received


@responses.activate
def test_refused_credentials_make_the_source_unavailable():
    responses.post(TOKEN, json={"error": "invalid_grant"}, status=401)
    with pytest.raises(SourceUnavailable):
        _source().fetch(since=_since())
