"""Decimal parsing and the one place precision is set."""

from decimal import Decimal

import pytest

from core.fields import (
    MONEY_PLACES,
    PRICE_PLACES,
    QUANTITY_PLACES,
    RATIO_PLACES,
    MoneyField,
    PriceField,
    QuantityField,
    RatioField,
    decimal_kwargs,
    parse_decimal,
    quantize_money,
    quantize_price,
    quantize_quantity,
    quantize_ratio,
)


class TestParseDecimal:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("150.25", Decimal("150.25")),
            ("  -2 ", Decimal("-2")),
            ("0", Decimal("0")),
            ("1E+3", Decimal("1000")),
            (100, Decimal("100")),
            (Decimal("5.124"), Decimal("5.124")),
            ("0.000000001", Decimal("0.000000001")),
        ],
    )
    def test_accepts_decimal_text(self, value, expected):
        parsed = parse_decimal(value, field="price")

        assert parsed == expected
        assert isinstance(parsed, Decimal)

    def test_keeps_every_digit_of_the_text(self):
        # The point of refusing floats: 0.1 + 0.2 is exactly 0.3 when it arrives as text.
        total = parse_decimal("0.1", field="a") + parse_decimal("0.2", field="b")

        assert total == Decimal("0.3")

    @pytest.mark.parametrize("value", [150.25, 0.0, 1e308, float("nan"), float("inf")], ids=repr)
    def test_refuses_floats(self, value):
        with pytest.raises(ValueError, match=r"^avg_cost: .*float"):
            parse_decimal(value, field="avg_cost")

    @pytest.mark.parametrize(
        "value",
        ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN"), Decimal("Infinity")],
        ids=repr,
    )
    def test_refuses_non_finite_numbers(self, value):
        with pytest.raises(ValueError, match=r"^market_price: not a finite number"):
            parse_decimal(value, field="market_price")

    @pytest.mark.parametrize("value", ["", "   ", "abc", "1,000.00", "$5", "1.2.3", "--1"], ids=repr)
    def test_refuses_garbage(self, value):
        with pytest.raises(ValueError, match=r"^quantity: not a decimal number"):
            parse_decimal(value, field="quantity")

    @pytest.mark.parametrize("value", [True, False, None, [1], {"v": "1"}, b"1"], ids=repr)
    def test_refuses_other_types(self, value):
        with pytest.raises(ValueError, match=r"^strike: expected a decimal string"):
            parse_decimal(value, field="strike")


class TestQuantize:
    @pytest.mark.parametrize(
        ("helper", "places"),
        [
            (quantize_price, PRICE_PLACES),
            (quantize_money, MONEY_PLACES),
            (quantize_quantity, QUANTITY_PLACES),
            (quantize_ratio, RATIO_PLACES),
        ],
        ids=["price", "money", "quantity", "ratio"],
    )
    def test_result_has_the_field_places(self, helper, places):
        assert helper(Decimal("1.5")).as_tuple().exponent == -places
        assert helper(None) is None

    def test_money_rounds_half_even(self):
        assert quantize_money(Decimal("0.00005")) == Decimal("0.0000")
        assert quantize_money(Decimal("0.00015")) == Decimal("0.0002")
        assert quantize_money(Decimal("0.00025")) == Decimal("0.0002")
        assert quantize_money(Decimal("-0.00015")) == Decimal("-0.0002")
        assert quantize_money(Decimal("1234.56789")) == Decimal("1234.5679")

    def test_price_keeps_eight_places(self):
        assert quantize_price(Decimal("5.124")) == Decimal("5.12400000")
        assert quantize_price(Decimal("1.123456785")) == Decimal("1.12345678")
        assert quantize_price(Decimal("1.123456795")) == Decimal("1.12345680")

    def test_quantity_keeps_fractions(self):
        assert quantize_quantity(Decimal("0.333333333")) == Decimal("0.33333333")
        assert quantize_quantity(Decimal("-2")) == Decimal("-2.00000000")

    def test_ratio(self):
        assert quantize_ratio(Decimal(1) / Decimal(3)) == Decimal("0.3333333333")

    def test_integers_are_accepted(self):
        assert quantize_money(5) == Decimal("5.0000")


class TestFieldFactories:
    @pytest.mark.parametrize(
        ("factory", "places"),
        [
            (PriceField, PRICE_PLACES),
            (MoneyField, MONEY_PLACES),
            (QuantityField, QUANTITY_PLACES),
            (RatioField, RATIO_PLACES),
        ],
        ids=["price", "money", "quantity", "ratio"],
    )
    def test_fields_use_the_shared_precision(self, factory, places):
        field = factory(null=True)

        assert field.decimal_places == places
        assert field.max_digits == 24
        assert field.null is True

    @pytest.mark.parametrize(
        ("kind", "factory"),
        [("price", PriceField), ("money", MoneyField), ("quantity", QuantityField), ("ratio", RatioField)],
    )
    def test_decimal_kwargs_are_the_model_fields_precision(self, kind, factory):
        field = factory()

        assert decimal_kwargs(kind) == {"max_digits": field.max_digits, "decimal_places": field.decimal_places}

    def test_api_fields_not_backed_by_a_model_field_use_the_shared_precision(self):
        from portfolio.api.serializers import PortfolioSummarySerializer
        from trading.api.serializers import CashStateSerializer, LivePositionSerializer

        def precision(serializer, name) -> dict:
            field = serializer().fields[name]
            return {"max_digits": field.max_digits, "decimal_places": field.decimal_places}

        assert precision(LivePositionSerializer, "average_price") == decimal_kwargs("price")
        assert precision(LivePositionSerializer, "quantity") == decimal_kwargs("quantity")
        assert precision(CashStateSerializer, "settled_cash") == decimal_kwargs("money")
        assert precision(PortfolioSummarySerializer, "realized_pnl") == decimal_kwargs("money")
        assert precision(PortfolioSummarySerializer, "win_rate") == decimal_kwargs("ratio")


@pytest.mark.parametrize("text", ["1e30", "-1e16", "10000000000000000"])
def test_parse_decimal_refuses_numbers_no_column_can_hold(text):
    with pytest.raises(ValueError, match=r"qty.*out of range"):
        parse_decimal(text, field="qty")


def test_parse_decimal_accepts_the_largest_storable_number():
    assert parse_decimal("9999999999999999.5", field="qty") == Decimal("9999999999999999.5")
