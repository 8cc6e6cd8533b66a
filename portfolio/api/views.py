from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from portfolio.api.filters import PositionFilter
from portfolio.api.serializers import (
    AccountSyncStatusSerializer,
    PositionEventSerializer,
    PositionSerializer,
    SyncRequestResultSerializer,
    SyncRequestSerializer,
)
from portfolio.models import Position
from portfolio.selectors import position_event_list, position_list, sync_status_list
from portfolio.services.sync_requests import positions_sync_request
from trading.models import Account, SyncReason


class PositionListApi(generics.ListAPIView):
    """Positions of the accounts you can see; open by default."""

    serializer_class = PositionSerializer
    filterset_class = PositionFilter

    def get_queryset(self):
        return position_list(user=self.request.user, status="all")


class PositionEventListApi(generics.ListAPIView):
    """The lifecycle of one position, oldest first."""

    serializer_class = PositionEventSerializer
    filter_backends: list = []

    def get_queryset(self):
        position = get_object_or_404(Position.objects.visible_to(self.request.user), pk=self.kwargs["pk"])
        return position_event_list(position=position)


class PositionSyncRequestApi(APIView):
    """Enqueue a position sync of one account (or all of yours); answers 202 with the run ids."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "sync"

    @extend_schema(request=SyncRequestSerializer, responses={202: SyncRequestResultSerializer})
    def post(self, request: Request) -> Response:
        serializer = SyncRequestSerializer(data=request.data, user=request.user)
        serializer.is_valid(raise_exception=True)
        account = serializer.validated_data.get("account")
        accounts = [account] if account else list(Account.objects.visible_to(request.user).filter(is_active=True))
        runs = positions_sync_request(accounts=accounts, reason=SyncReason.API)
        return Response(SyncRequestResultSerializer({"runs": runs}).data, status=status.HTTP_202_ACCEPTED)


class SyncStatusApi(APIView):
    """Per account: the latest position-sync run, the last success, whether one runs, and staleness."""

    @extend_schema(responses={200: AccountSyncStatusSerializer(many=True)})
    def get(self, request: Request) -> Response:
        statuses = sync_status_list(user=request.user)
        return Response({"results": AccountSyncStatusSerializer(statuses, many=True).data})
