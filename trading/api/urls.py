from django.urls import path

from trading.api import views

urlpatterns = [
    path("ibkr/positions", views.LivePositionsApi.as_view(), name="api-ibkr-positions"),
]
