from django.urls import path

from apps.catalog import api

app_name = "catalog-api"
urlpatterns = [
    path("catalog/gpus/", api.GpuListApi.as_view(), name="gpus"),
    path("catalog/gpus/<str:slug>/", api.GpuDetailApi.as_view(), name="gpu"),
    path("catalog/models/", api.ModelListApi.as_view(), name="models"),
    path("catalog/models/<str:slug>/", api.ModelDetailApi.as_view(), name="model"),
    path("catalog/engines/", api.EngineListApi.as_view(), name="engines"),
    path("catalog/quantizations/", api.QuantizationListApi.as_view(), name="quantizations"),
    path("catalog/offers/", api.OfferListApi.as_view(), name="offers"),
    path("catalog/api-prices/", api.ApiPriceListApi.as_view(), name="api-prices"),
]
