from __future__ import annotations

from django.contrib import admin

from apps.benchmarks.models import BenchmarkCandidate, BenchmarkRun, Measurement, WorkerHost


@admin.register(WorkerHost)
class WorkerHostAdmin(admin.ModelAdmin[WorkerHost]):
    list_display = ["name", "accelerator", "accelerator_model", "accelerator_count", "last_heartbeat"]
    list_filter = ["accelerator"]
    search_fields = ["name", "hostname", "accelerator_model"]


class CandidateInline(admin.TabularInline[BenchmarkCandidate, BenchmarkRun]):
    model = BenchmarkCandidate
    extra = 0
    fields = ["position", "engine", "quant", "accelerator", "tp", "model_path", "status", "error"]
    readonly_fields = ["status", "error"]


@admin.register(BenchmarkRun)
class BenchmarkRunAdmin(admin.ModelAdmin[BenchmarkRun]):
    list_display = ["pk", "workload", "accelerator", "status", "attempts", "worker_name", "created_at"]
    list_filter = ["status", "accelerator", "executor"]
    search_fields = ["workload__name", "worker_name"]
    raw_id_fields = ["workload", "requested_by"]
    exclude = ["token_hash"]
    inlines = [CandidateInline]


@admin.register(Measurement)
class MeasurementAdmin(admin.ModelAdmin[Measurement]):
    list_display = [
        "pk",
        "model_slug",
        "engine",
        "quant",
        "accelerator",
        "concurrency",
        "rate_per_s",
        "shrunk",
        "source",
    ]
    list_filter = ["accelerator", "engine", "quant", "shrunk", "source_kind"]
    search_fields = ["model_slug", "source", "host_name"]
    raw_id_fields = ["run", "candidate", "workload", "host", "team"]
