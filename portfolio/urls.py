from django.urls import path

from portfolio.views import compliance, health, orders, overview, performance, positions, trades

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
    path("performance/", performance.performance, name="performance"),
    path("sync-health/", health.sync_health, name="sync-health"),
]
