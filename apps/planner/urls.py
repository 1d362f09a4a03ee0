from django.urls import path

from apps.planner import views

app_name = "planner"
urlpatterns = [
    path("", views.recommendation_list, name="list"),
    path("<int:recommendation_id>/", views.recommendation_detail, name="detail"),
    path("workloads/<int:workload_id>/", views.plan_create, name="create"),
]
