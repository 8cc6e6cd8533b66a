"""The Trades page and its CSV export: access, filters, pagination, round trips, streaming, query counts."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.http import StreamingHttpResponse
from django.test import Client

from core.brokers.simulated import SimulatedBroker
from portfolio.views import trades as trades_views
from tests.factories import AccountFactory, AccountRowFactory, ExecutionRowFactory, UserFactory
from trading.models import Account
from trading.services.executions import executions_ingest

pytestmark = pytest.mark.django_db
ACCOUNT = "DU1234567"
OTHER = "DU7777777"


def fill(exec_id, side, quantity, price, time, **extra):
    return ExecutionRowFactory(
        exec_id=exec_id, side=side, quantity=quantity, price=price, time=time, commission="1.00", **extra
    )


FILLS = [
    fill("t1", "BUY", "100", "10.00", "2026-11-16T15:00:00Z", perm_id=1),
    fill("t2", "SELL", "100", "11.00", "2026-11-16T16:00:00Z", perm_id=2),
    fill("t3", "BUY", "10", "50.00", "2026-11-17T15:00:00Z", perm_id=3, symbol="MSFT", con_id=272093),
]
OTHER_FILLS = [
    fill("other-fill-x1", "BUY", "7", "20.00", "2026-11-16T15:30:00Z", perm_id=70, symbol="TSLA", con_id=76792991)
]


def many_fills(n: int, prefix: str = "m") -> list[dict]:
    """``n`` AAPL fills, alternately buying and selling 10, a minute apart over several days."""
    start = datetime(2026, 11, 9, 15, tzinfo=UTC)
    return [
        fill(
            f"{prefix}{i}",
            "BUY" if i % 2 == 0 else "SELL",
            "10",
            f"{100 + i % 7}.25",
            (start + timedelta(days=i // 20, minutes=i % 20)).isoformat().replace("+00:00", "Z"),
            perm_id=10_000 + i,
        )
        for i in range(n)
    ]


@pytest.fixture
def trader():
    return UserFactory()


def ingest(settings, broker_state, accounts: dict) -> None:
    """Write each account's fills to the broker state file and ingest them."""
    with broker_state.edit() as state:
        for account_id, fills in accounts.items():
            rows = [row for row in state["accounts"] if row["account_id"] == account_id]
            if not rows:
                state["accounts"].append(AccountRowFactory(account_id=account_id))
                rows = [state["accounts"][-1]]
            rows[0]["executions"] = fills
    broker = SimulatedBroker(settings.BROKER_STATE_FILE)
    for account_id in accounts:
        executions_ingest(account=Account.objects.get(account_id=account_id), broker=broker)


@pytest.fixture
def accounts(settings, broker_state, trader):
    mine = AccountFactory(account_id=ACCOUNT, users=[trader])
    other = AccountFactory(account_id=OTHER, users=[UserFactory()])
    ingest(settings, broker_state, {ACCOUNT: FILLS, OTHER: OTHER_FILLS})
    return mine, other


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


# --- access -------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["/trades/", "/trades/export.csv"])
def test_anonymous_is_sent_to_login(url):
    response = Client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_trader_sees_only_their_fills_and_another_account_id_is_ignored(trader, accounts):
    client = client_for(trader)
    for query in ({}, {"account": OTHER}):
        response = client.get("/trades/", query)
        page = response.content.decode()
        assert response.status_code == 200
        assert "t1" in page and "t3" in page and "MSFT" in page
        assert "other-fill-x1" not in page and "TSLA" not in page and OTHER not in page
        assert response.context["choice"].selected.account_id == ACCOUNT


def test_staff_see_every_account_and_can_pick_one(accounts):
    client = client_for(UserFactory(staff=True))
    page = client.get("/trades/", {"account": OTHER}).content.decode()
    assert "other-fill-x1" in page and "TSLA" in page and ">t1<" not in page
    assert ACCOUNT in page  # in the switcher


def test_a_trader_without_accounts_gets_an_empty_state(accounts):
    page = client_for(UserFactory()).get("/trades/").content.decode()
    assert "No accounts yet" in page and ">t1<" not in page and "other-fill-x1" not in page


# --- filters and pagination -----------------------------------------------------------------------
def test_fills_show_money_with_currency_and_times_in_exchange_time(trader, accounts):
    page = client_for(trader).get("/trades/").content.decode()
    assert "+$98.00" in page  # t2's realized P&L: 100 x (11 - 10) - 2 commissions
    assert "Nov 16, 10:00:00" in page  # 15:00 UTC is 10:00 in New York
    assert "3 fills" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"symbol": "msft"}, {"t3"}),
        ({"symbol": "AAPL"}, {"t1", "t2"}),
        ({"since": "2026-11-17"}, {"t3"}),
        ({"until": "2026-11-16"}, {"t1", "t2"}),
        ({"since": "2026-11-16", "until": "2026-11-16", "symbol": "aapl"}, {"t1", "t2"}),
        ({"symbol": "NOPE"}, set()),
    ],
)
def test_filters(trader, accounts, query, expected):
    response = client_for(trader).get("/trades/", query)
    assert {e.exec_id for e in response.context["page"]} == expected


def test_a_bad_date_shows_a_form_error_not_a_500(trader, accounts):
    response = client_for(trader).get("/trades/", {"since": "yesterday"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Enter a valid date." in page and 'aria-invalid="true"' in page
    assert "Fix the filter above" in page and "Export fills (CSV)" not in page


def test_pagination_keeps_the_filters(settings, broker_state, trader):
    AccountFactory(account_id=ACCOUNT, users=[trader])
    ingest(settings, broker_state, {ACCOUNT: many_fills(120)})
    client = client_for(trader)
    first = client.get("/trades/", {"symbol": "aapl", "since": "2026-11-01"})
    assert len(first.context["page"]) == 50 and first.context["page"].paginator.num_pages == 3
    page = first.content.decode()
    assert f"?symbol=aapl&amp;since=2026-11-01&amp;page=2&amp;account={ACCOUNT}" in page
    last = client.get("/trades/", {"symbol": "aapl", "since": "2026-11-01", "page": 3})
    assert len(last.context["page"]) == 20 and "101\u2013120 of 120" in last.content.decode()
    assert client.get("/trades/", {"page": "999"}).context["page"].number == 3  # out of range: the last
    assert client.get("/trades/", {"page": "abc"}).context["page"].number == 1


def test_round_trips_tab(trader, accounts):
    client = client_for(trader)
    response = client.get("/trades/", {"tab": "round-trips"})
    page = response.content.decode()
    (trip,) = response.context["page"]
    assert trip.instrument.symbol == "AAPL"
    assert "+$98.00" in page and "Win" in page and "1h 00m" in page and "Long" in page
    assert not client.get("/trades/", {"tab": "round-trips", "since": "2026-11-17"}).context["page"].object_list
    assert len(client.get("/trades/", {"tab": "round-trips", "until": "2026-11-16"}).context["page"]) == 1
    assert not client.get("/trades/", {"tab": "round-trips", "symbol": "MSFT"}).context["page"].object_list


# --- CSV export -----------------------------------------------------------------------------------
def test_csv_export_streams_the_filtered_fills_with_decimals_as_strings(trader, accounts):
    response = client_for(trader).get("/trades/export.csv", {"symbol": "aapl"})
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse) and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="trades-{ACCOUNT}.csv"' in response["Content-Disposition"]
    header, *rows = csv_rows(response)
    assert header == list(trades_views.CSV_COLUMNS)
    assert [r[0] for r in rows] == ["t1", "t2"]  # oldest first
    sell = dict(zip(header, rows[1], strict=True))
    assert sell == {
        "exec_id": "t2",
        "account": ACCOUNT,
        "symbol": "AAPL",
        "sec_type": "STK",
        "side": "SELL",
        "quantity": "100.00000000",
        "price": "11.00000000",
        "commission": "1.0000",
        "executed_at": "2026-11-16T16:00:00Z",
        "trade_date": "2026-11-16",
        "settlement_date": "2026-11-17",
        "realized_pnl": "98.0000",
        "currency": "USD",
        "commission_currency": "USD",
        "base_currency": "USD",
        "fx_rate": "1",
        "price_base": "11.00000000",
        "commission_base": "1.0000",
        "realized_pnl_base": "98.0000",
    }
    assert dict(zip(header, rows[0], strict=True))["realized_pnl"] == ""


def test_csv_export_holds_only_the_users_data(trader, accounts):
    client = client_for(trader)
    for query in ({}, {"account": OTHER}):
        rows = csv_rows(client.get("/trades/export.csv", query))
        assert {r[1] for r in rows[1:]} == {ACCOUNT} and len(rows) == 4
    staff_rows = csv_rows(client_for(UserFactory(staff=True)).get("/trades/export.csv", {"account": OTHER}))
    assert [r[0] for r in staff_rows[1:]] == ["other-fill-x1"]


def test_csv_export_is_written_in_chunks(monkeypatch, trader, accounts):
    monkeypatch.setattr(trades_views, "CSV_FLUSH_BYTES", 1)
    response = client_for(trader).get("/trades/export.csv")
    chunks = list(response.streaming_content)
    assert len(chunks) >= 4  # header + a flush per row (+ the empty tail)


def test_csv_export_reads_the_fills_with_a_chunked_iterator(monkeypatch, trader, accounts):
    from django.db.models.query import QuerySet

    seen = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        seen.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    b"".join(client_for(trader).get("/trades/export.csv").streaming_content)
    assert seen == [2000]


def test_csv_export_with_a_bad_date_is_a_400(trader, accounts):
    response = client_for(trader).get("/trades/export.csv", {"until": "31/12/2026"})
    assert response.status_code == 400 and "until" in response.content.decode()


# --- queries do not grow with the data --------------------------------------------------------------
TRADES_PAGE_QUERIES = 4  # user (session cached), accounts, count, page of fills (account and instrument joined)
# user (session cached), accounts, the fills' currencies, the fills (one query, read in chunks); no rates to
# load when every fill is in the base currency (one more query otherwise, whatever the number of fills).
CSV_QUERIES = 4


@pytest.mark.parametrize("n", [5, 50])
def test_query_counts_do_not_depend_on_the_number_of_fills(
    settings, broker_state, trader, django_assert_num_queries, n
):
    AccountFactory(account_id=ACCOUNT, users=[trader])
    ingest(settings, broker_state, {ACCOUNT: many_fills(n)})
    client = client_for(trader)
    client.get("/trades/")  # remembers the selected account in the session
    with django_assert_num_queries(TRADES_PAGE_QUERIES):
        assert client.get("/trades/", {"symbol": "AAPL"}).status_code == 200
    with django_assert_num_queries(TRADES_PAGE_QUERIES):
        assert client.get("/trades/", {"tab": "round-trips"}).status_code == 200
    with django_assert_num_queries(CSV_QUERIES):
        rows = csv_rows(client.get("/trades/export.csv"))
    assert len(rows) == n + 1
