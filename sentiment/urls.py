from django.urls import path

from sentiment import views

urlpatterns = [path("", views.sentiment_page, name="sentiment")]
