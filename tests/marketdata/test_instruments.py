"""Instruments: the natural key and ``instruments_resolve`` (find by con_id, else key; create the rest)."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.brokers.contracts import InstrumentSpec, OptionRight, SecType
from marketdata.models import Instrument
from marketdata.services import instrument_get_or_create, instruments_resolve
from tests.factories import InstrumentFactory, InstrumentSpecFactory

pytestmark = pytest.mark.django_db


class TestKey:
    def test_stock_key(self):
        assert InstrumentSpec(symbol="aapl", currency="usd").key == "STK:AAPL:USD"

    def test_stock_key_ignores_derivative_fields(self):
        plain = InstrumentSpec(symbol="AAPL")
        noisy = InstrumentSpec(symbol="AAPL", expiry=date(2026, 12, 18), strike=Decimal("1"), right="C", con_id=1)

        assert noisy.key == plain.key

    def test_option_key(self):
        spec = InstrumentSpecFactory(
            option=True, symbol="SPY", expiry=date(2026, 12, 18), strike=Decimal("600"), right="c"
        )

        assert spec.key == "OPT:SPY:USD:20261218:600:C:100"

    @pytest.mark.parametrize(
        "change",
        [
            {"strike": Decimal("605")},
            {"right": OptionRight.PUT},
            {"expiry": date(2027, 1, 15)},
            {"multiplier": Decimal("10")},
            {"currency": "EUR"},
            {"symbol": "QQQ"},
        ],
        ids=["strike", "right", "expiry", "multiplier", "currency", "symbol"],
    )
    def test_option_keys_differ_by_each_contract_term(self, change):
        base = {"option": True, "symbol": "SPY", "con_id": None}

        assert InstrumentSpecFactory(**base).key != InstrumentSpecFactory(**{**base, **change}).key

    def test_equal_strikes_written_differently_share_a_key(self):
        a = InstrumentSpecFactory(option=True, strike=Decimal("600"))
        b = InstrumentSpecFactory(option=True, strike=Decimal("600.00"), symbol=a.symbol)

        assert a.key == b.key

    def test_factory_key_is_the_service_key(self):
        instrument = InstrumentFactory(option=True, symbol="SPY")

        assert instrument.key == instrument.spec.key
        assert instrument_get_or_create(spec=instrument.spec) == instrument

    @pytest.mark.parametrize("option", [False, True], ids=["stock", "option"])
    def test_spec_of_a_stored_instrument_has_its_key(self, option):
        # As read back: multiplier and strike carry the columns' 8 places ("100.00000000").
        made = instrument_get_or_create(spec=InstrumentSpecFactory(option=option, symbol="spy", right="c"))
        instrument = Instrument.objects.get(pk=made.pk)

        assert isinstance(instrument.spec, InstrumentSpec)
        assert instrument.spec.key == instrument.key
        assert instrument.spec.con_id == instrument.con_id

    def test_admin_recomputes_the_key_from_the_edited_fields(self, admin_client):
        instrument = InstrumentFactory(option=True, symbol="SPY")
        data = {
            "symbol": "SPY",
            "sec_type": SecType.OPTION,
            "con_id": instrument.con_id,
            "currency": "USD",
            "exchange": "SMART",
            "multiplier": "100",
            "expiry": "2026-12-18",
            "strike": "605.00",
            "right": OptionRight.CALL,
        }

        response = admin_client.post(f"/admin/marketdata/instrument/{instrument.pk}/change/", data)

        assert response.status_code == 302, response.content
        instrument.refresh_from_db()
        assert instrument.key == "OPT:SPY:USD:20261218:605:C:100"


class TestResolve:
    def test_creates_unknown_instruments(self):
        stock = InstrumentSpec(symbol="aapl", con_id=265598, exchange="")
        option = InstrumentSpec(
            symbol="SPY",
            sec_type=SecType.OPTION,
            con_id=712345678,
            multiplier=Decimal("100"),
            expiry=date(2026, 12, 18),
            strike=Decimal("600"),
            right="c",
        )

        resolved = instruments_resolve(specs=[stock, option])

        assert set(resolved) == {stock.key, option.key}
        assert Instrument.objects.count() == 2
        aapl = Instrument.objects.get(con_id=265598)
        assert resolved[stock.key] == aapl
        assert (aapl.key, aapl.symbol, aapl.sec_type, aapl.exchange) == ("STK:AAPL:USD", "AAPL", "STK", "SMART")
        spy = Instrument.objects.get(con_id=712345678)
        assert resolved[option.key] == spy
        assert spy.key == option.key
        assert (spy.expiry, spy.strike, spy.right, spy.multiplier) == (
            date(2026, 12, 18),
            Decimal("600"),
            "C",
            Decimal("100"),
        )

    def test_idempotent(self):
        specs = [InstrumentSpecFactory(), InstrumentSpecFactory(option=True), InstrumentSpecFactory(con_id=None)]
        first = instruments_resolve(specs=specs)

        second = instruments_resolve(specs=specs)

        assert Instrument.objects.count() == 3
        assert {k: i.pk for k, i in second.items()} == {k: i.pk for k, i in first.items()}

    def test_empty(self, django_assert_num_queries):
        with django_assert_num_queries(0):
            assert instruments_resolve(specs=[]) == {}

    def test_get_or_create_one(self):
        spec = InstrumentSpecFactory(symbol="MSFT")

        created = instrument_get_or_create(spec=spec)
        again = instrument_get_or_create(spec=spec)

        assert created.pk == again.pk
        assert created.symbol == "MSFT"
        assert Instrument.objects.count() == 1

    def test_con_id_wins_over_key(self):
        # IBKR renamed the ticker: the contract id is the same, so it is the same instrument.
        renamed = InstrumentFactory(symbol="FB", con_id=107113386)

        resolved = instruments_resolve(specs=[InstrumentSpec(symbol="META", con_id=107113386)])

        assert resolved["STK:META:USD"] == renamed
        assert Instrument.objects.count() == 1

    def test_con_id_match_beats_a_different_key_match(self):
        by_key = InstrumentFactory(symbol="XYZ", con_id=1)
        by_con_id = InstrumentFactory(symbol="ABC", con_id=2)

        resolved = instruments_resolve(specs=[InstrumentSpec(symbol="XYZ", con_id=2)])

        assert resolved["STK:XYZ:USD"] == by_con_id
        assert resolved["STK:XYZ:USD"] != by_key

    def test_key_match_without_con_id(self):
        existing = InstrumentFactory(symbol="BRK B", con_id=None)

        resolved = instruments_resolve(specs=[InstrumentSpec(symbol="brk b")])

        assert resolved["STK:BRK B:USD"] == existing
        assert Instrument.objects.count() == 1

    def test_options_differing_in_one_term_are_distinct_instruments(self):
        base = InstrumentSpecFactory.build(option=True, symbol="SPY", con_id=None)
        specs = [
            base,
            InstrumentSpecFactory.build(option=True, symbol="SPY", con_id=None, strike=Decimal("605")),
            InstrumentSpecFactory.build(option=True, symbol="SPY", con_id=None, right=OptionRight.PUT),
            InstrumentSpecFactory.build(option=True, symbol="SPY", con_id=None, expiry=date(2027, 1, 15)),
        ]

        resolved = instruments_resolve(specs=specs)

        assert len({i.pk for i in resolved.values()}) == 4
        assert Instrument.objects.filter(symbol="SPY", sec_type=SecType.OPTION).count() == 4

    def test_new_specs_sharing_a_con_id_resolve_to_one_instrument(self):
        # Same contract reported with two different keys in one batch (e.g. a multiplier change).
        a = InstrumentSpecFactory.build(option=True, symbol="SPY", con_id=42, multiplier=Decimal("100"))
        b = InstrumentSpecFactory.build(option=True, symbol="SPY", con_id=42, multiplier=Decimal("10"))

        resolved = instruments_resolve(specs=[a, b])

        assert Instrument.objects.count() == 1
        assert resolved[a.key] == resolved[b.key]

    # The number of queries must not grow with the number of specs: measure one, pin fifty to it.
    @staticmethod
    def _queries(specs: list[InstrumentSpec]) -> int:
        with CaptureQueriesContext(connection) as captured:
            instruments_resolve(specs=specs)
        return len(captured)

    def test_constant_queries_when_all_are_new(self, django_assert_num_queries):
        one = self._queries([InstrumentSpecFactory.build(), InstrumentSpecFactory.build(option=True, con_id=None)])
        many = InstrumentSpecFactory.build_batch(25) + InstrumentSpecFactory.build_batch(25, option=True, con_id=None)

        with django_assert_num_queries(one):
            resolved = instruments_resolve(specs=many)

        assert len(resolved) == 50
        assert Instrument.objects.count() == 52

    def test_constant_queries_when_all_exist(self, django_assert_num_queries):
        one = [InstrumentSpecFactory.build()]
        many = InstrumentSpecFactory.build_batch(50)
        instruments_resolve(specs=one + many)
        queries_for_one = self._queries(one)

        with django_assert_num_queries(queries_for_one):
            resolved = instruments_resolve(specs=many)

        assert len(resolved) == 50
        assert Instrument.objects.count() == 51
        assert queries_for_one <= 2  # nothing to create: lookups only

    def test_constant_queries_when_some_exist(self, django_assert_num_queries):
        known_one, known_many = [InstrumentSpecFactory.build()], InstrumentSpecFactory.build_batch(25)
        instruments_resolve(specs=known_one + known_many)
        queries_for_one = self._queries([*known_one, InstrumentSpecFactory.build()])

        with django_assert_num_queries(queries_for_one):
            resolved = instruments_resolve(specs=known_many + InstrumentSpecFactory.build_batch(25))

        assert len(resolved) == 50
        assert Instrument.objects.count() == 52
