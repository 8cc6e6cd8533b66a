from datetime import UTC

from django.db import connection
from django.db.models import F, Func, TextField
from django.db.models.functions import Cast
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketdata.api.serializers import (
    BarSerializer,
    BarsQuerySerializer,
    FxRateSerializer,
    FxRatesQuerySerializer,
    QuoteSerializer,
)
from marketdata.selectors import bars_between, fx_rate_list, instrument_by_symbol, quote_get


class QuoteApi(APIView):
    """A stock's latest stored quote, from the cache or the database; never asks the broker, so it
    answers whether or not the broker is reachable. Market data is not account-private: any
    logged-in user may read it."""

    @extend_schema(responses={200: QuoteSerializer})
    def get(self, request: Request, symbol: str) -> Response:
        answer = quote_get(symbol=symbol)
        if answer is None:
            raise NotFound(f"no quote is known for symbol {symbol!r}")
        return Response(QuoteSerializer(answer).data)


class BarsPagination(CursorPagination):
    ordering = "start"
    page_size = 1000
    page_size_query_param = "page_size"
    max_page_size = 10_000

    def _get_position_from_instance(self, instance, ordering):
        # Rows are plain tuples whose first value is the start (its ISO text on PostgreSQL): a cursor
        # holds it as text, and the next page's filter parses it back, as it does DRF's default text.
        return str(instance[0])


class BarListApi(generics.ListAPIView):
    """A stock's stored bars of one size in time order (``since`` inclusive, ``until`` exclusive),
    cursor-paginated (``page_size`` up to 10,000); decimals as strings."""

    serializer_class = BarSerializer
    pagination_class = BarsPagination
    filter_backends: list = []

    @extend_schema(
        parameters=[
            OpenApiParameter("bar_size", OpenApiTypes.STR, enum=["1m", "5m", "15m", "1h", "1d"], default="1d"),
            OpenApiParameter("since", OpenApiTypes.STR, description="YYYY-MM-DD or ISO 8601 time, inclusive"),
            OpenApiParameter("until", OpenApiTypes.STR, description="YYYY-MM-DD or ISO 8601 time, exclusive"),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        # 10,000 bars in a page: values tuples written out directly, about ten times faster than a
        # ModelSerializer per row; the same fields and formats (BarSerializer documents them). On
        # PostgreSQL the database writes the texts: no datetime or Decimal is built per value.
        page = self.paginate_queryset(self.get_queryset())
        if connection.vendor == "postgresql":
            return self.get_paginated_response([dict(zip(BAR_FIELDS, row, strict=True)) for row in page])
        return self.get_paginated_response([_bar_row(row) for row in page])

    def get_queryset(self):
        query = BarsQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        instrument = instrument_by_symbol(symbol=self.kwargs["symbol"])
        if instrument is None:
            raise NotFound(f"no instrument is known for symbol {self.kwargs['symbol']!r}")
        bars = bars_between(
            instrument_id=instrument.pk,
            bar_size=query.validated_data["bar_size"],
            since=query.validated_data.get("since"),
            until=query.validated_data.get("until"),
        )
        if connection.vendor == "postgresql":
            return bars.annotate(**_TEXTS).values_list(*_TEXTS, "trade_count")
        return bars.values_list(*BAR_FIELDS)


class FxRatesPagination(CursorPagination):
    ordering = ("-day", "base", "currency")
    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000


class FxRateListApi(generics.ListAPIView):
    """Stored daily exchange rates (one unit of ``currency`` in ``base`` on ``day``), newest first,
    cursor-paginated. Rates are not account data: any logged-in user may read them."""

    serializer_class = FxRateSerializer
    pagination_class = FxRatesPagination
    filter_backends: list = []

    @extend_schema(parameters=[FxRatesQuerySerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = FxRatesQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return fx_rate_list(**query.validated_data)


BAR_FIELDS = ("start", "open", "high", "low", "close", "volume", "wap", "trade_count")

# PostgreSQL's texts of a bar: the start as ``datetime.isoformat`` writes it in UTC with a Z (fractional
# seconds only when there are some), decimals as numeric's text (every place of the column, as
# ``f"{value:f}"`` writes the Decimal read back).
_ISO_START = (
    "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
    "date_trunc('second', %(expressions)s) = %(expressions)s THEN '' "
    "ELSE to_char(%(expressions)s AT TIME ZONE 'UTC', '.US') END || 'Z'"
)
_TEXTS = {
    "start_text": Func(F("start"), template=_ISO_START, output_field=TextField()),
    **{f"{name}_text": Cast(name, TextField()) for name in ("open", "high", "low", "close", "volume", "wap")},
}


def _text(value) -> str | None:
    return None if value is None else f"{value:f}"


def _bar_row(row: tuple) -> dict:
    start, *decimals, trade_count = row
    return {
        "start": start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        **{name: _text(value) for name, value in zip(BAR_FIELDS[1:-1], decimals, strict=True)},
        "trade_count": trade_count,
    }
