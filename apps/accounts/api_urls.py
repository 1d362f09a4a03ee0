from django.urls import path
from rest_framework.authtoken.views import ObtainAuthToken

from apps.accounts import api

app_name = "accounts-api"
urlpatterns = [
    path("me/", api.MeApi.as_view(), name="me"),
    path("auth/token/", ObtainAuthToken.as_view(), name="token"),
]
