from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.inputs import DateField
from core.models import FailReason, SyncReason
from portfolio.api.filters import PositionFilter, SnapshotFilter
from portfolio.api.serializers import (
    AccountStatusSerializer,
    MetricsHistorySerializer,
    MetricsSerializer,
    PortfolioSummarySerializer,
    PositionEventSerializer,
    PositionSerializer,
    SnapshotSerializer,
    SyncRequestResultSerializer,
    SyncRequestSerializer,
    SyncStatusSerializer,
)
from portfolio.models import Position
from portfolio.selectors import (
    account_pdt_status_get,
    account_status_list,
    metrics_get,
    metrics_history,
    portfolio_summary_get,
    position_event_list,
    position_list,
    positions_in_base,
    snapshot_list,
    sync_status_list,
)
from portfolio.services.sync_requests import positions_sync_request
from portfolio.throttles import SyncRequestThrottle
from trading.api.serializers import AccountDateQuerySerializer, PdtStatusSerializer
from trading.models import Account


class PositionListApi(generics.ListAPIView):
    """Positions of the accounts you can see; open by default."""

    serializer_class = PositionSerializer
    filterset_class = PositionFilter

    def get_queryset(self):
        return position_list(user=self.request.user, status="all")

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return positions_in_base(list(page if page is not None else queryset))


class PositionEventListApi(generics.ListAPIView):
    """The lifecycle of one position, oldest first."""

    serializer_class = PositionEventSerializer
    filter_backends: list = []

    def get_queryset(self):
        position = get_object_or_404(Position.objects.visible_to(self.request.user), pk=self.kwargs["pk"])
        return position_event_list(position=position)


class PositionSyncRequestApi(APIView):
    """Enqueue a position sync of one account (or all of yours); answers 202 with the run ids, or 503
    (the runs FAILED, with the reason in ``detail``) when the task queue cannot be reached."""

    throttle_classes = [SyncRequestThrottle]  # shared with the dashboard's "Sync now" form

    @extend_schema(
        request=SyncRequestSerializer,
        responses={202: SyncRequestResultSerializer, 503: SyncRequestResultSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = SyncRequestSerializer(data=request.data, user=request.user)
        serializer.is_valid(raise_exception=True)
        account = serializer.validated_data.get("account")
        accounts = [account] if account else list(Account.objects.visible_to(request.user).filter(is_active=True))
        runs = positions_sync_request(accounts=accounts, reason=SyncReason.API)
        body = SyncRequestResultSerializer({"runs": runs}).data
        not_queued = [run for run in runs if run.fail_reason == FailReason.ENQUEUE_FAILED]
        if not_queued:
            # The task queue is away: the runs are FAILED (none left RUNNING); try again later.
            body["detail"] = f"the sync could not be queued: {not_queued[0].message}"
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(body, status=status.HTTP_202_ACCEPTED)


class SyncStatusApi(APIView):
    """Per account: the latest position-sync run, the last success, whether one runs, and staleness."""

    @extend_schema(responses={200: SyncStatusSerializer})
    def get(self, request: Request) -> Response:
        statuses = sync_status_list(user=request.user)
        return Response(SyncStatusSerializer({"results": statuses}).data)


class PdtStatusApi(APIView):
    """Pattern-day-trader status of an account on a date, under the rule in force for it.

    Lives in portfolio because the broker's own DayTradesRemaining figure is in AccountStatus.
    """

    @extend_schema(
        parameters=[
            OpenApiParameter("account", OpenApiTypes.STR, required=True, description="Broker account id"),
            OpenApiParameter("date", OpenApiTypes.DATE, description="Default: today (exchange time)"),
        ],
        responses={200: PdtStatusSerializer},
    )
    def get(self, request: Request) -> Response:
        query = AccountDateQuerySerializer(data=request.query_params, user=request.user, account_required=True)
        query.is_valid(raise_exception=True)
        try:
            report = account_pdt_status_get(
                account=query.validated_data["account"], as_of=query.validated_data.get("date")
            )
        except ValueError as exc:  # a date outside the exchange calendar's range
            return Response({"date": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(PdtStatusSerializer(report).data)


class AccountStatusListApi(generics.ListAPIView):
    """The broker's latest account values per visible account, with the cash per currency and its total
    in the base currency (``cash_total_base`` null and ``fx_missing`` naming the currencies without a rate)."""

    serializer_class = AccountStatusSerializer
    filter_backends: list = []

    def get_queryset(self):
        return account_status_list(user=self.request.user)


class SnapshotListApi(generics.ListAPIView):
    """Account value over time: every snapshot (``interval=hour``) or the last of each trade date."""

    serializer_class = SnapshotSerializer
    filterset_class = SnapshotFilter

    def get_queryset(self):
        interval = self.request.query_params.get("interval") or "hour"
        return snapshot_list(user=self.request.user, interval=interval if interval in {"hour", "day"} else "hour")


class MetricsQuerySerializer(AccountDateQuerySerializer):
    window = serializers.ChoiceField(choices=["all", "20"], default="all", help_text="all, or the last 20 round trips")


def _single_account(request: Request, query) -> Account | Response:
    """The ``account`` asked for, or the user's only account; a 400 naming the field otherwise."""
    account = query.validated_data.get("account")
    if account is not None:
        return account
    accounts = list(Account.objects.visible_to(request.user)[:2])
    if len(accounts) == 1:
        return accounts[0]
    message = "You have no accounts." if not accounts else "You have several accounts: say which one."
    return Response({"account": [message]}, status=status.HTTP_400_BAD_REQUEST)


class MetricsApi(APIView):
    """Performance figures of an account as of the last computation (all time, or last 20 round trips)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("account", OpenApiTypes.STR, description="Broker account id (optional with one account)"),
            OpenApiParameter("window", OpenApiTypes.STR, enum=["all", "20"], description="Default all"),
        ],
        responses={200: MetricsSerializer},
    )
    def get(self, request: Request) -> Response:
        query = MetricsQuerySerializer(data=request.query_params, user=request.user)
        query.is_valid(raise_exception=True)
        account = _single_account(request, query)
        if isinstance(account, Response):
            return account
        metrics = metrics_get(account=account, window=query.validated_data["window"])
        if metrics is None:
            return Response(
                {
                    "detail": f"No metrics for {account.account_id} yet: they are computed after each close "
                    "(or run `manage.py compute_metrics`)."
                },
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(MetricsSerializer(metrics).data)


class PortfolioSummaryApi(APIView):
    """An account's headline figures, from the database in milliseconds whether or not the broker is up."""

    @extend_schema(
        parameters=[OpenApiParameter("account", OpenApiTypes.STR, description="Optional with one account")],
        responses={200: PortfolioSummarySerializer},
    )
    def get(self, request: Request) -> Response:
        query = AccountDateQuerySerializer(data=request.query_params, user=request.user)
        query.is_valid(raise_exception=True)
        account = _single_account(request, query)
        if isinstance(account, Response):
            return account
        return Response(PortfolioSummarySerializer(portfolio_summary_get(account=account)).data)


class MetricsHistoryQuerySerializer(AccountDateQuerySerializer):
    since = DateField(required=False, help_text="First day (ISO date); default: all")


class MetricsHistoryApi(APIView):
    """Daily series for charts: TWR index (equity curve), drawdown, daily P&L. Not paginated."""

    @extend_schema(
        parameters=[
            OpenApiParameter("account", OpenApiTypes.STR, description="Optional with one account"),
            OpenApiParameter("since", OpenApiTypes.DATE),
        ],
        responses={200: MetricsHistorySerializer},
    )
    def get(self, request: Request) -> Response:
        query = MetricsHistoryQuerySerializer(data=request.query_params, user=request.user)
        query.is_valid(raise_exception=True)
        account = _single_account(request, query)
        if isinstance(account, Response):
            return account
        points = metrics_history(account=account, since=query.validated_data.get("since"))
        body = {"account": account.account_id, "window": "all", "points": points}
        return Response(MetricsHistorySerializer(body).data)
