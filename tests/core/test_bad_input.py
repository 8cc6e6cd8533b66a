"""Bad input is a 400 naming the field, never a 500 (issue #16, defect 6).

- A NUL character anywhere in a query parameter or a form field (core.middleware), or in a JSON body
  (core.parsers): PostgreSQL cannot hold one, so these were 500s there only. They are marked
  ``postgres_too``: the suite runs them on SQLite, CI (DATABASE_URL) on PostgreSQL as well.
- A date or time outside 1900-01-01..2999-12-31 (core.inputs): the code shifts dates by days and
  time zones, which overflowed at Python's limits.
- A JSON body nested deeper than the parser allows (RecursionError before).
"""

import django_filters
import pytest
from django.test import Client
from django.urls import get_resolver

from core.inputs import EARLIEST_DATE, LATEST_DATE, DateFilter, IsoDateTimeFilter
from core.parsers import JSONParser, json_depth
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
NUL_ACCOUNT = "DU\x00"

# Every URL that reads ``?account=``: the API's (trading/api/urls.py, portfolio/api/urls.py and the
# two in config/urls.py) and the pages' (portfolio/urls.py).
API_READING_ACCOUNT = [
    "/api/portfolio/positions",
    "/api/portfolio/snapshots",
    "/api/portfolio/metrics",
    "/api/portfolio/metrics/history",
    "/api/trading/ibkr/positions",
    "/api/trading/trades",
    "/api/trading/round-trips",
    "/api/trading/day-trades",
    "/api/trading/settlements",
    "/api/trading/cash-state",
    "/api/trading/pdt-status",
    "/api/trading/portfolio/summary",
]
PAGES_READING_ACCOUNT = [
    "/",
    "/overview/fragments",
    "/positions/",
    "/trades/",
    "/trades/export.csv",
    "/compliance/",
    "/performance/",
    "/sync-health/",
]


@pytest.fixture
def trader(broker_state):
    trader = UserFactory()
    AccountFactory(account_id=ACCOUNT, users=[trader])
    return trader


@pytest.fixture
def client(trader) -> Client:
    client = Client()
    client.force_login(trader)
    return client


# --- NUL characters -----------------------------------------------------------------------------
@pytest.mark.postgres_too
@pytest.mark.parametrize("url", API_READING_ACCOUNT)
def test_nul_in_the_account_parameter_of_the_api_is_a_400_naming_it(client, url):
    response = client.get(url, {"account": NUL_ACCOUNT})
    assert response.status_code == 400
    assert response.json() == {"account": ["Null characters are not allowed."]}


@pytest.mark.postgres_too
@pytest.mark.parametrize("url", PAGES_READING_ACCOUNT)
def test_nul_in_the_account_parameter_of_a_page_is_a_400_page_naming_it(client, url):
    response = client.get(url, {"account": NUL_ACCOUNT})
    assert response.status_code == 400
    assert response.content.decode() == "account: Null characters are not allowed."


@pytest.mark.postgres_too
@pytest.mark.parametrize("params", [{"symbol": "AA\x00PL"}, {"since": "2026-01-01\x00"}, {"x\x00": "1"}])
def test_nul_in_any_other_parameter_is_refused_as_well(client, params):
    response = client.get("/api/trading/trades", params)
    assert response.status_code == 400
    (field,) = response.json()
    assert field == next(iter(params)).replace("\x00", "\\x00")


@pytest.mark.postgres_too
def test_nul_in_the_sync_request_json_body_is_a_400_naming_the_field(client):
    response = client.post("/api/sync/positions", {"account": NUL_ACCOUNT}, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"account": ["Null characters are not allowed."]}


@pytest.mark.postgres_too
@pytest.mark.parametrize("body", [{"account": [NUL_ACCOUNT]}, {"account": {"k\x00": 1}}])
def test_nul_nested_in_a_json_field_names_the_top_level_field(client, body):
    response = client.post("/api/sync/positions", body, content_type="application/json")
    assert response.status_code == 400 and list(response.json()) == ["account"]


@pytest.mark.postgres_too
def test_nul_in_the_sync_request_form_body_is_a_400_naming_the_field(client):
    response = client.post("/api/sync/positions", {"account": NUL_ACCOUNT})  # multipart, as a browser form
    assert response.status_code == 400
    assert response.json() == {"account": ["Null characters are not allowed."]}


@pytest.mark.postgres_too
def test_nul_in_the_sync_now_form_is_a_400(client):
    response = client.post("/sync-now", {"account": NUL_ACCOUNT})
    assert response.status_code == 400
    assert response.content.decode() == "account: Null characters are not allowed."


def test_text_without_nul_is_untouched(client):
    assert client.get("/api/trading/trades", {"symbol": "AAPL", "account": ACCOUNT}).status_code == 200
    assert client.get("/trades/", {"symbol": "AAPL", "account": ACCOUNT}).status_code == 200


# --- dates out of range -------------------------------------------------------------------------
RANGE_MESSAGE = "Enter a date from 1900-01-01 to 2999-12-31."


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/api/trading/cash-state", {"account": ACCOUNT, "date": "0001-01-01"}, "date"),
        ("/api/trading/cash-state", {"account": ACCOUNT, "date": "9999-12-31"}, "date"),
        ("/api/trading/pdt-status", {"account": ACCOUNT, "date": "0001-01-01"}, "date"),
        ("/api/portfolio/metrics/history", {"account": ACCOUNT, "since": "0001-01-01"}, "since"),
        ("/api/portfolio/metrics", {"account": ACCOUNT, "date": "9999-12-31"}, "date"),
        ("/api/trading/portfolio/summary", {"account": ACCOUNT, "date": "0001-01-01"}, "date"),
        ("/api/trading/trades", {"until": "9999-12-31"}, "until"),
        ("/api/trading/trades", {"since": "0001-01-01"}, "since"),
        ("/api/trading/day-trades", {"until": "9999-12-31"}, "until"),
        ("/api/portfolio/snapshots", {"since": "0001-01-01T00:00:00+05:00"}, "since"),
        ("/api/portfolio/snapshots", {"until": "0001-01-01T00:00:00+05:00"}, "until"),
        ("/api/portfolio/snapshots", {"since": "9999-12-31T23:59:59-05:00"}, "since"),
        ("/api/portfolio/snapshots", {"until": "9999-12-31T23:59:59-05:00"}, "until"),
    ],
)
def test_a_date_out_of_range_is_a_400_naming_the_field(client, url, params, field):
    response = client.get(url, params)
    assert response.status_code == 400
    assert response.json() == {field: [RANGE_MESSAGE]}


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/api/trading/cash-state", {"date": EARLIEST_DATE.isoformat()}),
        ("/api/trading/cash-state", {"date": LATEST_DATE.isoformat()}),
        ("/api/portfolio/metrics/history", {"since": EARLIEST_DATE.isoformat()}),
        ("/api/trading/trades", {"since": EARLIEST_DATE.isoformat(), "until": LATEST_DATE.isoformat()}),
        ("/api/trading/day-trades", {"since": EARLIEST_DATE.isoformat(), "until": LATEST_DATE.isoformat()}),
        ("/api/portfolio/snapshots", {"since": "1900-01-01T00:00:00+05:00", "until": "2999-12-31T23:59:59-05:00"}),
    ],
)
def test_the_edges_of_the_range_are_answered(client, url, params):
    assert client.get(url, {"account": ACCOUNT, **params}).status_code == 200


def _url_views(resolver=None):
    for pattern in (resolver or get_resolver()).url_patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _url_views(pattern)
        else:
            yield getattr(pattern.callback, "view_class", None)


def test_every_date_filter_of_the_api_checks_the_range():
    filtersets = {view.filterset_class for view in _url_views() if getattr(view, "filterset_class", None)}
    assert len(filtersets) >= 6
    for filterset in filtersets:
        for name, field in filterset.base_filters.items():
            if isinstance(field, django_filters.DateFilter | django_filters.DateTimeFilter):
                assert isinstance(field, DateFilter | IsoDateTimeFilter), f"{filterset.__name__}.{name}"


@pytest.mark.postgres_too
@pytest.mark.parametrize("offset", ["-18:54", "+23:59", "+15:59", "-00:01"])
def test_a_time_with_any_valid_offset_is_answered(client, offset):
    # PostgreSQL refuses offsets beyond +-15:59 (a 500 before): the filter sends times in UTC.
    response = client.get("/api/portfolio/snapshots", {"since": f"2026-01-01T00:00:00{offset}"})
    assert response.status_code == 200


@pytest.mark.parametrize("tab", ["fills", "round-trips"])
@pytest.mark.parametrize("params", [{"until": "9999-12-31"}, {"since": "0001-01-01"}])
def test_trades_page_with_a_date_out_of_range_shows_the_form_error(client, tab, params):
    response = client.get("/trades/", {"account": ACCOUNT, "tab": tab, **params})
    page = response.content.decode()
    assert response.status_code == 200  # as for any invalid filter: the form says what is wrong
    assert RANGE_MESSAGE in page and 'aria-invalid="true"' in page
    assert "Fix the filter above" in page


def test_trades_page_answers_at_the_latest_date(client):
    response = client.get("/trades/", {"account": ACCOUNT, "tab": "round-trips", "until": LATEST_DATE.isoformat()})
    assert response.status_code == 200 and response.context["page"] is not None


def test_trades_csv_with_a_date_out_of_range_is_a_400_naming_the_field(client):
    response = client.get("/trades/export.csv", {"account": ACCOUNT, "until": "9999-12-31"})
    assert response.status_code == 400 and f"until: {RANGE_MESSAGE}" in response.content.decode()


# --- deep JSON ----------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [900, 1_000, 100_000])
@pytest.mark.parametrize("shape", ["[{}]", '{"account":{}}'])
def test_deeply_nested_json_is_a_400(client, depth, shape):
    opening, closing = shape[: len(shape) // 2], shape[len(shape) // 2 :]
    body = opening * depth + closing * depth
    response = client.post("/api/sync/positions", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - nested more than 32 levels deep."}


def test_json_at_the_nesting_limit_is_parsed(client):
    depth = JSONParser.max_depth
    body = '{"account":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    response = client.post("/api/sync/positions", body, content_type="application/json")
    assert response.status_code == 400 and "account" in response.json()  # parsed, then refused by the serializer


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[["', 0),
        ("[]", 1),
        ('{"a": [1, {"b": "]]]}"}]}', 3),
        (r'["\"[[[", [[]]]', 3),
        ("[[]][[[]]]", 3),
    ],
)
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert json_depth(text) == depth
