"""The in_array lookup: the same rows as __in, on both databases."""

from decimal import Decimal

import pytest
from django.utils import timezone

from marketdata.models import Instrument
from portfolio.models import Position
from tests.factories import AccountFactory, InstrumentFactory


@pytest.mark.django_db
def test_in_array_matches_in_on_plain_and_foreign_key_fields():
    a, b, c = InstrumentFactory(symbol="AAA"), InstrumentFactory(symbol="BBB"), InstrumentFactory(symbol="CCC")
    ids = [a.pk, c.pk, None]
    assert set(Instrument.objects.filter(pk__in_array=ids)) == {a, c}
    assert set(Instrument.objects.filter(symbol__in_array=["BBB", "CCC"])) == {b, c}
    assert list(Instrument.objects.filter(pk__in_array=[])) == []


def _position(**kwargs):
    return Position.objects.create(
        account=AccountFactory(),
        instrument=InstrumentFactory(),
        quantity=Decimal(10),
        average_price=Decimal(5),
        opened_at=timezone.now(),
        **kwargs,
    )


@pytest.mark.django_db
def test_in_array_on_a_foreign_key(django_assert_num_queries):
    p1, p2 = _position(), _position()
    with django_assert_num_queries(1):
        assert list(Position.objects.filter(instrument_id__in_array=[p2.instrument_id])) == [p2]
    assert set(Position.objects.filter(instrument__in_array=[p1.instrument_id, p2.instrument_id])) == {p1, p2}
