from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.api import parse_query, validation_error
from advisor.rest import BoundedJSONParser, Pagination
from apps.accounts.models import Team
from apps.accounts.selectors import teams_of, teams_writable_by
from apps.workloads import selectors, services
from apps.workloads.models import Workload
from apps.workloads.serializers import WorkloadCreateIn, WorkloadIn, WorkloadOut


def resolve_team(*, request: Request, slug: Any) -> Team:
    """The team a new object goes to: named in the body, or the caller's only writable team."""
    if slug in (None, ""):
        writable = list(teams_writable_by(user=request.user)[:2])
        if len(writable) == 1:
            return writable[0]
        raise validation_error("team", "Required: name the team (slug) the workload belongs to.", "required")
    if not isinstance(slug, str):
        raise validation_error("team", "A team slug (string) is required.")
    team = teams_of(user=request.user).filter(slug=slug).first()
    if team is None:
        raise validation_error("team", f"Unknown team {slug!r}.", "unknown")
    return team


class WorkloadListQuery(serializers.Serializer[Any]):
    name = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Substring of the workload name"
    )
    team = serializers.SlugField(required=False, allow_blank=True, max_length=100, help_text="Team slug")


class WorkloadListApi(APIView):
    pagination_class = Pagination  # read by the schema generator: the list is documented as paginated

    @extend_schema(parameters=[WorkloadListQuery], responses=WorkloadOut(many=True))
    def get(self, request: Request) -> Response:
        query = parse_query(WorkloadListQuery, request)
        workloads = selectors.workload_list(
            user=request.user, name=query.get("name", ""), team=query.get("team", "")
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(workloads, request, view=self)
        return paginator.get_paginated_response(WorkloadOut(page, many=True).data)

    @extend_schema(request=WorkloadCreateIn, responses={201: WorkloadOut})
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise validation_error("body", "Must be a JSON object.")
        document = dict(body)
        team = resolve_team(request=request, slug=document.pop("team", None))
        workload = services.workload_create(team=team, document=document, user=request.user)
        return Response(WorkloadOut(workload).data, status=status.HTTP_201_CREATED)


class WorkloadDetailApi(APIView):
    def _get(self, request: Request, workload_id: int) -> Workload:
        return get_object_or_404(selectors.workloads_visible_to(user=request.user), pk=workload_id)

    @extend_schema(responses=WorkloadOut)
    def get(self, request: Request, workload_id: int) -> Response:
        return Response(WorkloadOut(self._get(request, workload_id)).data)

    @extend_schema(request=WorkloadIn, responses=WorkloadOut)
    def put(self, request: Request, workload_id: int) -> Response:
        workload = services.workload_update(
            workload=self._get(request, workload_id), document=request.data, user=request.user
        )
        return Response(WorkloadOut(workload).data)

    @extend_schema(request=WorkloadIn, responses=WorkloadOut)
    def patch(self, request: Request, workload_id: int) -> Response:
        workload = services.workload_update(
            workload=self._get(request, workload_id), document=request.data, user=request.user, partial=True
        )
        return Response(WorkloadOut(workload).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, workload_id: int) -> Response:
        services.workload_delete(workload=self._get(request, workload_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkloadTrafficImportApi(APIView):
    parser_classes = [MultiPartParser, BoundedJSONParser]

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        responses=WorkloadOut,
        description="Replace the traffic curve from a CSV of request timestamps or of `hour,requests` counts.",
    )
    def post(self, request: Request, workload_id: int) -> Response:
        workload = get_object_or_404(selectors.workloads_visible_to(user=request.user), pk=workload_id)
        upload = request.FILES.get("file")
        if upload is None:
            raise validation_error("file", "Upload a CSV file in the `file` field.", "required")
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise validation_error("file", "The file must be UTF-8 text.") from exc
        workload = services.workload_import_traffic(workload=workload, csv_text=text, user=request.user)
        return Response(WorkloadOut(workload).data)
