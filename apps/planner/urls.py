from django.urls import path

from apps.planner import views

app_name = "planner"
urlpatterns = [
    path("", views.recommendation_list, name="list"),
    path("compare/", views.compare, name="compare"),
    path("<int:recommendation_id>/", views.recommendation_detail, name="detail"),
    path("<int:recommendation_id>/what-if/", views.what_if, name="what-if"),
    path("<int:recommendation_id>/report.pdf", views.report, name="report"),
    path(
        "<int:recommendation_id>/suggestions/<int:index>/plan/", views.suggestion_plan, name="suggestion-plan"
    ),
    path("workloads/<int:workload_id>/", views.plan_create, name="create"),
]
