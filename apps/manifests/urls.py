from django.urls import path

from apps.manifests import views

app_name = "manifests"
urlpatterns = [
    path("plans/<int:recommendation_id>/options/<int:rank>/", views.bundle_preview, name="preview"),
    path(
        "plans/<int:recommendation_id>/options/<int:rank>/bundle.zip", views.bundle_download, name="download"
    ),
]
