"""The Performance page: access, empty state, the metrics table, chart data, query counts."""

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from portfolio.models import MetricsWindow, PerformanceMetrics
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
OTHER = "DU7777777"


@pytest.fixture
def trader():
    return UserFactory()


@pytest.fixture
def account(trader):
    return AccountFactory(account_id=ACCOUNT, users=[trader])


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def history(account, days: int, start: date = date(2026, 10, 26)) -> list[PerformanceMetrics]:
    """``days`` daily rows (all-time window): +100 on even days, -40 on odd ones."""
    rows, index = [], Decimal(1)
    for i in range(days):
        index *= Decimal("1.001") if i % 2 == 0 else Decimal("0.9995")
        rows.append(
            PerformanceMetrics(
                account=account,
                as_of=start + timedelta(days=i),
                window=MetricsWindow.ALL,
                twr_index=index,
                twr=index - 1,
                drawdown=Decimal(0) if i % 2 == 0 else Decimal("-0.0005"),
                daily_pnl=Decimal("100.00") if i % 2 == 0 else Decimal("-40.00"),
            )
        )
    return PerformanceMetrics.objects.bulk_create(rows)


def latest(account, *, as_of: date, window=MetricsWindow.ALL, **values) -> None:
    PerformanceMetrics.objects.update_or_create(account=account, as_of=as_of, window=window, defaults=values)


def chart_data(page: str) -> dict:
    match = re.search(r'<script id="performance-data" type="application/json">(.*?)</script>', page, re.S)
    assert match, "the chart data is embedded"
    return json.loads(match.group(1))


# --- access -------------------------------------------------------------------------------------
def test_anonymous_is_sent_to_login():
    response = Client().get("/performance/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_trader_sees_only_their_metrics_and_another_account_id_is_ignored(trader, account):
    other = AccountFactory(account_id=OTHER, users=[UserFactory()])
    latest(other, as_of=date(2026, 11, 20), round_trips=77, twr=Decimal("0.5"))
    client = client_for(trader)
    for query in ({}, {"account": OTHER}):
        response = client.get("/performance/", query)
        assert response.context["account"] == account
        page = response.content.decode()
        assert "No metrics yet — they are computed after each close" in page and "+50.00%" not in page
    staff_page = client_for(UserFactory(staff=True)).get("/performance/", {"account": OTHER}).content.decode()
    assert "+50.00%" in staff_page and ">77<" in staff_page


# --- empty state and figures --------------------------------------------------------------------
def test_empty_state_loads_no_charts(trader, account):
    page = client_for(trader).get("/performance/").content.decode()
    assert "No metrics yet — they are computed after each close" in page
    assert "plotly" not in page and "performance-data" not in page


def test_metrics_table_for_both_windows(trader, account):
    history(account, 3, start=date(2026, 11, 18))
    latest(
        account,
        as_of=date(2026, 11, 20),
        round_trips=4,
        win_rate=Decimal("0.5"),
        profit_factor=Decimal("2.6666666667"),
        expectancy=Decimal("50.0000"),
        gross_profit=Decimal("320"),
        gross_loss=Decimal("-120"),
        max_consecutive_losses=2,
        twr=Decimal("0.0313710000"),
        mwr=Decimal("0.1234"),
        max_drawdown=Decimal("-0.25"),
        sharpe=Decimal("1.4142"),
        sortino=Decimal("2.5"),
    )
    latest(
        account,
        as_of=date(2026, 11, 20),
        window=MetricsWindow.LAST_20,
        round_trips=3,
        win_rate=Decimal("1"),
        profit_factor=None,
        expectancy=Decimal("80"),
    )
    page = client_for(trader).get("/performance/").content.decode()
    for text in (
        "50.0%",  # win rate, all time
        "100.0%",  # win rate, last 20
        "2.67",  # profit factor
        "— (no losing trips)",
        "+$50.00",
        "+$80.00",
        "+3.14%",  # TWR
        "+12.34%",  # MWR
        "-25.00%",  # max drawdown
        "1.41",  # Sharpe
        "2.50",  # Sortino
        "as of the close of Fri Nov 20, 2026",
    ):
        assert text in page, text


def test_chart_data_and_monthly_pnl(trader, account):
    history(account, 10, start=date(2026, 10, 26))  # 6 days in October, 4 in November
    response = client_for(trader).get("/performance/")
    page = response.content.decode()
    data = chart_data(page)
    assert data["account"] == ACCOUNT and data["currency"] == "USD"
    assert [p["date"] for p in data["points"]][:2] == ["2026-10-26", "2026-10-27"]
    assert data["points"][0]["twr_index"] == "1.0010000000" and data["points"][1]["drawdown"] == "-0.0005000000"
    # October: 3 x +100, 3 x -40; November: 2 x +100, 2 x -40
    assert data["monthly_pnl"] == [
        {"month": "2026-10", "pnl": "180.0000", "days": 6, "pnl_text": "+$180.00"},
        {"month": "2026-11", "pnl": "120.0000", "days": 4, "pnl_text": "+$120.00"},
    ]
    # The hover labels are written by the template filters, not by the page's script.
    assert data["points"][0]["twr_text"] == "+0.10%" and data["points"][1]["twr_text"] == "+0.05%"
    assert "+$180.00" in page and "+$120.00" in page  # the table beside the chart
    assert "/static/vendor/plotly.min.js" in page and "/static/js/performance.js" in page
    assert "cdn." not in page.lower()


def test_profit_factor_without_round_trips_is_a_dash_not_no_losing_trips(trader, account):
    latest(account, as_of=date(2026, 11, 20), round_trips=0, profit_factor=None)
    page = client_for(trader).get("/performance/").content.decode()
    assert "no losing trips" not in page


# --- queries do not grow with the data --------------------------------------------------------------
PERFORMANCE_QUERIES = 5  # user (session cached), accounts, history, metrics all time, metrics last 20


@pytest.mark.parametrize("days", [5, 50])
def test_query_count_does_not_depend_on_history_length(trader, account, django_assert_num_queries, days):
    history(account, days)
    latest(account, as_of=date(2026, 10, 26), window=MetricsWindow.LAST_20, round_trips=1)
    client = client_for(trader)
    client.get("/performance/")
    with django_assert_num_queries(PERFORMANCE_QUERIES):
        response = client.get("/performance/")
    assert len(chart_data(response.content.decode())["points"]) == days
