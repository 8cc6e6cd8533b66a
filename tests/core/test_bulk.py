"""core.bulk: COPY-style inserts, array updates and reserved primary keys, on both databases."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from core.bulk import bulk_insert, bulk_update_values, reserve_ids
from marketdata.models import Instrument

FIELDS = ("id", "key", "symbol", "sec_type", "currency", "exchange", "multiplier", "right", "created_at", "updated_at")


def _row(pk: int, symbol: str) -> tuple:
    now = timezone.now()
    return (pk, f"STK:{symbol}:USD", symbol, "STK", "USD", "SMART", Decimal(1), "", now, now)


@pytest.mark.django_db(transaction=True)
def test_reserved_ids_are_fresh_and_never_handed_out_again():
    Instrument.objects.create(key="STK:OLD:USD", symbol="OLD")
    with transaction.atomic():
        ids = reserve_ids(Instrument, 3)
        assert len(set(ids)) == 3
        assert min(ids) > Instrument.objects.get(symbol="OLD").pk
        bulk_insert(Instrument, FIELDS, [_row(pk, f"R{pk}") for pk in ids])
    assert sorted(Instrument.objects.filter(symbol__startswith="R").values_list("pk", flat=True)) == sorted(ids)
    # The ORM's next row does not collide with the reserved ones, nor does the next reservation.
    later = Instrument.objects.create(key="STK:NEW:USD", symbol="NEW")
    assert later.pk > max(ids)
    with transaction.atomic():
        assert min(reserve_ids(Instrument, 2)) > later.pk


@pytest.mark.django_db
def test_reserve_nothing_costs_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert reserve_ids(Instrument, 0) == []


@pytest.mark.django_db
def test_bulk_update_values_sets_only_the_named_columns():
    a = Instrument.objects.create(key="STK:A:USD", symbol="A", exchange="NYSE")
    b = Instrument.objects.create(key="STK:B:USD", symbol="B", exchange="NYSE")
    assert bulk_update_values(Instrument, ("multiplier",), [(a.pk, Decimal(10)), (b.pk, Decimal(100))]) == 2
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.multiplier, b.multiplier, a.exchange) == (Decimal(10), Decimal(100), "NYSE")


@pytest.mark.django_db
def test_bulk_update_values_round_trips_awkward_values():
    """Strings with quotes, backslashes, commas, braces or the word NULL, empty strings, NULLs, dates
    and aware datetimes all arrive as written (PostgreSQL gets them as array text)."""
    from datetime import UTC, date, datetime

    rows = []
    awkward = ['a "quoted", {braced} name', "back\\slash", "NULL", "", "spaces  and\ttab", "ünï"]
    instruments = [Instrument.objects.create(key=f"STK:W{i}:USD", symbol=f"W{i}") for i in range(len(awkward))]
    for i, (instrument, text) in enumerate(zip(instruments, awkward, strict=True)):
        rows.append(
            (
                instrument.pk,
                text[:16],
                date(2027, 1, i + 1),
                None if i % 2 else 1000 + i,
                datetime(2026, 11, 21, 10, i, 30, 123456, tzinfo=UTC),
            )
        )
    bulk_update_values(Instrument, ("exchange", "expiry", "con_id", "updated_at"), rows)
    for pk, exchange, expiry, con_id, updated_at in rows:
        stored = Instrument.objects.get(pk=pk)
        assert (stored.exchange, stored.expiry, stored.con_id, stored.updated_at) == (
            exchange,
            expiry,
            con_id,
            updated_at,
        )


@pytest.mark.django_db
def test_bulk_insert_round_trips_json_values():
    """Empty and non-empty lists and dicts, strings and numbers in JSON columns arrive as written."""
    from datetime import UTC, date, datetime

    from tests.factories import AccountFactory
    from trading.models import Execution

    account = AccountFactory()
    instrument = Instrument.objects.create(key="STK:J:USD", symbol="J")
    values = [
        ({}, [], {}),
        ({"side": "BUY", "nested": {"a": [1, "two", None]}, "quote": 'say "hi"\\n'}, ["price"], {"price": "1.5"}),
        ("ünï text", [1, 2.5, True], 42),
    ]
    fields = (
        "broker", "exec_id", "account_id", "instrument_id", "side", "quantity", "price", "commission_currency",
        "exchange", "source", "executed_at", "trade_date", "raw", "staff_fields", "broker_disagreement",
        "created_at", "updated_at",
    )  # fmt: skip
    at, day = datetime(2026, 11, 20, 15, tzinfo=UTC), date(2026, 11, 20)
    fill = ("ibkr", account.pk, instrument.pk, "BUY", Decimal(1), Decimal(1), "USD", "", "API", at, day)
    rows = [(fill[0], f"j{i}", *fill[1:], *json, at, at) for i, json in enumerate(values)]
    assert bulk_insert(Execution, fields, rows) == 3
    stored = Execution.objects.order_by("exec_id").values_list("raw", "staff_fields", "broker_disagreement")
    assert list(stored) == values
