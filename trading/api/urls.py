from django.urls import path

from trading.api import views

urlpatterns = [
    path("ibkr/positions", views.LivePositionsApi.as_view(), name="api-ibkr-positions"),
    path("trades", views.TradeListApi.as_view(), name="api-trades"),
    path("round-trips", views.RoundTripListApi.as_view(), name="api-round-trips"),
    path("day-trades", views.DayTradeListApi.as_view(), name="api-day-trades"),
    path("settlements", views.SettlementListApi.as_view(), name="api-settlements"),
    path("cash-state", views.CashStateApi.as_view(), name="api-cash-state"),
    path("execute", views.ExecuteOrderApi.as_view(), name="api-order-execute"),
    path("orders", views.OrderListApi.as_view(), name="api-orders"),
    path("orders/<int:pk>", views.OrderDetailApi.as_view(), name="api-order"),
    path("orders/<int:pk>/cancel", views.OrderCancelApi.as_view(), name="api-order-cancel"),
    path("orders/<int:pk>/refresh", views.OrderRefreshApi.as_view(), name="api-order-refresh"),
    path("signals", views.SignalsApi.as_view(), name="api-signals"),
    path("signals/<int:pk>/execute", views.SignalExecuteApi.as_view(), name="api-signal-execute"),
    path("paper-trades", views.PaperTradeListApi.as_view(), name="api-paper-trades"),
    path("paper-trades/<int:pk>/close", views.PaperTradeCloseApi.as_view(), name="api-paper-trade-close"),
    path("daily-pnl", views.DailyPnlApi.as_view(), name="api-daily-pnl"),
    path("journal", views.JournalApi.as_view(), name="api-journal"),
    path("trade-records", views.TradeRecordListApi.as_view(), name="api-trade-records"),
    path("risk-state", views.RiskStateApi.as_view(), name="api-risk-state"),
]
