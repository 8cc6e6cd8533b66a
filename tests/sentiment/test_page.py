"""The Sentiment page: held symbols first, every part shown, queries constant as posts grow."""

import pytest
from django.test import Client
from django.utils import timezone

from portfolio.models import Position, PositionStatus
from sentiment.services.runs import confluence_run, options_flow_ingest_run, sentiment_ingest_run
from tests.factories import (
    AccountFactory,
    InstrumentFactory,
    OptionsPrintRowFactory,
    TweetRowFactory,
    UserFactory,
    sentiment_feed,
)

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _feed(feed, posts: int) -> None:
    now = timezone.now()
    tweets = [
        TweetRowFactory(
            text=f"$AAPL great quarter number {i}",
            created_at=(now - timezone.timedelta(minutes=5 * i)).isoformat(),
            likes=i,
        )
        for i in range(posts)
    ]
    tweets.append(TweetRowFactory(text="$TSLA terrible", created_at=now.isoformat()))
    prints = [
        OptionsPrintRowFactory(underlying="AAPL", kind="SWEEP", time=(now - timezone.timedelta(minutes=i)).isoformat())
        for i in range(3)
    ]
    feed.write(sentiment_feed(tweets=tweets, options_flow=prints))
    sentiment_ingest_run(source="file")
    options_flow_ingest_run()
    confluence_run()


def test_held_symbols_come_first_and_each_part_is_shown(feed):
    _feed(feed, posts=5)
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    Position.objects.create(
        account=account, instrument=InstrumentFactory(symbol="TSLA"), status=PositionStatus.OPEN, quantity=1,
        average_price=1, opened_at=timezone.now(),
    )  # fmt: skip
    html = _client(trader).get("/sentiment/").content.decode()
    symbols = html[html.index('data-field="symbols"') :]
    assert symbols.index("TSLA") < symbols.index("AAPL")
    assert "Sentiment · TSLA" in html  # the first held symbol is shown
    aapl = _client(trader).get("/sentiment/", {"symbol": "aapl"}).content.decode()
    assert "Sentiment · AAPL" in aapl
    assert "great quarter number" in aapl
    assert "Repeated sweeps" in aapl
    assert 'data-cell="score"' in aapl
    assert 'id="sentiment-data"' in aapl
    assert "is not a symbol" in _client(trader).get("/sentiment/", {"symbol": "<b>"}).content.decode()


def test_an_empty_page_says_how_data_comes():
    html = _client(UserFactory()).get("/sentiment/").content.decode()
    assert "No sentiment yet" in html


@pytest.mark.parametrize("posts", [3, 60])
def test_page_queries_do_not_grow_with_posts(feed, posts, django_assert_num_queries):
    _feed(feed, posts=posts)
    client = _client(UserFactory())
    # user (session cached), held symbols; symbols with data, hourly rows, closes, windows, posts (one union),
    # options flow, patterns with their prints (2), confluence history
    with django_assert_num_queries(11):
        response = client.get("/sentiment/", {"symbol": "AAPL"})
    assert response.status_code == 200
