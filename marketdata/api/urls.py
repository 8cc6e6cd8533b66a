from django.urls import path

from marketdata.api import views

urlpatterns = [
    path("market-data/quote/<str:symbol>", views.QuoteApi.as_view(), name="api-market-data-quote"),
    path("market-data/bars/<str:symbol>", views.BarListApi.as_view(), name="api-market-data-bars"),
    path("market-data/fx-rates", views.FxRateListApi.as_view(), name="api-market-data-fx-rates"),
]
