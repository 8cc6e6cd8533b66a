import pytest
from django.test import Client
from django.urls import reverse

from sentiment.models import Mention, SymbolSentiment, Tweet
from sentiment.services.runs import options_flow_ingest_run, sentiment_ingest_run
from tests.factories import OptionsPrintRowFactory, TweetRowFactory, UserFactory, sentiment_feed

pytestmark = pytest.mark.django_db
MODELS = [
    "tweet", "redditpost", "tweetsentiment", "redditsentiment", "mention", "symbolsentiment",
    "aggregatedsentiment", "optionsflow", "optionspattern", "confluencescore",
]  # fmt: skip


@pytest.fixture
def staff():
    client = Client()
    client.force_login(UserFactory(superuser=True))
    return client


def test_every_changelist_answers_for_staff_and_not_for_traders(feed, staff):
    feed.write(sentiment_feed(tweets=[TweetRowFactory()], options_flow=[OptionsPrintRowFactory()]))
    sentiment_ingest_run(source="file")
    options_flow_ingest_run()
    trader = Client()
    trader.force_login(UserFactory())
    for model in MODELS:
        url = reverse(f"admin:sentiment_{model}_changelist")
        assert staff.get(url).status_code == 200, model
        assert trader.get(url).status_code == 302, model


def test_deleting_spam_in_the_admin_rebuilds_the_aggregates(feed, staff):
    feed.write(sentiment_feed(tweets=[TweetRowFactory(text="$GME buy buy buy")]))
    sentiment_ingest_run(source="file")
    assert SymbolSentiment.objects.filter(symbol="GME").exists()
    response = staff.post(
        reverse("admin:sentiment_tweet_changelist"),
        {"action": "delete_and_reaggregate", "_selected_action": list(Tweet.objects.values_list("pk", flat=True))},
    )
    assert response.status_code == 302
    assert not Tweet.objects.exists()
    assert not Mention.objects.exists()
    assert not SymbolSentiment.objects.filter(symbol="GME").exists()
