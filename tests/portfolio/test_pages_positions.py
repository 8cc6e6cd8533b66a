"""The positions page (open/closed, sorting, pagination) and a position's lifecycle timeline."""

import re
from datetime import timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.test import Client
from django.utils import timezone

from core.brokers.simulated import SimulatedBroker
from portfolio.models import Position, PositionEvent, PositionEventKind, PositionStatus
from portfolio.services.sync import positions_sync
from portfolio.views.positions import PAGE_SIZE
from tests.factories import AccountFactory, InstrumentFactory, UserFactory
from trading.calendars import trade_date_of
from trading.models import Execution, Side

pytestmark = pytest.mark.django_db

_ids = count(1)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _position(account, symbol: str | None = None, **fields) -> Position:
    values = {
        "instrument": InstrumentFactory(**({"symbol": symbol} if symbol else {})),
        "status": PositionStatus.OPEN,
        "quantity": Decimal(10),
        "average_price": Decimal("100"),
        "current_price": Decimal("110"),
        "market_value": Decimal("1100"),
        "unrealized_pnl": Decimal("100"),
        "opened_at": timezone.now() - timedelta(days=3),
    }
    values.update(fields)
    return Position.objects.create(account=account, **values)


def _closed(account, symbol: str | None = None, **fields) -> Position:
    closed_at = fields.pop("closed_at", timezone.now() - timedelta(days=1))
    position = _position(
        account,
        symbol,
        status=PositionStatus.CLOSED,
        quantity=Decimal(0),
        market_value=Decimal(0),
        unrealized_pnl=Decimal(0),
        realized_pnl=fields.pop("realized_pnl", Decimal("50")),
        closed_at=closed_at,
        **fields,
    )
    _event(
        position, PositionEventKind.CLOSED, Decimal(10), Decimal(0), at=closed_at, realized_pnl=position.realized_pnl
    )
    return position


def _event(position, kind, before, after, **fields) -> PositionEvent:
    return PositionEvent.objects.create(
        position=position,
        kind=kind,
        quantity_before=before,
        quantity_after=after,
        at=fields.pop("at", timezone.now()),
        **fields,
    )


def _fill(account, instrument, side, quantity, price, at, **fields) -> Execution:
    return Execution.objects.create(
        exec_id=f"exec-{next(_ids)}",
        account=account,
        instrument=instrument,
        side=side,
        quantity=quantity,
        price=price,
        executed_at=at,
        trade_date=trade_date_of(at),
        **fields,
    )


def _symbols(page: str) -> list[str]:
    """The instrument names in the table, in order."""
    return re.findall(r'<th scope="row"><a href="/positions/\d+/">([^<]+)</a>', page)


# --- access -------------------------------------------------------------------------------------
def test_anonymous_is_sent_to_login():
    for path in ("/positions/", "/positions/1/"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_trader_sees_only_their_positions_and_a_foreign_account_is_ignored():
    trader = UserFactory()
    mine = AccountFactory(account_id="DU1234567", users=[trader])
    theirs = AccountFactory(account_id="DU9999999", users=[UserFactory()])
    _position(mine, "MINE")
    foreign = _position(theirs, "THEIRS")

    client = _client(trader)
    page = client.get("/positions/", {"account": "DU9999999"}).content.decode()

    assert _symbols(page) == ["MINE"] and "DU9999999" not in page
    assert client.get(f"/positions/{foreign.pk}/").status_code == 404


def test_staff_see_any_account():
    staff = UserFactory(staff=True)
    theirs = AccountFactory(account_id="DU9999999", users=[UserFactory()])
    position = _position(theirs, "THEIRS")

    client = _client(staff)
    assert _symbols(client.get("/positions/", {"account": "DU9999999"}).content.decode()) == ["THEIRS"]
    assert client.get(f"/positions/{position.pk}/").status_code == 200


def test_positions_from_a_real_sync(settings, broker_state):
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])  # the example broker state's account
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))

    page = _client(trader).get("/positions/").content.decode()

    assert _symbols(page) == ["AAPL", "SPY 2026-12-18 600C"]
    assert "$15,510.00" in page  # 100 AAPL at 155.10
    assert "+$485.00" in page  # unrealized


# --- tabs ---------------------------------------------------------------------------------------
def test_open_and_closed_tabs_with_counts_and_estimated_flag():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    _position(account, "OPENX")
    _closed(account, "SHUTX", realized_pnl=Decimal("-42.5"), realized_pnl_estimated=True)
    client = _client(trader)

    open_page = client.get("/positions/").content.decode()
    closed_page = client.get("/positions/", {"status": "closed"}).content.decode()

    assert _symbols(open_page) == ["OPENX"]
    assert re.search(r"Open <span class=\"count\">1</span>", open_page)
    assert re.search(r"Closed <span class=\"count\">1</span>", open_page)
    assert _symbols(closed_page) == ["SHUTX"]
    assert "-$42.50" in closed_page and "est.</abbr>" in closed_page
    assert '<td class="num">10</td>' in closed_page  # the size it had just before the close


def test_unknown_status_falls_back_to_open():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    _position(account, "OPENX")
    _closed(account, "SHUTX")
    assert _symbols(_client(trader).get("/positions/", {"status": "bogus"}).content.decode()) == ["OPENX"]


# --- sorting ------------------------------------------------------------------------------------
def test_sorting_by_whitelisted_columns():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    _position(account, "BBB", market_value=Decimal("300"))
    _position(account, "AAA", market_value=Decimal("100"))
    _position(account, "CCC", market_value=Decimal("200"))
    _position(account, "NUL", market_value=None)
    client = _client(trader)

    assert _symbols(client.get("/positions/").content.decode()) == ["AAA", "BBB", "CCC", "NUL"]
    assert _symbols(client.get("/positions/", {"sort": "-symbol"}).content.decode()) == ["NUL", "CCC", "BBB", "AAA"]
    by_value = client.get("/positions/", {"sort": "-market_value"}).content.decode()
    assert _symbols(by_value) == ["BBB", "CCC", "AAA", "NUL"]  # unknown values last either way
    assert 'aria-sort="descending"' in by_value
    assert _symbols(client.get("/positions/", {"sort": "market_value"}).content.decode()) == [
        "AAA",
        "CCC",
        "BBB",
        "NUL",
    ]


@pytest.mark.parametrize("sort", ["bogus", "-", "account__users__password", "-__class__", "sym bol"])
def test_unknown_sort_is_ignored(sort):
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    _position(account, "BBB")
    _position(account, "AAA")

    response = _client(trader).get("/positions/", {"sort": sort})

    assert response.status_code == 200
    assert _symbols(response.content.decode()) == ["AAA", "BBB"]  # the default: by symbol


def test_closed_positions_default_to_the_latest_close_and_paginate():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    now = timezone.now()
    for n in range(PAGE_SIZE + 5):
        _closed(account, f"C{n:03d}", closed_at=now - timedelta(hours=n))
    client = _client(trader)

    first = client.get("/positions/", {"status": "closed"}).content.decode()
    second = client.get("/positions/", {"status": "closed", "page": 2}).content.decode()

    assert _symbols(first)[:2] == ["C000", "C001"] and len(_symbols(first)) == PAGE_SIZE
    assert "Page 1 of 2" in first and "page=2" in first
    assert _symbols(second) == [f"C{n:03d}" for n in range(PAGE_SIZE, PAGE_SIZE + 5)]
    for page in ("999", "abc", "-1"):
        assert client.get("/positions/", {"status": "closed", "page": page}).status_code == 200


# --- the lifecycle timeline ---------------------------------------------------------------------
def test_detail_shows_the_timeline_and_the_linked_fills():
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    instrument = InstrumentFactory(symbol="LIFE")
    t0 = timezone.now() - timedelta(days=2)
    opening = _fill(account, instrument, Side.BUY, Decimal(100), Decimal("10.00"), t0, commission=Decimal("1"))
    closing = _fill(
        account,
        instrument,
        Side.SELL,
        Decimal(100),
        Decimal("12.50"),
        t0 + timedelta(days=1),
        realized_pnl=Decimal(249),
    )
    position = _position(
        account,
        instrument=instrument,
        status=PositionStatus.CLOSED,
        quantity=Decimal(0),
        closed_at=t0 + timedelta(days=1),
        realized_pnl=Decimal(249),
        opened_at=t0 + timedelta(minutes=5),
        opening_execution=opening,
        closing_execution=closing,
    )
    _event(position, PositionEventKind.OPENED, Decimal(0), Decimal(100), at=t0, price=Decimal("10.10"))
    _event(
        position,
        PositionEventKind.DECREASED,
        Decimal(100),
        Decimal(40),
        at=t0 + timedelta(hours=3),
        realized_pnl=Decimal("60.5"),
        realized_pnl_estimated=True,
        price=Decimal("11.01"),
    )
    _event(
        position,
        PositionEventKind.CLOSED,
        Decimal(40),
        Decimal(0),
        at=t0 + timedelta(days=1),
        realized_pnl=Decimal("188.5"),
        price=Decimal("12.50"),
    )

    page = _client(trader).get(f"/positions/{position.pk}/").content.decode()

    kinds = re.findall(r'<span class="badge kind kind-\w+">([^<]+)</span>', page)
    assert kinds == ["Opened", "Decreased", "Closed"]
    assert "100 → <strong>40</strong>" in page and "40 → <strong>0</strong>" in page
    assert "+$60.50" in page and "est.</abbr>" in page and "+$188.50" in page
    assert "Opening</th>" in page and "Closing</th>" in page and "12.50" in page
    assert "+$249.00" in page


def test_detail_from_a_real_sync(settings, broker_state):
    trader = UserFactory()
    account = AccountFactory(account_id="DU1234567", users=[trader])  # the example broker state's account
    positions_sync(account=account, broker=SimulatedBroker(settings.BROKER_STATE_FILE))
    aapl = Position.objects.get(instrument__symbol="AAPL")

    page = _client(trader).get(f"/positions/{aapl.pk}/").content.decode()

    assert "Opened</span>" in page and "0 → <strong>100</strong>" in page
    assert "Not linked to fills yet" in page


def test_switching_account_on_a_detail_page_goes_to_that_accounts_positions():
    trader = UserFactory()
    first = AccountFactory(account_id="DU1000001", users=[trader])
    AccountFactory(account_id="DU1000002", users=[trader])
    position = _position(first, "ONE")
    client = _client(trader)

    assert client.get(f"/positions/{position.pk}/", {"account": "DU1000001"}).status_code == 200
    response = client.get(f"/positions/{position.pk}/", {"account": "DU1000002"})
    assert response.status_code == 302 and response["Location"] == "/positions/"


# --- queries ------------------------------------------------------------------------------------
def _many(size: int):
    trader = UserFactory()
    account = AccountFactory(users=[trader])
    AccountFactory(users=[trader])
    for _ in range(size):
        _position(account)
        _closed(account)
    position = _position(account)
    for n in range(size):
        _event(position, PositionEventKind.INCREASED, Decimal(n), Decimal(n + 1))
    client = _client(trader)
    client.get("/positions/")  # the first visit also stores the selected account in the session
    return client, position


@pytest.mark.parametrize("size", [3, 30])
def test_positions_queries_do_not_grow_with_data(size, django_assert_num_queries):
    client, position = _many(size)
    # user (session cached), accounts, page count, page rows, tab counts, the account's mode
    for status in ("open", "closed"):
        with django_assert_num_queries(6):
            assert client.get("/positions/", {"status": status, "sort": "-market_value"}).status_code == 200
    # user (session cached), accounts, position with its account, instrument and fills, events
    # 4, and the chart's bars: one query for the holding's bar size, one for daily bars when it has none.
    with django_assert_num_queries(6):
        page = client.get(f"/positions/{position.pk}/").content.decode()
    assert page.count("Increased</span>") == size
