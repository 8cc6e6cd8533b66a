from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from core import api_docs
from core import views as core_views
from portfolio.api.views import PdtStatusApi, PortfolioSummaryApi

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", core_views.health, name="health"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", api_docs.schema_view, name="api-schema"),
    path("api/docs/", api_docs.docs_view, name="api-docs"),
    path("api/", include("portfolio.api.urls")),
    # These two need portfolio's records (AccountStatus, positions, snapshots): their views live there.
    path("api/trading/pdt-status", PdtStatusApi.as_view(), name="api-pdt-status"),
    path("api/trading/portfolio/summary", PortfolioSummaryApi.as_view(), name="api-portfolio-summary"),
    path("api/trading/", include("trading.api.urls")),
    path("", include("portfolio.urls")),
]
