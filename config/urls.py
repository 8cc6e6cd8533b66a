from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from core import api_docs
from core import views as core_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", core_views.health, name="health"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", api_docs.schema_view, name="api-schema"),
    path("api/docs/", api_docs.docs_view, name="api-docs"),
    # portfolio's API also answers two paths under /api/trading/ (pdt-status, portfolio/summary): see there.
    path("api/", include("portfolio.api.urls")),
    path("api/trading/", include("trading.api.urls")),
    path("api/", include("marketdata.api.urls")),
    path("market-data/", include("marketdata.urls")),
    path("api/", include("sentiment.api.urls")),
    path("sentiment/", include("sentiment.urls")),
    path("", include("portfolio.urls")),
]
