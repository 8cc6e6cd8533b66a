from django.urls import path

from sentiment.api import views

urlpatterns = [
    path("sentiment/posts", views.PostListApi.as_view(), name="api-sentiment-posts"),
    path("sentiment/symbols/<str:symbol>", views.SymbolSentimentApi.as_view(), name="api-sentiment-symbol"),
    path("sentiment/confluence/<str:symbol>", views.ConfluenceApi.as_view(), name="api-sentiment-confluence"),
    path("options-flow", views.OptionsFlowListApi.as_view(), name="api-options-flow"),
    path("options-flow/patterns", views.OptionsPatternListApi.as_view(), name="api-options-patterns"),
]
