from django.urls import path

from apps.accounts import api

app_name = "accounts-api"
urlpatterns = [
    path("me/", api.MeApi.as_view(), name="me"),
    path("auth/token/", api.AuthTokenApi.as_view(), name="token"),
]
