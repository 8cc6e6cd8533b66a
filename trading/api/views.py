from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.brokers import BrokerError, BrokerUnavailable, get_broker
from trading.api.filters import DayTradeFilter, ExecutionFilter, RoundTripFilter, SettlementFilter
from trading.api.serializers import (
    AccountDateQuerySerializer,
    AccountQuerySerializer,
    CashStateSerializer,
    DayTradeSerializer,
    ExecutionSerializer,
    LivePositionsSerializer,
    RoundTripSerializer,
    SettlementSerializer,
)
from trading.calendars import trade_date_of
from trading.hooks import round_trip_entry_greeks
from trading.models import Account
from trading.selectors import cash_state_get, day_trade_list, execution_list, round_trip_list, settlement_list

ACCOUNT_PARAM = OpenApiParameter("account", OpenApiTypes.STR, description="Broker account id")


class LivePositionsApi(APIView):
    """Positions straight from the broker, for comparison with the stored ones. Slow by nature."""

    @extend_schema(parameters=[ACCOUNT_PARAM], responses={200: LivePositionsSerializer})
    def get(self, request: Request) -> Response:
        query = AccountQuerySerializer(data=request.query_params, user=request.user)
        query.is_valid(raise_exception=True)
        account = query.validated_data.get("account")
        accounts = [account] if account else list(Account.objects.visible_to(request.user))
        broker = get_broker()
        rows, warnings = [], []
        try:
            for acc in accounts:
                fetched = broker.positions(acc.account_id)
                rows.extend(fetched.items)
                warnings.extend(fetched.warnings)
        except BrokerUnavailable as exc:
            return Response({"detail": f"Broker unreachable: {exc}"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except BrokerError as exc:
            return Response({"detail": f"Broker request failed: {exc}"}, status=status.HTTP_502_BAD_GATEWAY)
        return Response(LivePositionsSerializer({"results": rows, "warnings": warnings}).data)


class TradeListApi(generics.ListAPIView):
    """Fills of your accounts, newest first; ``since``/``until`` are trade dates (exchange time)."""

    serializer_class = ExecutionSerializer
    filterset_class = ExecutionFilter

    def get_queryset(self):
        return execution_list(user=self.request.user)


class RoundTripListApi(generics.ListAPIView):
    """Closed round trips (flat to flat), net of commissions, newest first."""

    serializer_class = RoundTripSerializer
    filterset_class = RoundTripFilter

    def get_queryset(self):
        return round_trip_list(user=self.request.user)

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        # The entry Greeks of the page's option round trips, kept by an app above (trading.hooks).
        self.entry_greeks = round_trip_entry_greeks(list(page if page is not None else queryset))
        return page

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "entry_greeks": getattr(self, "entry_greeks", {})}


class DayTradeListApi(generics.ListAPIView):
    serializer_class = DayTradeSerializer
    filterset_class = DayTradeFilter

    def get_queryset(self):
        return day_trade_list(user=self.request.user)


class SettlementListApi(generics.ListAPIView):
    """Cash movements of fills by settlement date (pending first by date)."""

    serializer_class = SettlementSerializer
    filterset_class = SettlementFilter

    def get_queryset(self):
        return settlement_list(user=self.request.user)


class CashStateApi(APIView):
    """A CASH account's settled and unsettled cash on a date, and its violations of the last 12 months."""

    @extend_schema(
        parameters=[
            OpenApiParameter("account", OpenApiTypes.STR, required=True, description="Broker account id"),
            OpenApiParameter("date", OpenApiTypes.DATE, description="Default: today (exchange time)"),
        ],
        responses={200: CashStateSerializer},
    )
    def get(self, request: Request) -> Response:
        query = AccountDateQuerySerializer(data=request.query_params, user=request.user, account_required=True)
        query.is_valid(raise_exception=True)
        account = query.validated_data["account"]
        as_of = query.validated_data.get("date") or trade_date_of(timezone.now())
        state, violations = cash_state_get(account=account, as_of=as_of)
        body = {
            "account": account.account_id,
            "date": as_of,
            "state_date": state.date if state else None,
            "settled_cash": state.settled_cash if state else None,
            "unsettled_cash": state.unsettled_cash if state else None,
            "violations_12m": len(violations),
            "violations": violations,
        }
        return Response(CashStateSerializer(body).data)
