"""The sentiment API: posts with scores, per-symbol windows, confluence, options flow and patterns.

Sentiment is market-wide (not an account's), so every logged-in user reads all of it. Query
parameters are validated by a serializer: a bad one answers 400 naming it.
"""

import re

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sentiment.api.serializers import (
    SYMBOL,
    AggregatedSentimentSerializer,
    ConfluenceSerializer,
    FlowQuerySerializer,
    OptionsFlowSerializer,
    OptionsPatternSerializer,
    PatternQuerySerializer,
    PostQuerySerializer,
    PostSerializer,
    SinceQuerySerializer,
    WindowQuerySerializer,
)
from sentiment.selectors import (
    confluence_list,
    options_flow_list,
    options_pattern_list,
    post_list,
    symbol_sentiment_get,
)


def _query(serializer_class, request: Request) -> dict:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


def _symbol(value: str) -> str:
    if not re.match(SYMBOL, value):
        raise NotFound(f"{value!r} is not a symbol")
    return value.upper()


class PostListApi(generics.ListAPIView):
    """Tweets and Reddit posts with their scores, newest first; ``source`` is the platform (x, reddit)."""

    serializer_class = PostSerializer
    filter_backends = []

    @extend_schema(parameters=[PostQuerySerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        q = _query(PostQuerySerializer, self.request)
        return post_list(symbol=q.get("symbol"), platform=q.get("source"), since=q.get("since"), label=q.get("label"))


class SymbolSentimentApi(APIView):
    """The latest window of a symbol: mentions, labels, mean and weighted compound, change, spike, per source."""

    @extend_schema(parameters=[WindowQuerySerializer], responses={200: AggregatedSentimentSerializer})
    def get(self, request: Request, symbol: str) -> Response:
        q = _query(WindowQuerySerializer, request)
        row = symbol_sentiment_get(symbol=_symbol(symbol), window=q["window"])
        if row is None:
            raise NotFound(f"no sentiment for {symbol.upper()} over {q['window']}")
        return Response(AggregatedSentimentSerializer(row).data)


class ConfluenceApi(generics.GenericAPIView):
    """The latest confluence score of a symbol with its components; with ``?since=`` its history (paginated)."""

    serializer_class = ConfluenceSerializer

    @extend_schema(parameters=[SinceQuerySerializer], responses={200: ConfluenceSerializer})
    def get(self, request: Request, symbol: str) -> Response:
        q = _query(SinceQuerySerializer, request)
        scores = confluence_list(symbol=_symbol(symbol), since=q.get("since"))
        if "since" in q:
            page = self.paginate_queryset(scores)
            return self.get_paginated_response(ConfluenceSerializer(page, many=True).data)
        latest = scores.first()
        if latest is None:
            raise NotFound(f"no confluence score for {symbol.upper()}")
        return Response(ConfluenceSerializer(latest).data)


class OptionsFlowListApi(generics.ListAPIView):
    """Options prints, newest first."""

    serializer_class = OptionsFlowSerializer
    filter_backends = []

    @extend_schema(parameters=[FlowQuerySerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        q = _query(FlowQuerySerializer, self.request)
        return options_flow_list(symbol=q.get("symbol"), since=q.get("since"), unusual=q.get("unusual"))


class OptionsPatternListApi(generics.ListAPIView):
    """Options patterns with the ids of the prints that made them, newest first."""

    serializer_class = OptionsPatternSerializer
    filter_backends = []

    @extend_schema(parameters=[PatternQuerySerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        q = _query(PatternQuerySerializer, self.request)
        return options_pattern_list(symbol=q.get("symbol"), since=q.get("since"))
