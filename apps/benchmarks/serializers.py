"""API shapes for benchmarks. Input serializers validate types and ranges; the services decide the rules."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.benchmarks.models import BenchmarkCandidate, BenchmarkRun, Executor, Measurement, WorkerHost
from apps.benchmarks.services import MAX_LEVELS, MAX_REQUESTS_PER_LEVEL, CandidateRequest, LoadSettings
from apps.workloads.serializers import (
    StrictBooleanField,
    StrictIntegerField,
    StrictNumberField,
    StrictSerializer,
    StrictStringField,
)
from workers.engines import ENGINE_NAMES

# ---------------------------------------------------------------------------------------------- input


class CandidateIn(StrictSerializer):
    engine = serializers.ChoiceField(choices=ENGINE_NAMES)
    quant = StrictStringField(max_length=20)
    accelerator = StrictStringField(
        max_length=40, required=False, help_text="Catalog slug; default: the body's"
    )
    tp = StrictIntegerField(min_value=1, max_value=8, required=False, help_text="Default: smallest that fits")


class RunRequestIn(StrictSerializer):
    candidates = CandidateIn(many=True, required=False, help_text="Candidates to measure; or all_runnable")
    all_runnable = StrictBooleanField(default=False, help_text="Every candidate a live worker can run")
    accelerator = StrictStringField(max_length=40, required=False, help_text="Only this accelerator (slug)")
    concurrency = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=4096), max_length=MAX_LEVELS, required=False
    )
    rates = serializers.ListField(
        child=StrictNumberField(min_value=0.001, max_value=100_000), max_length=MAX_LEVELS, required=False
    )
    requests = StrictIntegerField(min_value=1, max_value=MAX_REQUESTS_PER_LEVEL, default=32)
    isl = StrictIntegerField(
        min_value=1, max_value=1_000_000, required=False, help_text="Default: workload's"
    )
    osl = StrictIntegerField(
        min_value=1, max_value=1_000_000, required=False, help_text="Default: workload's"
    )
    shrink = StrictBooleanField(default=False, help_text="CPU only: tiny layers, a smoke test of the path")
    warmup_requests = StrictIntegerField(min_value=0, max_value=100, default=2)
    executor = serializers.ChoiceField(choices=Executor.choices, default=Executor.CELERY)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("candidates")) == bool(attrs.get("all_runnable")):
            raise serializers.ValidationError(
                {"candidates": ["List candidates, or set all_runnable to true (one of the two)."]}
            )
        if not attrs.get("concurrency") and not attrs.get("rates"):
            attrs["concurrency"] = [1, 4, 16]
        return attrs

    def to_service_kwargs(self) -> dict[str, Any]:
        data = self.validated_data
        candidates = None
        if data.get("candidates"):
            candidates = [
                CandidateRequest(
                    engine=c["engine"], quant=c["quant"], accelerator=c.get("accelerator"), tp=c.get("tp")
                )
                for c in data["candidates"]
            ]
        return {
            "candidates": candidates,
            "accelerator": data.get("accelerator"),
            "executor": data["executor"],
            "load": LoadSettings(
                concurrency=tuple(data.get("concurrency") or ()),
                rates=tuple(data.get("rates") or ()),
                requests=data["requests"],
                isl=data.get("isl"),
                osl=data.get("osl"),
                shrink=data["shrink"],
                warmup_requests=data["warmup_requests"],
            ),
        }


# ---------------------------------------------------------------------------------------------- output


class CandidateVerdictOut(serializers.Serializer[Any]):
    engine = serializers.CharField()
    quant = serializers.CharField()
    accelerator = serializers.CharField()
    tp = serializers.IntegerField()
    reason = serializers.CharField(required=False, help_text="Why no live worker can run it")
    hosts = serializers.ListField(child=serializers.CharField(), required=False)


class CandidateOptionsOut(serializers.Serializer[Any]):
    runnable = CandidateVerdictOut(many=True)
    left_to_model = CandidateVerdictOut(many=True)


class CandidateOut(serializers.ModelSerializer[BenchmarkCandidate]):
    name = serializers.CharField(source="label", read_only=True, help_text="engine quant on TPx accelerator")

    class Meta:
        model = BenchmarkCandidate
        fields = [
            "id", "position", "name", "engine", "quant", "accelerator", "tp", "status", "phase", "error",
            "log_tail", "started_at", "finished_at",
        ]  # fmt: skip


class MeasurementOut(serializers.ModelSerializer[Measurement]):
    representative = serializers.BooleanField(read_only=True, help_text="False for shrunk smoke-test models")
    provenance = serializers.CharField(read_only=True, help_text="Where, when and on what it was measured")
    kind = serializers.SerializerMethodField(help_text='Always "measured": these are not predictions')

    class Meta:
        model = Measurement
        exclude = ["samples", "team", "result_sha256"]

    def get_kind(self, _obj: Measurement) -> str:
        return "measured"


class MeasurementDetailOut(MeasurementOut):
    class Meta(MeasurementOut.Meta):
        exclude = ["team", "result_sha256"]


class RunOut(serializers.ModelSerializer[BenchmarkRun]):
    url = serializers.SerializerMethodField()
    workload_name = serializers.CharField(source="workload.name", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, default=None)
    candidates = CandidateOut(many=True, read_only=True)

    class Meta:
        model = BenchmarkRun
        fields = [
            "id", "url", "workload", "workload_name", "requested_by", "accelerator", "queue", "executor",
            "status", "load", "candidates", "left_to_model", "progress", "cancel_requested", "attempts",
            "worker_name", "error", "created_at", "started_at", "heartbeat_at", "finished_at",
        ]  # fmt: skip

    def get_url(self, run: BenchmarkRun) -> str:
        return reverse("benchmarks-api:run-detail", args=[run.pk])


class RunDetailOut(RunOut):
    measurements = MeasurementOut(many=True, read_only=True)

    class Meta(RunOut.Meta):
        fields = [*RunOut.Meta.fields, "measurements"]


class RequestedRunOut(RunOut):
    created = serializers.SerializerMethodField(
        help_text="False: an active run already existed; it is returned"
    )
    results_token = serializers.SerializerMethodField(
        help_text="Shown once, for a run created now: remote hosts post results with it (Bearer)"
    )
    results_url = serializers.SerializerMethodField()

    class Meta(RunOut.Meta):
        fields = [*RunOut.Meta.fields, "created", "results_token", "results_url"]

    def get_created(self, run: BenchmarkRun) -> bool:
        return bool(self.context.get("created", {}).get(run.pk))

    @extend_schema_field(OpenApiTypes.STR)
    def get_results_token(self, run: BenchmarkRun) -> str | None:
        token: str | None = self.context.get("tokens", {}).get(run.pk)
        return token

    def get_results_url(self, run: BenchmarkRun) -> str:
        return reverse("benchmarks-api:run-results", args=[run.pk])


class RunRequestOut(serializers.Serializer[Any]):
    runs = RequestedRunOut(many=True)
    left_to_model = CandidateVerdictOut(many=True)


class WorkerHostOut(serializers.ModelSerializer[WorkerHost]):
    live = serializers.SerializerMethodField()

    class Meta:
        model = WorkerHost
        fields = [
            "id", "name", "live", "accelerator", "queue", "hostname", "accelerator_model", "accelerator_count",
            "accelerator_memory_mib", "memory_mib", "driver_version", "cuda_version", "engines", "probe",
            "registered_at", "last_heartbeat",
        ]  # fmt: skip

    def get_live(self, host: WorkerHost) -> bool:
        return host.is_live()


class PostedResultOut(serializers.Serializer[Any]):
    run = serializers.IntegerField()
    run_status = serializers.CharField()
    candidate = CandidateOut()
    created = serializers.BooleanField(help_text="False: this exact result was already recorded")
    measurements = serializers.ListField(child=serializers.IntegerField())
