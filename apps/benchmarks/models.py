"""Benchmark orchestration: worker hosts, runs, their candidates, and the measurements they produce.

The `BenchmarkRun` row is the truth about a run (status, heartbeat, error), never the Celery result backend.
A `Measurement` carries its full provenance, so a number shown anywhere can say where, when and on what it was
measured, and whether it is representative of the full model (a shrunk CPU smoke run is not).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Team
from apps.benchmarks.provenance import provenance_line
from apps.workloads.models import Workload


class WorkerHost(models.Model):
    """A Celery worker consuming one `bench.<accelerator>` queue, as it registered itself."""

    name = models.CharField(max_length=200, unique=True, help_text="Celery node name, e.g. bench-h100@host1")
    accelerator = models.SlugField(max_length=40, help_text="Catalog slug: cpu, h100-sxm, …")
    queue = models.CharField(max_length=60)
    hostname = models.CharField(max_length=200, blank=True)
    accelerator_model = models.CharField(max_length=200, blank=True, help_text="As the probe named it")
    accelerator_count = models.PositiveIntegerField(default=0)
    accelerator_memory_mib = models.PositiveIntegerField(default=0, help_text="Per device; 0 on CPU")
    memory_mib = models.PositiveIntegerField(default=0, help_text="Host memory")
    driver_version = models.CharField(max_length=60, blank=True)
    cuda_version = models.CharField(max_length=30, blank=True)
    engines = models.JSONField(default=dict, help_text='{"vllm": {"version": "0.11.0", "launchers": [...]}}')
    probe = models.JSONField(default=dict, help_text="workers.probe.probe_host() as registered")
    registered_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["accelerator", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.accelerator})"

    def is_live(self, *, now: datetime | None = None) -> bool:
        if self.last_heartbeat is None:
            return False
        window = timedelta(seconds=settings.BENCHMARK_WORKER_LIVE_S)
        return self.last_heartbeat >= (now or timezone.now()) - window

    @property
    def device_count(self) -> int:
        """GPUs a candidate may use for tensor parallelism; a CPU host runs one replica (tp 1)."""
        return 1 if self.accelerator == "cpu" else self.accelerator_count


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class Executor(models.TextChoices):
    CELERY = "celery", "Celery worker on the bench.<accelerator> queue"
    REMOTE = "remote", "Remote host posting result.json with the run token"


class BenchmarkRunQuerySet(models.QuerySet["BenchmarkRun"]):
    def active(self) -> BenchmarkRunQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)


class BenchmarkRun(models.Model):
    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="benchmark_runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accelerator = models.SlugField(max_length=40)
    queue = models.CharField(max_length=60, help_text="bench.<accelerator>; empty for remote runs")
    executor = models.CharField(max_length=10, choices=Executor.choices, default=Executor.CELERY)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    # What every candidate is measured with: lengths, load levels, requests per level, SLO, shrink.
    load = models.JSONField(default=dict)
    # Candidates nobody attached can run, as they were at request time: the performance model covers them.
    left_to_model = models.JSONField(default=list, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Incremented by every claim; writes of an execution are conditioned on its attempt, so a worker whose run
    # was requeued by the stale-heartbeat job cannot overwrite the attempt that replaced it.
    attempts = models.PositiveSmallIntegerField(default=0)
    worker_name = models.CharField(max_length=200, blank=True)
    token_hash = models.CharField(max_length=64, help_text="sha256 of the per-run results token")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = BenchmarkRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["workload", "accelerator"],
                condition=models.Q(status__in=ACTIVE_STATUSES),
                name="one_active_run_per_workload_accelerator",
            )
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="benchmark_run_status_hb")]

    def __str__(self) -> str:
        return f"benchmark run #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("benchmarks:run-detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def source_label(self) -> str:
        return f"benchmark run #{self.pk}"


class CandidateStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class BenchmarkCandidate(models.Model):
    """One engine x quantization x accelerator x TP combination of a run, measured at every load level."""

    run = models.ForeignKey(BenchmarkRun, on_delete=models.CASCADE, related_name="candidates")
    position = models.PositiveSmallIntegerField()
    engine = models.CharField(max_length=20)
    quant = models.CharField(max_length=20)
    accelerator = models.SlugField(max_length=40)
    tp = models.PositiveSmallIntegerField(default=1)
    # Blank: random weights built from the workload model's catalog architecture. Set only by staff in the
    # admin, to a directory that exists on the worker host (real weights); never taken from the API.
    model_path = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=CandidateStatus.choices, default=CandidateStatus.PENDING)
    phase = models.CharField(max_length=30, blank=True, help_text="The runner's last phase")
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True, help_text="The engine's last log lines when it failed")
    result_meta = models.JSONField(default=dict, blank=True, help_text="result.json without levels")
    result_sha256 = models.CharField(max_length=64, blank=True, help_text="Idempotency key of posted results")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="one_candidate_per_position"),
            models.UniqueConstraint(
                fields=["run", "engine", "quant", "accelerator", "tp"], name="one_candidate_per_combination"
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.engine} {self.quant} on {self.tp}x {self.accelerator}"

    @property
    def is_finished(self) -> bool:
        return self.status not in (CandidateStatus.PENDING, CandidateStatus.RUNNING)


class SourceKind(models.TextChoices):
    RUN = "run", "Benchmark run on an attached worker"
    REMOTE = "remote", "Benchmark run, posted by a remote host"
    IMPORT = "import", "Imported result.json"


class Measurement(models.Model):
    """One load level of one candidate, with everything needed to say where it came from."""

    run = models.ForeignKey(
        BenchmarkRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="measurements"
    )
    candidate = models.ForeignKey(
        BenchmarkCandidate, null=True, blank=True, on_delete=models.SET_NULL, related_name="measurements"
    )
    # Who may see it: the run's team, or the team of the workload an import was attached to. None: an
    # operator's import without a workload, shared by every team (like the shipped published benchmarks).
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    workload = models.ForeignKey(
        Workload, null=True, blank=True, on_delete=models.SET_NULL, related_name="measurements"
    )
    source_kind = models.CharField(max_length=10, choices=SourceKind.choices)
    source = models.CharField(max_length=300, help_text='"benchmark run #12" or "imported file result.json"')
    level_index = models.PositiveSmallIntegerField(default=0)

    # Where and on what.
    host = models.ForeignKey(
        WorkerHost, null=True, blank=True, on_delete=models.SET_NULL, related_name="measurements"
    )
    host_name = models.CharField(max_length=200, blank=True)
    accelerator = models.SlugField(max_length=40, help_text="Catalog slug")
    accelerator_model = models.CharField(max_length=200, blank=True)
    accelerator_count = models.PositiveIntegerField(default=0)
    driver_version = models.CharField(max_length=60, blank=True)
    cuda_version = models.CharField(max_length=30, blank=True)
    hardware = models.JSONField(default=dict, blank=True)

    # Which engine, how launched.
    engine = models.CharField(max_length=20)
    engine_version = models.CharField(max_length=100, blank=True)
    engine_args = models.JSONField(default=list, blank=True)

    # Which model: a catalog slug, and whether the weights stand for it.
    model_slug = models.CharField(max_length=200)
    weights = models.CharField(
        max_length=300, help_text='"real weights" or "random weights, shrunk to 2 layers"'
    )
    shrunk = models.BooleanField(default=False)
    model_info = models.JSONField(default=dict, blank=True)
    quant = models.CharField(max_length=20)
    tp = models.PositiveSmallIntegerField(default=1)

    # The load.
    isl = models.PositiveIntegerField(help_text="Prompt tokens: the fixed length, or the distribution's mean")
    osl = models.PositiveIntegerField(help_text="Output tokens: the fixed length, or the distribution's mean")
    isl_distribution = models.JSONField(null=True, blank=True)
    osl_distribution = models.JSONField(null=True, blank=True)
    concurrency = models.PositiveIntegerField(null=True, blank=True)
    rate_per_s = models.FloatField(null=True, blank=True)
    requests_ok = models.PositiveIntegerField()
    requests_failed = models.PositiveIntegerField()
    mean_prompt_tokens = models.FloatField(null=True, blank=True)
    mean_output_tokens = models.FloatField(null=True, blank=True)

    # What came out, in milliseconds; None when no request succeeded.
    ttft_p50_ms = models.FloatField(null=True, blank=True)
    ttft_p90_ms = models.FloatField(null=True, blank=True)
    ttft_p95_ms = models.FloatField(null=True, blank=True)
    ttft_p99_ms = models.FloatField(null=True, blank=True)
    itl_p50_ms = models.FloatField(null=True, blank=True)
    itl_p90_ms = models.FloatField(null=True, blank=True)
    itl_p95_ms = models.FloatField(null=True, blank=True)
    itl_p99_ms = models.FloatField(null=True, blank=True)
    tpot_p50_ms = models.FloatField(null=True, blank=True)
    tpot_p90_ms = models.FloatField(null=True, blank=True)
    tpot_p95_ms = models.FloatField(null=True, blank=True)
    tpot_p99_ms = models.FloatField(null=True, blank=True)
    e2e_p50_ms = models.FloatField(null=True, blank=True)
    e2e_p90_ms = models.FloatField(null=True, blank=True)
    e2e_p95_ms = models.FloatField(null=True, blank=True)
    e2e_p99_ms = models.FloatField(null=True, blank=True)
    output_tokens_per_s = models.FloatField()
    requests_per_s = models.FloatField()
    goodput_requests_per_s = models.FloatField()
    slo = models.JSONField(default=dict, blank=True)

    # The level as the load generator reported it (client health, error classes, token source) and the raw
    # per-request samples, so any figure can be recomputed.
    level_summary = models.JSONField(default=dict, blank=True)
    samples = models.JSONField(default=list, blank=True)
    result_sha256 = models.CharField(
        max_length=64, blank=True, help_text="Of the imported or posted result.json"
    )
    measured_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-measured_at", "candidate_id", "level_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["candidate", "level_index"],
                condition=models.Q(candidate__isnull=False),
                name="one_measurement_per_candidate_level",
            )
        ]
        indexes = [
            models.Index(fields=["model_slug", "accelerator", "engine", "quant"], name="measurement_key")
        ]

    def __str__(self) -> str:
        return f"{self.engine} {self.quant} {self.load_label} on {self.accelerator} ({self.source})"

    @property
    def load_label(self) -> str:
        if self.concurrency is not None:
            return f"concurrency {self.concurrency}"
        return f"{self.rate_per_s:g} req/s"

    @property
    def provenance(self) -> str:
        return provenance_line(
            accelerator=self.accelerator,
            accelerator_model=self.accelerator_model,
            host_name=self.host_name,
            engine=self.engine,
            engine_version=self.engine_version,
            weights=self.weights,
            measured_at=self.measured_at,
            source=self.source,
        )

    @property
    def representative(self) -> bool:
        """A shrunk model's speed says nothing about the full model: such rows never feed the planner."""
        return not self.shrunk
