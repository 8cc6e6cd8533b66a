from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trading.api.serializers import LivePositionsQuerySerializer, LivePositionsSerializer
from trading.brokers import BrokerError, BrokerUnavailable, get_broker
from trading.models import Account


class LivePositionsApi(APIView):
    """Positions straight from the broker, for comparison with the stored ones. Slow by nature."""

    @extend_schema(
        parameters=[OpenApiParameter("account", OpenApiTypes.STR, description="Broker account id")],
        responses={200: LivePositionsSerializer},
    )
    def get(self, request: Request) -> Response:
        query = LivePositionsQuerySerializer(data=request.query_params, user=request.user)
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
