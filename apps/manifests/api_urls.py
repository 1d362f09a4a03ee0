from django.urls import path

from apps.manifests import api

app_name = "manifests-api"
urlpatterns = [
    path("recommendations/<int:recommendation_id>/manifests.zip", api.ManifestZipApi.as_view(), name="zip"),
]
