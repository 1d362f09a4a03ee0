"""Benchmark endpoints. Another team's run answers 404 everywhere; viewers read but cannot start or cancel."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.api import IdParam, parse_query
from advisor.rest import BoundedJSONParser, Pagination
from apps.accounts.selectors import can_write
from apps.benchmarks import selectors, services
from apps.benchmarks.models import BenchmarkRun, RunStatus
from apps.benchmarks.serializers import (
    CandidateOptionsOut,
    MeasurementDetailOut,
    MeasurementOut,
    PostedResultOut,
    RequestedRunOut,
    RunDetailOut,
    RunOut,
    RunRequestIn,
    RunRequestOut,
    WorkerHostOut,
)
from apps.catalog.models import MODEL_SLUG_PATTERN
from apps.workloads.histograms import MAX_TOKENS
from apps.workloads.selectors import workloads_visible_to
from workers.engines import ENGINE_NAMES

# A result.json keeps every request's sample: thousands of requests per level make a few megabytes.
RESULT_MAX_BYTES = 64 * 1024 * 1024


class CandidatesQuery(serializers.Serializer[Any]):
    shrink = serializers.BooleanField(default=False, help_text="CPU smoke runs with a shrunk model")
    isl = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_TOKENS,
        help_text="Fixed prompt tokens (default: workload's)",
    )
    osl = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_TOKENS,
        help_text="Fixed output tokens (default: workload's)",
    )


class RunListQuery(serializers.Serializer[Any]):
    workload = IdParam(help_text="Workload id")
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    accelerator = serializers.SlugField(required=False, max_length=40, help_text="Accelerator slug")


class MeasurementListQuery(serializers.Serializer[Any]):
    workload = IdParam()
    run = IdParam()
    engine = serializers.ChoiceField(choices=list(ENGINE_NAMES), required=False)
    quant = serializers.SlugField(required=False, max_length=20)
    accelerator = serializers.SlugField(required=False, max_length=40)
    model = serializers.RegexField(MODEL_SLUG_PATTERN, required=False, max_length=200, help_text="Model slug")
    # Not nullable: an empty value is refused, as the schema says, rather than read as "either".
    representative = serializers.BooleanField(required=False, help_text="false: only shrunk smoke runs")


class WorkloadBenchmarkRunsApi(APIView):
    @extend_schema(
        request=RunRequestIn,
        responses={201: RunRequestOut, 200: RunRequestOut},
        description=(
            "Start benchmark runs for a workload: one run per accelerator, queued on `bench.<accelerator>`. "
            "List `candidates` or set `all_runnable`; candidates no live worker can run are returned in "
            "`left_to_model` (the performance model predicts them). 200 when every accelerator already had an "
            "active run (returned with `created: false`)."
        ),
    )
    def post(self, request: Request, workload_id: int) -> Response:
        workload = get_object_or_404(workloads_visible_to(user=request.user), pk=workload_id)
        if not can_write(user=request.user, team=workload.team):
            raise PermissionDenied("Viewers cannot start benchmark runs.")
        body = RunRequestIn(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = services.benchmark_run_request(
            workload=workload, user=request.user, **body.to_service_kwargs()
        )
        context = {
            "created": {r.run.pk: r.created for r in outcome.runs},
            "tokens": {r.run.pk: r.results_token for r in outcome.runs if r.results_token},
        }
        runs = [r.run for r in outcome.runs]
        data = {
            "runs": RequestedRunOut(runs, many=True, context=context).data,
            "left_to_model": [v.to_dict() for v in outcome.left_to_model],
        }
        created = any(r.created for r in outcome.runs)
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class WorkloadBenchmarkCandidatesApi(APIView):
    @extend_schema(
        parameters=[CandidatesQuery],
        responses=CandidateOptionsOut,
        description="Which candidates a live worker can measure now, and which only the model can predict.",
    )
    def get(self, request: Request, workload_id: int) -> Response:
        workload = get_object_or_404(workloads_visible_to(user=request.user), pk=workload_id)
        query = parse_query(CandidatesQuery, request)
        options = selectors.candidate_options(
            workload=workload, shrink=query["shrink"], isl=query.get("isl"), osl=query.get("osl")
        )
        return Response(
            {
                "runnable": [v.to_dict() for v in options.runnable],
                "left_to_model": [v.to_dict() for v in options.left_to_model],
            }
        )


class RunListApi(APIView):
    pagination_class = Pagination  # read by the schema generator: the list is documented as paginated

    @extend_schema(parameters=[RunListQuery], responses=RunOut(many=True))
    def get(self, request: Request) -> Response:
        query = parse_query(RunListQuery, request)
        runs = selectors.run_list(
            user=request.user,
            workload_id=query.get("workload"),
            status=query.get("status", ""),
            accelerator=query.get("accelerator", ""),
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(RunOut(page, many=True).data)


class RunDetailApi(APIView):
    @extend_schema(responses=RunDetailOut)
    def get(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(selectors.run_detail_queryset(user=request.user), pk=run_id)
        return Response(RunDetailOut(run).data)


class RunCancelApi(APIView):
    @extend_schema(
        request=None,
        responses=RunOut,
        description="Cancel a queued run at once, or ask a running one to stop (it stops within seconds).",
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(selectors.runs_visible_to(user=request.user), pk=run_id)
        run = services.benchmark_run_cancel(run=run, user=request.user)
        return Response(RunOut(run).data)


class RunTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <per-run token>`: checked by the results view against the run it names, so this
    class authenticates nobody by itself; it exists to answer 401 with a Bearer challenge."""

    def authenticate(self, request: Request) -> None:
        return None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="benchmark-run"'


class RunTokenAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apps.benchmarks.api.RunTokenAuthentication"
    name = "runToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "The run's results token"}


class ResultJSONParser(BoundedJSONParser):
    """result.json bodies carry raw samples, so they get a larger limit than ordinary API bodies."""

    def limit(self) -> int:
        return RESULT_MAX_BYTES


class RunResultsApi(APIView):
    authentication_classes = [RunTokenAuthentication]
    permission_classes = [AllowAny]
    parser_classes = [ResultJSONParser]

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: PostedResultOut, 200: PostedResultOut},
        description=(
            "A remote host's result.json (DESIGN.md format, as written by `python -m workers bench`) for one of "
            "the run's candidates, matched by engine, quant and tp. Authenticated by the run's token "
            "(`Authorization: Bearer <token>`), not by a user. Reposting the same body (same `Idempotency-Key`) "
            "returns 200 with what was stored."
        ),
    )
    def post(self, request: Request, run_id: int) -> Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        run = BenchmarkRun.objects.filter(pk=run_id).only("pk", "token_hash").first()
        # The same answer for an unknown run and a wrong token: a token is the only way to learn about a run here.
        if (
            run is None
            or scheme.lower() != "bearer"
            or not services.benchmark_run_token_matches(run=run, token=token.strip())
        ):
            raise exceptions.AuthenticationFailed(
                "A valid run token is required (Authorization: Bearer <token>)."
            )
        posted = services.benchmark_run_post_result(
            run_id=run.pk,
            result=request.data,
            idempotency_key=request.headers.get("Idempotency-Key", "")[:64],
        )
        data = {
            "run": posted.run.pk,
            "run_status": posted.run.status,
            "candidate": posted.candidate,
            "created": posted.created,
            "measurements": [m.pk for m in posted.measurements],
        }
        return Response(
            PostedResultOut(data).data,
            status=status.HTTP_201_CREATED if posted.created else status.HTTP_200_OK,
        )


class MeasurementListApi(APIView):
    pagination_class = Pagination  # read by the schema generator: the list is documented as paginated

    @extend_schema(
        parameters=[MeasurementListQuery],
        responses=MeasurementOut(many=True),
        description="Measured operating points with provenance (per-request samples: see the detail endpoint).",
    )
    def get(self, request: Request) -> Response:
        query = parse_query(MeasurementListQuery, request)
        measurements = selectors.measurement_list(
            user=request.user,
            workload_id=query.get("workload"),
            run_id=query.get("run"),
            engine=query.get("engine", ""),
            quant=query.get("quant", ""),
            accelerator=query.get("accelerator", ""),
            model=query.get("model", ""),
            representative=query.get("representative"),
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(measurements, request, view=self)
        return paginator.get_paginated_response(MeasurementOut(page, many=True).data)


class MeasurementDetailApi(APIView):
    @extend_schema(
        responses=MeasurementDetailOut, description="One measurement with its per-request samples."
    )
    def get(self, request: Request, measurement_id: int) -> Response:
        measurement = get_object_or_404(
            selectors.measurements_visible_to(user=request.user), pk=measurement_id
        )
        return Response(MeasurementDetailOut(measurement).data)


class WorkerListApi(APIView):
    pagination_class = Pagination  # read by the schema generator: the list is documented as paginated

    @extend_schema(
        responses=WorkerHostOut(many=True),
        description="Registered benchmark worker hosts, live or not (live: a heartbeat within BENCHMARK_WORKER_LIVE_S).",
    )
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.worker_host_list(), request, view=self)
        return paginator.get_paginated_response(WorkerHostOut(page, many=True).data)
