from django.urls import path

from apps.benchmarks import api

app_name = "benchmarks-api"
urlpatterns = [
    path(
        "workloads/<int:workload_id>/benchmark-runs/",
        api.WorkloadBenchmarkRunsApi.as_view(),
        name="workload-runs",
    ),
    path(
        "workloads/<int:workload_id>/benchmark-candidates/",
        api.WorkloadBenchmarkCandidatesApi.as_view(),
        name="workload-candidates",
    ),
    path("benchmark-runs/", api.RunListApi.as_view(), name="run-list"),
    path("benchmark-runs/<int:run_id>/", api.RunDetailApi.as_view(), name="run-detail"),
    path("benchmark-runs/<int:run_id>/cancel/", api.RunCancelApi.as_view(), name="run-cancel"),
    path("benchmark-runs/<int:run_id>/results/", api.RunResultsApi.as_view(), name="run-results"),
    path("measurements/", api.MeasurementListApi.as_view(), name="measurement-list"),
    path("measurements/<int:measurement_id>/", api.MeasurementDetailApi.as_view(), name="measurement-detail"),
    path("workers/", api.WorkerListApi.as_view(), name="worker-list"),
]
