from dataclasses import fields as dataclass_fields
from itertools import islice

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
    CreateSignalSerializer,
    DailyPnlSerializer,
    DayTradeSerializer,
    ExecuteOrderSerializer,
    ExecuteSignalSerializer,
    ExecutionSerializer,
    LivePositionsSerializer,
    OrderDetailSerializer,
    OrderSerializer,
    PaperTradeQuerySerializer,
    PaperTradeSerializer,
    RiskStateSerializer,
    RoundTripSerializer,
    SettlementSerializer,
    SignalQuerySerializer,
    SignalSerializer,
    TradeRecordQuerySerializer,
    TradeRecordSerializer,
    order_body,
)
from trading.calendars import trade_date_of
from trading.fx import executions_in_base, round_trips_in_base
from trading.hooks import round_trip_entry_greeks
from trading.models import Account, OrderEventSource, OrderStatus, PaperTrade, PaperTradeStatus, Signal, SignalStatus
from trading.selectors import (
    cash_state_get,
    daily_pnl_get,
    day_trade_list,
    execution_list,
    journal_list,
    order_get,
    order_list,
    paper_trade_list,
    round_trip_list,
    settlement_list,
    signal_list,
    trade_records_iter,
)
from trading.services.orders import (
    OrderInput,
    OrderNotCancellable,
    order_cancel,
    order_execute,
    orders_status_sync,
)
from trading.services.risk import risk_state_get
from trading.services.signals import (
    PaperTradeClosed,
    SignalError,
    SignalInput,
    paper_trade_close_by_hand,
    signal_create,
    signal_execute,
)

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

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return executions_in_base(list(page if page is not None else queryset))


class RoundTripListApi(generics.ListAPIView):
    """Closed round trips (flat to flat), net of commissions, newest first."""

    serializer_class = RoundTripSerializer
    filterset_class = RoundTripFilter

    def get_queryset(self):
        return round_trip_list(user=self.request.user)

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        page = round_trips_in_base(list(page if page is not None else queryset))
        # The entry Greeks of the page's option round trips, kept by an app above (trading.hooks).
        self.entry_greeks = round_trip_entry_greeks(page)
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


def _order_body(order, events=None) -> dict:
    return order_body(order, events=events)


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
        return Response(_order_body(order, events=outcome.events), status=code)


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


# --- signals and paper trades ------------------------------------------------------------------
SIGNAL_INPUT_FIELDS = tuple(f.name for f in dataclass_fields(SignalInput))


class SignalsApi(APIView):
    """``GET``: signals of your accounts (``?account=&date=&status=``, date a New York trade date, default
    today). ``POST``: store a signal; 201 created, 200 the same ``signal_id`` again (the first signal),
    400 malformed (the field named; a stop or target on the wrong side of the entry too), 403 not yours.
    The confluence score and components are the sender's (trading does not read sentiment)."""

    @extend_schema(
        parameters=[SignalQuerySerializer],
        responses={200: SignalSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        query = SignalQuerySerializer(data=request.query_params, user=request.user)
        query.is_valid(raise_exception=True)
        account = query.validated_data.get("account")
        signals = signal_list(
            user=request.user,
            account_id=account.account_id if account else None,
            day=query.validated_data.get("date") or trade_date_of(timezone.now()),
            status=query.validated_data.get("status"),
        )
        return Response(SignalSerializer(signals, many=True).data)

    @extend_schema(request=CreateSignalSerializer, responses={201: SignalSerializer, 200: SignalSerializer})
    def post(self, request: Request) -> Response:
        body = CreateSignalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        account = Account.objects.visible_to(request.user).filter(account_id=data.pop("account")).first()
        if account is None:
            raise PermissionDenied("Unknown account, or not one of yours.")
        try:
            signal, created = signal_create(
                account=account, data=SignalInput(**{k: v for k, v in data.items() if k in SIGNAL_INPUT_FIELDS})
            )
        except ValueError as exc:
            return Response(exc.args[0], status=status.HTTP_400_BAD_REQUEST)
        return Response(
            SignalSerializer(signal).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class SignalExecuteApi(APIView):
    """Execute a signal: an order of ``quantity`` (default ``risk_amount / |entry - stop|`` whole shares)
    through every risk check. 201 the order was accepted (EXECUTED; a fill opens the paper trade), 422
    refused by a risk check (the signal stays GENERATED with the reasons), 409 expired or not GENERATED."""

    @extend_schema(request=ExecuteSignalSerializer, responses={201: SignalSerializer, 422: SignalSerializer})
    def post(self, request: Request, pk: int) -> Response:
        body = ExecuteSignalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        signal = Signal.objects.visible_to(request.user).filter(pk=pk).first()
        if signal is None:
            raise NotFound("No such signal in your accounts.")
        try:
            signal = signal_execute(signal=signal, quantity=body.validated_data.get("quantity"), user=request.user)
        except SignalError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        code = (
            status.HTTP_201_CREATED if signal.status == SignalStatus.EXECUTED else status.HTTP_422_UNPROCESSABLE_ENTITY
        )
        return Response(SignalSerializer(signal_list(user=request.user).get(pk=signal.pk)).data, status=code)


class PaperTradeListApi(APIView):
    """Paper trades of your accounts: ``?status=open|closed&account=``, newest first."""

    @extend_schema(parameters=[PaperTradeQuerySerializer], responses={200: PaperTradeSerializer(many=True)})
    def get(self, request: Request) -> Response:
        query = PaperTradeQuerySerializer(data=request.query_params, user=request.user)
        query.is_valid(raise_exception=True)
        account = query.validated_data.get("account")
        trades = paper_trade_list(
            user=request.user,
            account_id=account.account_id if account else None,
            status=query.validated_data.get("status"),
        )
        return Response(PaperTradeSerializer(trades, many=True).data)


class PaperTradeCloseApi(APIView):
    """Close an open paper trade by hand: a closing market order through every check (exit reason MANUAL).
    200 closed (filled) or the closing order is working (market closed: the monitor finishes it); 422 the
    closing order was refused (the trade stays open, ``exit_note`` says why); 409 closed already or a
    closing order is working; 403 another trader's account; 404 no such trade."""

    @extend_schema(request=None, responses={200: PaperTradeSerializer, 422: PaperTradeSerializer})
    def post(self, request: Request, pk: int) -> Response:
        trade = paper_trade_list(user=request.user).select_related("exit_order").filter(pk=pk).first()
        if trade is None:
            if PaperTrade.objects.filter(pk=pk).exists():
                raise PermissionDenied("This paper trade is in an account that is not yours.")
            raise NotFound("No such paper trade.")
        try:
            trade = paper_trade_close_by_hand(trade=trade, user=request.user)
        except PaperTradeClosed as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        trade = paper_trade_list(user=request.user).select_related("exit_order").get(pk=trade.pk)
        refused = trade.status == PaperTradeStatus.OPEN and not (trade.exit_order and trade.exit_order.is_working)
        code = status.HTTP_422_UNPROCESSABLE_ENTITY if refused else status.HTTP_200_OK
        return Response(PaperTradeSerializer(trade).data, status=code)


class DailyPnlApi(APIView):
    """``?account=&date=``: realized P&L of paper trades exited that trade date plus unrealized of open ones."""

    @extend_schema(parameters=[AccountDateQuerySerializer], responses={200: DailyPnlSerializer})
    def get(self, request: Request) -> Response:
        query = AccountDateQuerySerializer(data=request.query_params, user=request.user)
        query.is_valid(raise_exception=True)
        account = query.validated_data.get("account")
        day = query.validated_data.get("date") or trade_date_of(timezone.now())
        pnl = daily_pnl_get(user=request.user, day=day, account_id=account.account_id if account else None)
        return Response(DailyPnlSerializer(pnl).data)


class JournalApi(APIView):
    """``?account=&date=``: that trade date's closed paper trades with their reasoning, in exit order."""

    @extend_schema(parameters=[AccountDateQuerySerializer], responses={200: PaperTradeSerializer(many=True)})
    def get(self, request: Request) -> Response:
        query = AccountDateQuerySerializer(data=request.query_params, user=request.user)
        query.is_valid(raise_exception=True)
        account = query.validated_data.get("account")
        day = query.validated_data.get("date") or trade_date_of(timezone.now())
        trades = journal_list(user=request.user, day=day, account_id=account.account_id if account else None)
        return Response(PaperTradeSerializer(trades, many=True).data)


class TradeRecordListApi(APIView):
    """The 27-field trade record of your closed trades, oldest first: ``?account=&since=&until=&outcome=&limit=``
    (at most ``limit``, default 1,000; ``manage.py export_trade_records`` streams them all)."""

    @extend_schema(parameters=[TradeRecordQuerySerializer], responses={200: TradeRecordSerializer(many=True)})
    def get(self, request: Request) -> Response:
        query = TradeRecordQuerySerializer(data=request.query_params, user=request.user)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        account = params.get("account")
        records = trade_records_iter(
            user=request.user,
            account_id=account.account_id if account else None,
            since=params.get("since"),
            until=params.get("until"),
            outcome=params.get("outcome"),
        )
        return Response(list(islice(records, params["limit"])))
