from dataclasses import fields as dataclass_fields

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.brokers import BrokerError, BrokerUnavailable, get_broker
from trading.api.filters import DayTradeFilter, ExecutionFilter, OrderFilter, RoundTripFilter, SettlementFilter
from trading.api.serializers import (
    AccountDateQuerySerializer,
    AccountQuerySerializer,
    CashStateSerializer,
    DayTradeSerializer,
    ExecuteOrderSerializer,
    ExecutionSerializer,
    LivePositionsSerializer,
    OrderDetailSerializer,
    OrderSerializer,
    RiskStateSerializer,
    RoundTripSerializer,
    SettlementSerializer,
)
from trading.calendars import trade_date_of
from trading.hooks import round_trip_entry_greeks
from trading.models import Account, OrderEventSource, OrderStatus
from trading.selectors import (
    cash_state_get,
    day_trade_list,
    execution_list,
    order_fills,
    order_get,
    order_list,
    round_trip_list,
    settlement_list,
)
from trading.services.orders import (
    OrderInput,
    OrderNotCancellable,
    order_cancel,
    order_execute,
    orders_status_sync,
)
from trading.services.risk import risk_state_get

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


# --- orders ------------------------------------------------------------------------------------
ORDER_INPUT_FIELDS = tuple(f.name for f in dataclass_fields(OrderInput))


def _order_body(order) -> dict:
    order.fills = list(order_fills(order=order))
    return OrderDetailSerializer(order).data


class ExecuteOrderApi(APIView):
    """Place an order: every risk check judged and named; paper accounts filled by the paper engine,
    live ones sent to the broker only with LIVE_TRADING_ENABLED. 201 created, 422 refused by a risk
    check (status REJECTED, every failed check named), 200 the same ``client_order_id`` again (the
    first order; nothing placed twice), 400 malformed input (the field named), 403 not your account."""

    @extend_schema(
        request=ExecuteOrderSerializer,
        responses={201: OrderDetailSerializer, 200: OrderDetailSerializer, 422: OrderDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        body = ExecuteOrderSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        account = Account.objects.visible_to(request.user).filter(account_id=data.pop("account")).first()
        if account is None:
            raise PermissionDenied("Unknown account, or not one of yours.")
        outcome = order_execute(
            account=account,
            data=OrderInput(**{k: v for k, v in data.items() if k in ORDER_INPUT_FIELDS}),
            user=request.user,
        )
        order = outcome.order
        if not outcome.created:
            code = status.HTTP_200_OK
        elif order.status == OrderStatus.REJECTED:
            code = status.HTTP_422_UNPROCESSABLE_ENTITY
        else:
            code = status.HTTP_201_CREATED
        return Response(_order_body(order), status=code)


class OrderListApi(generics.ListAPIView):
    """Orders of your accounts, newest first: ``?account=&status=&since=`` (an ISO time)."""

    serializer_class = OrderSerializer
    filterset_class = OrderFilter

    def get_queryset(self):
        return order_list(user=self.request.user)


class OrderDetailApi(APIView):
    """One order with its events (the lifecycle) and its fills."""

    @extend_schema(responses={200: OrderDetailSerializer})
    def get(self, request: Request, pk: int) -> Response:
        order = order_get(user=request.user, pk=pk)
        if order is None:
            raise NotFound("No such order among your accounts.")
        return Response(_order_body(order))


class OrderCancelApi(APIView):
    """Cancel a working order (at once on paper, through the broker when live); 409 when it is done."""

    @extend_schema(request=None, responses={200: OrderDetailSerializer})
    def post(self, request: Request, pk: int) -> Response:
        order = order_get(user=request.user, pk=pk)
        if order is None:
            raise NotFound("No such order among your accounts.")
        try:
            order = order_cancel(order=order, source=OrderEventSource.USER)
        except OrderNotCancellable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(_order_body(order))


class RiskStateApi(APIView):
    """What an account's orders are judged by now: circuit breaker, net liquidation, day trades, cash."""

    @extend_schema(
        parameters=[OpenApiParameter("account", OpenApiTypes.STR, required=True, description="Account id")],
        responses={200: RiskStateSerializer},
    )
    def get(self, request: Request) -> Response:
        query = AccountQuerySerializer(data=request.query_params, user=request.user, account_required=True)
        query.is_valid(raise_exception=True)
        account = query.validated_data["account"]
        return Response(RiskStateSerializer(risk_state_get(account=account)).data)


class OrderRefreshApi(APIView):
    """Ask the broker now for a live order's status (what the 30 s "Order status sync" does); 503 when it
    cannot be reached. A paper order is answered as stored: the paper engine is its only source."""

    @extend_schema(request=None, responses={200: OrderDetailSerializer})
    def post(self, request: Request, pk: int) -> Response:
        order = order_get(user=request.user, pk=pk)
        if order is None:
            raise NotFound("No such order among your accounts.")
        if order.mode == "LIVE" and order.is_working:
            try:
                orders_status_sync(account=order.account, broker=get_broker())
            except BrokerUnavailable as exc:
                return Response({"detail": f"Broker unreachable: {exc}"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
            except BrokerError as exc:
                return Response({"detail": f"Broker request failed: {exc}"}, status=status.HTTP_502_BAD_GATEWAY)
            order = order_get(user=request.user, pk=pk)
        return Response(_order_body(order))
