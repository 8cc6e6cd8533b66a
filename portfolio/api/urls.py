from django.urls import path

from portfolio.api import views

urlpatterns = [
    path("portfolio/positions", views.PositionListApi.as_view(), name="api-positions"),
    path("portfolio/positions/<int:pk>/events", views.PositionEventListApi.as_view(), name="api-position-events"),
    path("sync/positions", views.PositionSyncRequestApi.as_view(), name="api-sync-positions"),
    path("sync/status", views.SyncStatusApi.as_view(), name="api-sync-status"),
    path("portfolio/account-status", views.AccountStatusListApi.as_view(), name="api-account-status"),
    path("portfolio/snapshots", views.SnapshotListApi.as_view(), name="api-snapshots"),
    path("portfolio/metrics", views.MetricsApi.as_view(), name="api-metrics"),
    path("portfolio/metrics/history", views.MetricsHistoryApi.as_view(), name="api-metrics-history"),
    # Under /api/trading/ since they were published there (the API contract), but they read portfolio's
    # records (AccountStatus, positions, snapshots), so their views and routes live here.
    path("trading/pdt-status", views.PdtStatusApi.as_view(), name="api-pdt-status"),
    path("trading/portfolio/summary", views.PortfolioSummaryApi.as_view(), name="api-portfolio-summary"),
]
