"""The position page's candlestick chart: stored bars, the fills marked (buys and sells apart), events."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from portfolio.models import PositionEventKind
from portfolio.selectors import chart_bar_size
from tests.factories import AccountFactory, BarFactory, UserFactory
from tests.portfolio.test_pages_positions import _client, _event, _fill, _position

pytestmark = pytest.mark.django_db
OPENED = datetime(2026, 11, 23, 15, tzinfo=UTC)


def test_the_bar_size_follows_the_holding_period():
    assert chart_bar_size(timedelta(hours=3)) == "5m"
    assert chart_bar_size(timedelta(days=6)) == "1h"
    assert chart_bar_size(timedelta(days=90)) == "1d"


def _held(bars: int):
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    position = _position(account, "AAPL", opened_at=OPENED, closed_at=OPENED + timedelta(days=4), status="CLOSED")
    for i in range(bars):
        BarFactory(instrument=position.instrument, bar_size="1h", start=OPENED - timedelta(hours=i))
    buy = _fill(account, position.instrument, "BUY", Decimal(10), Decimal("150"), OPENED)
    sell = _fill(account, position.instrument, "SELL", Decimal(10), Decimal("155"), OPENED + timedelta(days=4))
    _event(position, PositionEventKind.OPENED, Decimal(0), Decimal(10), at=OPENED, execution=buy, price=Decimal("150"))
    _event(position, PositionEventKind.RECONCILE, Decimal(10), Decimal(12), at=OPENED + timedelta(days=1))
    _event(
        position,
        PositionEventKind.CLOSED,
        Decimal(10),
        Decimal(0),
        at=sell.executed_at,
        execution=sell,
        price=Decimal("155"),
    )
    return _client(trader), position


def _chart(page: str) -> dict:
    start = page.index('<script id="position-chart-data" type="application/json">') + len(
        '<script id="position-chart-data" type="application/json">'
    )
    return json.loads(page[start : page.index("</script>", start)])


def test_bars_and_fills_on_the_position_page():
    client, position = _held(bars=24)

    page = client.get(f"/positions/{position.pk}/").content.decode()

    chart = _chart(page)
    assert chart["bar_size"] == "1h" and len(chart["bars"]["x"]) == 24
    assert chart["bars"]["close"][0] == "155.10000000"  # decimals travel as strings
    assert [(f["side"], f["price"], f["x"]) for f in chart["fills"]] == [
        ("BUY", "150.00000000", "2026-11-23 10:00:00"),  # exchange time
        ("SELL", "155.00000000", "2026-11-27 10:00:00"),
    ]
    assert [e["label"] for e in chart["events"]] == ["Differs from the broker 10 → 12"]
    assert "vendor/plotly.min.js" in page and "js/position_chart.js" in page


def test_without_bars_the_page_says_so_and_loads_no_chart_script():
    client, position = _held(bars=0)
    page = client.get(f"/positions/{position.pk}/").content.decode()
    assert 'data-chart="empty"' in page and "position_chart.js" not in page


@pytest.mark.parametrize("bars", [10, 200])
def test_the_chart_keeps_the_page_s_query_count_as_bars_grow(bars, django_assert_num_queries):
    client, position = _held(bars=bars)
    client.get("/positions/")  # the session remembers the account
    with django_assert_num_queries(5):  # the page's 4 (the session from the cache), the bars of the holding's size
        client.get(f"/positions/{position.pk}/")
