from django.urls import path

from apps.planner import api

app_name = "planner-api"
urlpatterns = [
    path("workloads/<int:workload_id>/recommendations/", api.WorkloadPlanApi.as_view(), name="plan"),
    path("recommendations/", api.RecommendationListApi.as_view(), name="list"),
    path("recommendations/<int:recommendation_id>/", api.RecommendationDetailApi.as_view(), name="detail"),
]
