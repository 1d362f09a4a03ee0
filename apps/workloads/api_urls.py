from django.urls import path

from apps.workloads import api

app_name = "workloads-api"
urlpatterns = [
    path("workloads/", api.WorkloadListApi.as_view(), name="list"),
    path("workloads/import-log/", api.WorkloadLogImportApi.as_view(), name="import-log"),
    path("workloads/<int:workload_id>/", api.WorkloadDetailApi.as_view(), name="detail"),
    path("workloads/<int:workload_id>/traffic/", api.WorkloadTrafficImportApi.as_view(), name="traffic"),
]
