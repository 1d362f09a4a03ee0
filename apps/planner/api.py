from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.api import IdParam, parse_query
from advisor.rest import Pagination
from apps.planner import selectors, services
from apps.planner.serializers import RecommendationOut, RecommendationSummaryOut
from apps.workloads.selectors import workloads_visible_to


class WorkloadPlanApi(APIView):
    @extend_schema(
        request=None,
        responses={202: RecommendationOut},
        description="Plan the workload as it is now. Runs in the background (a Celery task, or without a broker "
        "a thread of the web process); poll the returned URL until `status` is `succeeded` or `failed`. A plan "
        "with no option carries `result.feasibility`: why, and suggested changes each verified to plan.",
    )
    def post(self, request: Request, workload_id: int) -> Response:
        workload = get_object_or_404(workloads_visible_to(user=request.user), pk=workload_id)
        recommendation = services.recommendation_request(workload=workload, user=request.user)
        recommendation.refresh_from_db()
        return Response(
            RecommendationOut(recommendation).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/recommendations/{recommendation.pk}/"},
        )


class RecommendationListQuery(serializers.Serializer[Any]):
    workload = IdParam(help_text="Workload id")


class RecommendationListApi(APIView):
    pagination_class = Pagination  # read by the schema generator: the list is documented as paginated

    @extend_schema(parameters=[RecommendationListQuery], responses=RecommendationSummaryOut(many=True))
    def get(self, request: Request) -> Response:
        query = parse_query(RecommendationListQuery, request)
        recommendations = selectors.recommendation_list(user=request.user, workload_id=query.get("workload"))
        paginator = Pagination()
        page = paginator.paginate_queryset(recommendations, request, view=self)
        return paginator.get_paginated_response(RecommendationSummaryOut(page, many=True).data)


class RecommendationDetailApi(APIView):
    @extend_schema(responses=RecommendationOut)
    def get(self, request: Request, recommendation_id: int) -> Response:
        recommendation = get_object_or_404(
            selectors.recommendations_visible_to(user=request.user), pk=recommendation_id
        )
        return Response(RecommendationOut(recommendation).data)
