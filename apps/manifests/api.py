from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.manifests.forms import BundleChoicesForm
from apps.manifests.services import BundleUnavailable, manifest_bundle_zip
from apps.planner.selectors import recommendations_visible_to


class ManifestZipApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("option", OpenApiTypes.INT, description="Option rank (default 1, the best)"),
            OpenApiParameter("autoscaler", OpenApiTypes.STR, enum=["keda", "hpa"]),
            OpenApiParameter("overflow", OpenApiTypes.STR, enum=["none", "cheapest"]),
            OpenApiParameter("namespace", OpenApiTypes.STR),
            OpenApiParameter(
                "mixed",
                OpenApiTypes.INT,
                description="The plan's mixed fleet N (mixed_fleets[N]) instead of an option: one deployment "
                "per GPU type and the LiteLLM router between them (Kubernetes only).",
            ),
            OpenApiParameter(
                "target",
                OpenApiTypes.STR,
                enum=["all", "compose", "kubernetes"],
                description="Which files (default all). A replica over several nodes has no Compose form: "
                "compose is refused with a 400 naming target, and all omits compose.yaml.",
            ),
        ],
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The bundle")},
        description="compose.yaml, k8s/*.yaml, README.md (and a LiteLLM router with overflow), validated first. "
        "A multi-node option's replica is a LeaderWorkerSet.",
    )
    def get(self, request: Request, recommendation_id: int) -> HttpResponse:
        recommendation = get_object_or_404(
            recommendations_visible_to(user=request.user), pk=recommendation_id
        )
        form = BundleChoicesForm(request.query_params)
        if not form.is_valid():
            raise exceptions.ValidationError(
                {name: [str(e) for e in errors] for name, errors in form.errors.items()}
            )
        try:
            filename, payload = manifest_bundle_zip(recommendation=recommendation, choices=form.choices())
        except BundleUnavailable as exc:
            raise exceptions.ValidationError({exc.field: [str(exc)]}) from exc
        response = HttpResponse(payload, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
