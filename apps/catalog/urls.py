from django.urls import path

from apps.catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.catalog_index, name="index"),
    path("gpus/", views.gpu_list, name="gpus"),
    path("models/", views.model_list, name="models"),
    path("engines/", views.engine_list, name="engines"),
    path("offers/", views.offer_list, name="offers"),
    path("api-prices/", views.api_price_list, name="api-prices"),
]
