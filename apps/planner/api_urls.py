from django.urls import path  # noqa: F401

app_name = "planner-api"
urlpatterns: list = []
