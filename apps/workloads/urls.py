from django.urls import path

from apps.workloads import views

app_name = "workloads"
urlpatterns = [
    path("", views.workload_list, name="list"),
    path("new/", views.workload_create, name="create"),
    path("import-log/", views.workload_import_log, name="import-log"),
    path("validate/", views.workload_validate, name="validate"),
    path("traffic-preview/", views.traffic_preview, name="traffic-preview"),
    path("<int:workload_id>/", views.workload_detail, name="detail"),
    path("<int:workload_id>/edit/", views.workload_edit, name="edit"),
    path("<int:workload_id>/delete/", views.workload_delete, name="delete"),
    path("<int:workload_id>/workload.json", views.workload_download, name="download"),
]
