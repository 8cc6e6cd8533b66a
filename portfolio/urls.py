from django.urls import path

from portfolio.views import (
    alerts,
    compliance,
    health,
    journal,
    orders,
    overview,
    performance,
    positions,
    signals,
    trades,
)

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("overview/fragments", overview.overview_fragments, name="overview-fragments"),
    path("sync-now", overview.sync_now, name="sync-now"),
    path("positions/", positions.positions, name="positions"),
    path("positions/<int:pk>/", positions.position_detail, name="position-detail"),
    path("trades/", trades.trades, name="trades"),
    path("trades/export.csv", trades.trades_csv, name="trades-csv"),
    path("compliance/", compliance.compliance, name="compliance"),
    path("orders/", orders.orders, name="orders"),
    path("signals/", signals.signals, name="signals"),
    path("signals/<int:pk>/execute", signals.signal_execute_view, name="signal-execute"),
    path("paper-trades/<int:pk>/close", signals.paper_trade_close_view, name="paper-trade-close"),
    path("journal/", journal.journal, name="journal"),
    path("performance/", performance.performance, name="performance"),
    path("sync-health/", health.sync_health, name="sync-health"),
    path("alerts/", alerts.alert_settings, name="alerts"),
    path("alerts/channels", alerts.alert_channel_add, name="alert-channel-add"),
    path("alerts/channels/<int:pk>/remove", alerts.alert_channel_remove, name="alert-channel-remove"),
    path("alerts/test", alerts.alert_test, name="alert-test"),
]
