from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.api import parse_query, validation_error
from advisor.rest import BodyTooLarge, Pagination
from advisor.schema import ErrorOut
from advisor.security import ExpiringTokenAuthentication
from apps.accounts.models import Team
from apps.accounts.selectors import teams_of, teams_writable_by
from apps.workloads import selectors, services
from apps.workloads.models import Workload
from apps.workloads.serializers import LogImportIn, WorkloadCreateIn, WorkloadIn, WorkloadOut
from apps.workloads.streams import Readable
from apps.workloads.uploads import (
    LARGER_FILES,
    UploadSessionAuthentication,
    UploadTooLarge,
    check_upload_size,
    deferred_csrf_check,
)

UPLOAD_ERRORS = {
    400: OpenApiResponse(
        response=ErrorOut,
        description="The file or a parameter is wrong; `errors` names it (`file` for the file).",
    ),
    403: OpenApiResponse(
        response=ErrorOut, description="Viewers cannot upload; refused before the body is read."
    ),
    413: OpenApiResponse(
        response=ErrorOut, description="The body is over UPLOAD_MAX_BYTES; refused before it is read."
    ),
}


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


class RawUploadParser(BaseParser):
    """Accepts a raw upload (text/csv, application/x-ndjson, …) without reading it: the view reads
    request.stream itself, as a stream, after its role check."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return {}


class UploadApi(APIView):
    """Uploads authenticate without reading the body and check CSRF after the role (apps/workloads/uploads.py)."""

    authentication_classes = [ExpiringTokenAuthentication, UploadSessionAuthentication]

    def upload(self, request: Request) -> tuple[Readable, str]:
        """The uploaded file as a stream, and its name; call after the role check."""
        try:
            check_upload_size(request._request)
        except UploadTooLarge as exc:
            raise BodyTooLarge(length=exc.length, limit=exc.limit, field="file", hint=LARGER_FILES) from exc
        deferred_csrf_check(request)
        if request.content_type.startswith("multipart/form-data"):
            upload = request.FILES.get("file")
            if upload is None:
                raise validation_error("file", "Upload the file in the `file` field.", "required")
            return upload, upload.name or ""
        if request.stream is None:
            raise validation_error(
                "file", "The request body is empty: send the file as the body.", "required"
            )
        return request.stream, ""


class WorkloadTrafficImportApi(UploadApi):
    parser_classes = [MultiPartParser, RawUploadParser]

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
            "text/csv": {"type": "string", "format": "binary"},
        },
        responses={200: WorkloadOut, **UPLOAD_ERRORS},
        description="Replace the traffic curve from a CSV of request timestamps or of `hour,requests` counts, "
        "as a multipart `file` or as the body (text/csv).",
    )
    def post(self, request: Request, workload_id: int) -> Response:
        workload = get_object_or_404(selectors.workloads_visible_to(user=request.user), pk=workload_id)
        services.ensure_can_write(user=request.user, team=workload.team)
        source, _ = self.upload(request)
        workload = services.workload_import_traffic(workload=workload, source=source, user=request.user)
        return Response(WorkloadOut(workload).data)


class WorkloadLogImportApi(UploadApi):
    parser_classes = [MultiPartParser, RawUploadParser]

    @extend_schema(
        parameters=[
            LogImportIn,
            OpenApiParameter(
                "team", OpenApiTypes.STR, description="Team slug; optional when you can write to one team."
            ),
        ],
        request={
            "text/csv": {"type": "string", "format": "binary"},
            "application/x-ndjson": {"type": "string", "format": "binary"},
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
        },
        responses={201: WorkloadOut, **UPLOAD_ERRORS},
        description="Create a workload from a request log (Azure trace, OpenAI usage records, LiteLLM spend "
        "logs, or `timestamp,input_tokens,output_tokens`; CSV or JSON Lines) sent as the body or as a "
        "multipart `file`. Everything else is in the query string, so a caller who may not write is refused "
        "before the body is read. `import_summary` in the answer counts the rows skipped and why.",
    )
    def post(self, request: Request) -> Response:
        params = {key: request.query_params.getlist(key) for key in request.query_params}
        options: dict[str, Any] = {
            key: values if key == "allowed_quantizations" else values[-1] for key, values in params.items()
        }
        team = resolve_team(request=request, slug=options.pop("team", None))
        services.ensure_can_write(user=request.user, team=team)
        source, file_name = self.upload(request)
        workload = services.workload_import_log(
            team=team, source=source, options=options, user=request.user, file_name=file_name
        )
        return Response(WorkloadOut(workload).data, status=status.HTTP_201_CREATED)
