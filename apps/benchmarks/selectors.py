"""Reads for benchmarks. Every run and measurement a user sees is scoped through their teams' workloads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.selectors import AnyUser, teams_of
from apps.benchmarks.candidates import (
    Candidate,
    HostCapability,
    Verdict,
    candidate_space,
    unsupported_reason,
    verdict,
)
from apps.benchmarks.models import (
    BenchmarkCandidate,
    BenchmarkRun,
    Measurement,
    WorkerHost,
)
from apps.catalog import specs
from apps.catalog.models import ModelArchitecture
from apps.catalog.selectors import catalog_snapshot
from apps.planner.perf.corpus import MeasuredPoint
from apps.workloads.models import Workload
from apps.workloads.selectors import workloads_visible_to

# ---------------------------------------------------------------------------------------------- runs


def runs_visible_to(*, user: AnyUser) -> QuerySet[BenchmarkRun]:
    return BenchmarkRun.objects.filter(workload__in=workloads_visible_to(user=user)).select_related(
        "workload", "workload__team", "workload__model", "requested_by"
    )


def run_list(
    *, user: AnyUser, workload_id: int | None = None, status: str = "", accelerator: str = ""
) -> QuerySet[BenchmarkRun]:
    runs = runs_visible_to(user=user).prefetch_related(
        Prefetch("candidates", queryset=BenchmarkCandidate.objects.order_by("position"))
    )
    if workload_id is not None:
        runs = runs.filter(workload_id=workload_id)
    if status:
        runs = runs.filter(status=status)
    if accelerator:
        runs = runs.filter(accelerator=accelerator)
    return runs


def run_detail_queryset(*, user: AnyUser) -> QuerySet[BenchmarkRun]:
    """Runs with their candidates and measurements (samples left in the database: they can be megabytes)."""
    return runs_visible_to(user=user).prefetch_related(
        Prefetch("candidates", queryset=BenchmarkCandidate.objects.order_by("position")),
        Prefetch(
            "measurements",
            queryset=Measurement.objects.defer("samples").order_by("candidate__position", "level_index"),
        ),
    )


@dataclass(frozen=True)
class CandidateRow:
    """A candidate with its measured levels, for the run page."""

    candidate: BenchmarkCandidate
    measurements: list[Measurement]


def run_candidate_rows(run: BenchmarkRun) -> list[CandidateRow]:
    by_candidate: dict[int | None, list[Measurement]] = {}
    for measurement in run.measurements.all():
        by_candidate.setdefault(measurement.candidate_id, []).append(measurement)
    return [CandidateRow(c, by_candidate.get(c.pk, [])) for c in run.candidates.all()]


def workload_recent_runs(*, workload: Workload, limit: int = 5) -> list[BenchmarkRun]:
    """For the workload page, whose view already checked the user may see this workload."""
    return list(
        BenchmarkRun.objects.filter(workload=workload)
        .prefetch_related(Prefetch("candidates", queryset=BenchmarkCandidate.objects.order_by("position")))
        .order_by("-created_at")[:limit]
    )


# ---------------------------------------------------------------------------------------------- measurements


def measurements_visible_to(*, user: AnyUser) -> QuerySet[Measurement]:
    """A team's own measurements, plus operator imports attached to no team (shared reference data)."""
    if not user.is_authenticated:
        return Measurement.objects.none()
    return Measurement.objects.filter(Q(team__in=teams_of(user=user)) | Q(team__isnull=True)).select_related(
        "run", "host"
    )


def measurement_list(
    *,
    user: AnyUser,
    workload_id: int | None = None,
    run_id: int | None = None,
    engine: str = "",
    quant: str = "",
    accelerator: str = "",
    model: str = "",
    representative: bool | None = None,
) -> QuerySet[Measurement]:
    qs = measurements_visible_to(user=user).defer("samples")
    if workload_id is not None:
        qs = qs.filter(workload_id=workload_id)
    if run_id is not None:
        qs = qs.filter(run_id=run_id)
    if engine:
        qs = qs.filter(engine=engine)
    if quant:
        qs = qs.filter(quant=quant)
    if accelerator:
        qs = qs.filter(accelerator=accelerator)
    if model:
        qs = qs.filter(model_slug=model)
    if representative is not None:
        qs = qs.filter(shrunk=not representative)
    return qs


# Levels where more than this share of requests failed describe an overloaded or broken engine, not its speed.
MAX_FAILED_SHARE = 0.1


def measured_points(*, team: Team | None = None) -> list[MeasuredPoint]:
    """Measurements the performance model may calibrate on and quote as "measured": the team's own and the
    shared ones (imports attached to no team). Without a team, only the shared ones: one team's runs never
    shape, or show up in, another team's plans.

    Left out: shrunk models (a smoke test, not the model's speed), open-loop rate levels (MeasuredPoint
    describes closed-loop concurrency or offline throughput), levels where nothing or too much failed, and
    models not in the catalog (the planner can only place catalog models).
    """
    catalog_models = set(ModelArchitecture.objects.values_list("slug", flat=True))
    visible = Q(team__isnull=True) | Q(team=team) if team is not None else Q(team__isnull=True)
    rows = Measurement.objects.filter(
        visible, shrunk=False, concurrency__isnull=False, requests_ok__gt=0, model_slug__in=catalog_models
    ).only(
        "pk",
        "model_slug",
        "accelerator",
        "engine",
        "quant",
        "tp",
        "isl",
        "osl",
        "mean_prompt_tokens",
        "mean_output_tokens",
        "concurrency",
        "output_tokens_per_s",
        "ttft_p50_ms",
        "tpot_p50_ms",
        "requests_ok",
        "requests_failed",
        "source",
        "host_name",
        "measured_at",
    )
    points = []
    for row in rows.order_by("pk"):
        total = row.requests_ok + row.requests_failed
        if row.requests_failed > MAX_FAILED_SHARE * total:
            continue
        # Measured means over the requests actually served; they equal isl/osl for fixed lengths.
        isl = round(row.mean_prompt_tokens) if row.mean_prompt_tokens else row.isl
        osl = round(row.mean_output_tokens) if row.mean_output_tokens else row.osl
        where = f" on {row.host_name}" if row.host_name else ""
        points.append(
            MeasuredPoint(
                model_slug=row.model_slug,
                gpu_slug=row.accelerator,
                engine=row.engine,
                quant=row.quant,
                tp=row.tp,
                isl=max(1, isl),
                osl=max(1, osl),
                concurrency=row.concurrency,
                output_tokens_per_s=row.output_tokens_per_s,
                ttft_p50_ms=row.ttft_p50_ms,
                tpot_ms=row.tpot_p50_ms,
                source=f"{row.source}{where}, {row.measured_at:%Y-%m-%d}",
                gpu_count=row.tp,
                point_id=f"measurement-{row.pk}",
            )
        )
    return points


# ---------------------------------------------------------------------------------------------- workers


def worker_host_list() -> QuerySet[WorkerHost]:
    return WorkerHost.objects.all()


def live_cutoff(*, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=settings.BENCHMARK_WORKER_LIVE_S)


def live_worker_hosts(*, now: datetime | None = None) -> QuerySet[WorkerHost]:
    return WorkerHost.objects.filter(last_heartbeat__gte=live_cutoff(now=now))


def live_host_capabilities(*, now: datetime | None = None) -> list[HostCapability]:
    return [
        HostCapability(
            name=host.name,
            accelerator=host.accelerator,
            device_count=host.device_count,
            engines=frozenset(host.engines),
        )
        for host in live_worker_hosts(now=now)
    ]


# ---------------------------------------------------------------------------------------------- candidates


def benchmark_catalog() -> specs.CatalogSnapshot:
    """GPUs, models and quantizations from the database (no offers or prices: candidates do not need them)."""
    return catalog_snapshot(with_prices=False)


def context_tokens(*, workload: Workload, isl: int | None = None, osl: int | None = None) -> int:
    """The longest sequence the engine must hold: what the runner sizes max_model_len for."""
    prompt = isl if isl is not None else int(workload.prompt_tokens["max"])
    output = osl if osl is not None else int(workload.output_tokens["max"])
    return prompt + output


@dataclass(frozen=True)
class CandidateOptions:
    runnable: list[Verdict]
    left_to_model: list[Verdict]


def candidate_options(
    *, workload: Workload, shrink: bool = False, isl: int | None = None, osl: int | None = None
) -> CandidateOptions:
    """Every combination the workload allows, split into what a live worker can measure and what only the
    model can predict. The workload's constraints narrow GPUs and engines when it names them; the cpu
    accelerator always stays, since a CPU smoke run checks the whole path for any workload."""
    catalog = benchmark_catalog()
    model = catalog.model(workload.model.slug)
    wanted_gpus = set(workload.constraints.get("gpus") or [])
    gpus = [g for g in catalog.gpus if not wanted_gpus or g.slug in wanted_gpus or g.is_cpu]
    allowed = set(workload.allowed_quantizations)
    quants = [q for q in catalog.quantizations if q.slug in allowed]
    engines = list(workload.constraints.get("engines") or []) or None
    space = candidate_space(
        model=model,
        gpus=gpus,
        quants=quants,
        **({"engines": engines} if engines else {}),
        context_tokens=context_tokens(workload=workload, isl=isl, osl=osl),
        max_tp=int(workload.constraints.get("max_gpus_per_replica") or 8),
        shrink_on_cpu=shrink,
    )
    hosts = live_host_capabilities()
    verdicts = [verdict(candidate, hosts=hosts) for candidate in space]
    return CandidateOptions(
        runnable=[v for v in verdicts if v.runnable], left_to_model=[v for v in verdicts if not v.runnable]
    )


def explicit_candidate_verdict(
    *, workload: Workload, candidate: Candidate, shrink: bool, isl: int | None = None, osl: int | None = None
) -> tuple[str, Verdict | None]:
    """(why it cannot run at all, verdict): a named candidate checked against the planner's rules, then hosts."""
    catalog = benchmark_catalog()
    try:
        gpu = catalog.gpu(candidate.accelerator)
        quant = catalog.quantization(candidate.quant)
    except KeyError as exc:
        return str(exc.args[0]), None
    reason = unsupported_reason(
        model=catalog.model(workload.model.slug),
        gpu=gpu,
        quant=quant,
        engine=candidate.engine,
        tp=candidate.tp,
        context_tokens=context_tokens(workload=workload, isl=isl, osl=osl),
        shrink=shrink and gpu.is_cpu,
    )
    if reason:
        return reason, None
    return "", verdict(candidate, hosts=live_host_capabilities())


@dataclass(frozen=True)
class MeasuredAgainstPredicted:
    measurement: Measurement
    predicted_output_tokens_per_s: float | None
    predicted_ttft_ms: float | None
    predicted_tpot_ms: float | None
    throughput_error: float | None  # (predicted - measured) / measured
    band: str  # the cross-validated error the prediction carries, in words
    note: str  # why there is no prediction, when there is none


def measured_against_predicted(*, workload: Workload, limit: int = 50) -> list[MeasuredAgainstPredicted]:
    """The workload's own measurements beside what the model fitted on published data alone predicts for the
    same configuration: the check a team can read before trusting predictions for hardware it has not got."""
    from apps.planner.perf.calibration import calibrate
    from apps.planner.perf.deployment import Deployment, UnsupportedCombination
    from apps.planner.perf.predict import predict
    from apps.planner.perf.step import levels_of

    measurements = list(
        Measurement.objects.filter(workload=workload, concurrency__isnull=False).order_by("-measured_at")[
            :limit
        ]
    )
    if not measurements:
        return []
    catalog = catalog_snapshot()
    calibration = calibrate(catalog)  # published only: the comparison must not include the measurement itself
    out = []
    for m in measurements:
        if m.shrunk:
            out.append(
                MeasuredAgainstPredicted(m, None, None, None, None, "", "shrunk model: not comparable")
            )
            continue
        try:
            dep = Deployment(
                catalog.model(m.model_slug), catalog.gpu(m.accelerator), catalog.quantization(m.quant), m.engine,
                tp=m.tp,
            )  # fmt: skip
            levels = levels_of(dep)
            prediction = predict(
                dep,
                calibration.efficiency(levels),
                {},
                isl=max(1, round(m.mean_prompt_tokens or m.isl)),
                osl=max(1, round(m.mean_output_tokens or m.osl)),
                concurrency=m.concurrency,
            )
        except (KeyError, UnsupportedCombination) as exc:
            out.append(MeasuredAgainstPredicted(m, None, None, None, None, "", f"no prediction: {exc}"))
            continue
        band = calibration.band(levels)
        error = (prediction.output_tokens_per_s - m.output_tokens_per_s) / m.output_tokens_per_s
        out.append(
            MeasuredAgainstPredicted(
                measurement=m,
                predicted_output_tokens_per_s=prediction.output_tokens_per_s,
                predicted_ttft_ms=prediction.ttft_ms,
                predicted_tpot_ms=prediction.tpot_ms,
                throughput_error=error if m.output_tokens_per_s else None,
                band=f"±{band.median_ape:.0%} typical ({band.rows} published rows of {band.group})",
                note="",
            )
        )
    return out
