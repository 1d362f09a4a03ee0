from django.urls import path

from apps.benchmarks import views

app_name = "benchmarks"
urlpatterns = [
    path("", views.run_list, name="run-list"),
    path("workloads/<int:workload_id>/new/", views.run_new, name="run-new"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("workers/", views.worker_list, name="worker-list"),
]
