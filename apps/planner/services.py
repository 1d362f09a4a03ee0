from __future__ import annotations

import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from advisor.jsonsafe import JsonProblem, json_problem
from apps.accounts.models import Team
from apps.accounts.selectors import AnyUser
from apps.catalog.selectors import catalog_snapshot
from apps.catalog.specs import CatalogSnapshot
from apps.planner import background
from apps.planner.models import PlanStatus, Recommendation
from apps.planner.perf.calibration import Calibration, calibrate
from apps.planner.perf.corpus import MeasuredPoint
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.suggest import suggestions, why
from apps.planner.pipeline.workload import (
    WorkloadError,
    WorkloadSpec,
    document_with,
    workload_spec_from_dict,
)
from apps.planner.tasks import PLAN_SOFT_TIME_LIMIT_S, PLAN_TIME_LIMIT_S, recommendation_compute_task
from apps.workloads.models import Workload
from apps.workloads.services import ensure_can_write, workload_create

logger = logging.getLogger(__name__)

# What the plan list shows of the best option, kept in its own column so lists never read whole plans.
BEST_OPTION_KEYS = (
    "rank", "model", "engine", "quant", "gpu", "tp", "gpus_per_replica", "provider", "instance_type",
    "monthly_cost_usd", "source", "error_band_rel", "error_band", "calibration_key", "calibration_basis",
)  # fmt: skip
# A running plan is given up this long after the task's hard limit: by then its worker process was killed.
RUNNING_GRACE_S = 60


def recommendation_send(recommendation_id: int) -> None:
    """Hand a queued plan to whatever runs plans here (PLAN_EXECUTOR): the Celery queue, or this process's
    background thread. Either way the request that asked returns at once."""
    if settings.PLAN_EXECUTOR == "thread":
        background.submit(recommendation_id)
        background.sweep_if_due()
    else:
        recommendation_compute_task.delay(recommendation_id)


def recommendation_request(*, workload: Workload, user: AnyUser) -> Recommendation:
    """Queue a plan of the workload as it is now; it runs in the background (see recommendation_send)."""
    ensure_can_write(user=user, team=workload.team)
    recommendation = Recommendation.objects.create(
        workload=workload,
        requested_by=user if user.is_authenticated else None,
        inputs=workload.to_document(),
    )
    transaction.on_commit(partial(recommendation_send, recommendation.pk))
    return recommendation


def recommendation_watch(*, recommendation: Recommendation) -> None:
    """A page is waiting on an unfinished plan: where plans run in this process, make sure none is left
    behind by a restart (the sweep beat runs elsewhere)."""
    if settings.PLAN_EXECUTOR == "thread" and not recommendation.is_finished:
        background.sweep_if_due()


def measured_points_for(team: Team) -> list[MeasuredPoint]:
    from apps.benchmarks.selectors import measured_points  # benchmarks imports the planner's dataclasses

    return measured_points(team=team)


def best_option_summary(result: dict[str, Any] | None) -> dict[str, Any] | None:
    options = (result or {}).get("options") or []
    if not options:
        return None
    return {key: options[0].get(key) for key in BEST_OPTION_KEYS}


def recommendation_compute(*, recommendation_id: int) -> None:
    """Plan a queued recommendation. Whatever happens, the row ends succeeded or failed with a reason: the
    planner raising, running out of time, or producing a number JSON cannot hold (NaN, Infinity) all fail it."""
    claimed = Recommendation.objects.filter(pk=recommendation_id, status=PlanStatus.QUEUED).update(
        status=PlanStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:  # redelivered, or another worker took it
        return
    recommendation = Recommendation.objects.select_related("workload__team").get(pk=recommendation_id)

    def progress(stage: str) -> None:
        Recommendation.objects.filter(pk=recommendation_id, status=PlanStatus.RUNNING).update(progress=stage)

    try:
        snapshot = catalog_snapshot()
        measured = measured_points_for(recommendation.workload.team)
        spec = workload_spec_from_dict(recommendation.inputs)
        calibration = calibrate(snapshot, tuple(measured))
        result = plan(spec, snapshot, measured, calibration=calibration, on_stage=progress)
        if not result["options"]:
            progress("suggest")
            result["feasibility"] = _feasibility(spec, snapshot, calibration, result, recommendation_id)
    except WorkloadError as exc:
        _fail(recommendation, f"The workload cannot be planned: {exc}")
        return
    except SoftTimeLimitExceeded:
        _fail(
            recommendation,
            f"Planning took longer than {PLAN_SOFT_TIME_LIMIT_S} s and was stopped. Narrow the search "
            "(constraints.gpus, constraints.engines, quality.allowed_quantizations) and plan again.",
        )
        return
    except Exception as exc:
        # The row is the truth: never leave it "running" behind a crash. The traceback goes to the log.
        logger.exception("planning recommendation %s failed", recommendation_id)
        _fail(
            recommendation,
            f"Planning failed inside the planner ({exc.__class__.__name__}: {exc}). This is a defect, not a "
            f"problem with the workload; report plan #{recommendation_id} to the operators.",
        )
        return
    problem = json_problem(result)
    if problem is not None:
        logger.error("plan #%s produced %s at %s", recommendation_id, problem.message, problem.path)
        _fail(recommendation, _unstorable_reason(result, problem, recommendation_id))
        return
    try:
        with transaction.atomic():
            Recommendation.objects.filter(pk=recommendation_id, status=PlanStatus.RUNNING).update(
                status=PlanStatus.SUCCEEDED,
                catalog_version=snapshot.version,
                measured_points=len(measured),
                result=result,
                best_option=best_option_summary(result),
                error="",
                finished_at=timezone.now(),
            )
    except DatabaseError as exc:  # a value the database refuses that the check above did not foresee
        logger.exception("storing plan #%s failed", recommendation_id)
        _fail(recommendation, f"The plan was computed but could not be stored ({exc.__class__.__name__}).")


def _feasibility(
    spec: WorkloadSpec,
    snapshot: CatalogSnapshot,
    calibration: Calibration,
    result: dict[str, Any],
    recommendation_id: int,
) -> dict[str, Any]:
    """Why nothing holds and what would; a defect here must not cost the team the plan itself."""
    try:
        return suggestions(spec, snapshot, calibration, result)
    except Exception:
        logger.exception("suggestions for plan #%s failed", recommendation_id)
        return {"why": why(result), "suggestions": [], "not_helping": [], "error": "suggestions failed"}


_OPTION_PATH = re.compile(r"^options\[(\d+)\]")
# calibration_key(): engine/gpu-architecture/quantization, e.g. vllm/hopper/bf16
_CALIBRATION_KEY = re.compile(r"calibration\.([\w-]+)/([\w-]+)/([\w-]+)")


def _unstorable_reason(result: dict[str, Any], problem: JsonProblem, recommendation_id: int) -> str:
    """Say where the bad number is and what fed it, so the team knows what to look at."""
    reason = f"The planner produced an invalid value at {problem.path or 'the top level'}: {problem.message}"
    options = result.get("options") or []
    option: dict[str, Any] = {}
    if (match := _OPTION_PATH.match(problem.path)) and int(match.group(1)) < len(options):
        option = options[int(match.group(1))]
        reason += (
            f" It belongs to the option {option.get('engine')} {option.get('quant')} on {option.get('gpu')}."
        )
    if "cost_per_million" in problem.path or problem.path.startswith(("break_even", "api_alternatives")):
        reason += (
            " Per-token figures divide by the workload's monthly tokens: check traffic.hourly_requests_per_s "
            "(each hour 0, or at least 0.0001 requests/s)."
        )
    elif (match := _CALIBRATION_KEY.search(problem.path)) or option:
        engine, _, quant = match.groups() if match else (option.get("engine"), "", option.get("quant"))
        reason += (
            f" It comes from the performance model calibrated for {engine} at {quant}: check this team's "
            f"measurements of that family (GET /api/v1/measurements/?engine={engine}&quant={quant}); a benchmark "
            f"with fewer than 3 load levels may leave the model without a usable fit."
        )
    return f"{reason} Nothing was stored; report plan #{recommendation_id} to the operators."


def _fail(recommendation: Recommendation, error: str) -> None:
    Recommendation.objects.filter(pk=recommendation.pk, status=PlanStatus.RUNNING).update(
        status=PlanStatus.FAILED, error=error[:4000], finished_at=timezone.now()
    )


class SuggestionGone(LookupError):
    """The plan has no suggestion at that position (it was planned again, or never had one)."""


def _copy_name(workload: Workload, suffix: str) -> str:
    """`<name>-<suffix>`, within the name rules (100 characters) and unique in the team."""
    base = re.sub(r"[^A-Za-z0-9 ._-]+", "-", f"{workload.name}-{suffix}")[:90].strip(" -")
    taken = set(
        Workload.objects.filter(team=workload.team, name__startswith=base).values_list("name", flat=True)
    )
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _suffix(suggestion: dict[str, Any]) -> str:
    parts = []
    for change in suggestion["changes"]:
        leaf, value = change["path"].rsplit(".", 1)[-1], change["to"]
        if isinstance(value, list):
            added = [v for v in value if v not in (change["from"] or [])]
            parts.append("with-" + "-".join(map(str, added)))
        elif isinstance(value, bool):
            parts.append(f"{leaf}-{'on' if value else 'off'}")
        else:
            parts.append(
                f"{leaf.removesuffix('_p95_ms')}-{value:g}" if isinstance(value, float) else f"{leaf}-{value}"
            )
    return "-".join(parts) or suggestion["kind"]


def recommendation_plan_suggestion(
    *, recommendation: Recommendation, index: int, user: AnyUser
) -> Recommendation:
    """ "Plan with this": a copy of the planned workload with the suggestion's changes (the original stays as
    it was), planned at once. Returns the new plan."""
    ensure_can_write(user=user, team=recommendation.workload.team)
    suggestions_found = ((recommendation.result or {}).get("feasibility") or {}).get("suggestions") or []
    if not 0 <= index < len(suggestions_found):
        raise SuggestionGone(index)
    suggestion = suggestions_found[index]
    document = document_with(recommendation.inputs, {c["path"]: c["to"] for c in suggestion["changes"]})
    document["name"] = _copy_name(recommendation.workload, _suffix(suggestion))
    with transaction.atomic():
        workload = workload_create(team=recommendation.workload.team, document=document, user=user)
        return recommendation_request(workload=workload, user=user)


@dataclass(frozen=True)
class WhatIf:
    result: dict[str, Any]
    elapsed_s: float
    document: dict[str, Any]


def recommendation_what_if(
    *,
    recommendation: Recommendation,
    traffic_scale: float = 1.0,
    price_scale: float = 1.0,
    ttft_p95_ms: float | None = None,
    itl_p95_ms: float | None = None,
) -> WhatIf:
    """Plan the recommendation's workload again with its traffic and GPU prices scaled and other latency
    targets, synchronously and without storing anything (the what-if panel)."""
    started = time.perf_counter()
    inputs = recommendation.inputs
    traffic = inputs["traffic"]
    changes: dict[str, Any] = {
        f"traffic.{key}": [rate * traffic_scale for rate in traffic[key]]
        for key in ("hourly_requests_per_s", "weekday_hourly_requests_per_s", "weekend_hourly_requests_per_s")
        if key in traffic
    }
    if ttft_p95_ms is not None:
        changes["slo.ttft_p95_ms"] = ttft_p95_ms
    if itl_p95_ms is not None:
        changes["slo.itl_p95_ms"] = itl_p95_ms
    document = document_with(inputs, changes)
    spec = workload_spec_from_dict(document)
    snapshot = catalog_snapshot()
    measured = measured_points_for(recommendation.workload.team)
    # Calibration reads hardware and models, not prices: fitted (and cached) on the catalog as it is.
    calibration = calibrate(snapshot, tuple(measured))
    if price_scale != 1.0:
        snapshot = dataclasses.replace(
            snapshot,
            offers=tuple(
                dataclasses.replace(
                    offer,
                    ondemand_usd_per_hour=None
                    if offer.ondemand_usd_per_hour is None
                    else offer.ondemand_usd_per_hour * price_scale,
                    spot_usd_per_hour=None
                    if offer.spot_usd_per_hour is None
                    else offer.spot_usd_per_hour * price_scale,
                )
                for offer in snapshot.offers
            ),
        )
    result = plan(spec, snapshot, measured, calibration=calibration, max_options=3)
    return WhatIf(result=result, elapsed_s=time.perf_counter() - started, document=document)


@dataclass(frozen=True)
class PlanReapOutcome:
    failed: list[int]
    requeued: list[int]


def recommendations_reap_stuck(*, now: datetime | None = None) -> PlanReapOutcome:
    """Beat's sweep of plans nobody will finish: running past the task's hard time limit (its worker was killed
    or lost) fail; queued long after they were sent (the message was lost, e.g. Redis restarted without its
    data) are sent once more, then fail. Compare-and-set on status, so a worker finishing meanwhile wins."""
    now = now or timezone.now()
    outcome = PlanReapOutcome([], [])
    running_cutoff = now - timedelta(seconds=PLAN_TIME_LIMIT_S + RUNNING_GRACE_S)
    for pk, started_at in Recommendation.objects.filter(
        status=PlanStatus.RUNNING, started_at__lt=running_cutoff
    ).values_list("pk", "started_at"):
        error = (
            f"Planning did not finish: started at {started_at:%Y-%m-%d %H:%M:%S} UTC and still running past "
            f"its {PLAN_TIME_LIMIT_S} s limit, so its worker was stopped or lost. Plan again; if this "
            f"repeats, check the Celery worker of the default queue."
        )
        if Recommendation.objects.filter(pk=pk, status=PlanStatus.RUNNING, started_at=started_at).update(
            status=PlanStatus.FAILED, error=error, finished_at=now
        ):
            outcome.failed.append(pk)
    queued = Recommendation.objects.filter(status=PlanStatus.QUEUED)
    give_up_cutoff = now - timedelta(seconds=settings.PLAN_QUEUE_TIMEOUT_S)
    for pk in queued.filter(created_at__lt=give_up_cutoff).values_list("pk", flat=True):
        error = (
            f"No planning worker picked this plan up within {settings.PLAN_QUEUE_TIMEOUT_S} s "
            f"(PLAN_QUEUE_TIMEOUT_S), even after it was sent again. Check that a Celery worker consumes the "
            f"default queue, then plan again."
        )
        if Recommendation.objects.filter(pk=pk, status=PlanStatus.QUEUED).update(
            status=PlanStatus.FAILED, error=error, finished_at=now
        ):
            outcome.failed.append(pk)
    resend_cutoff = now - timedelta(seconds=settings.PLAN_RESEND_AFTER_S)
    for pk in queued.filter(created_at__lt=resend_cutoff, resent_at__isnull=True).values_list(
        "pk", flat=True
    ):
        if Recommendation.objects.filter(pk=pk, status=PlanStatus.QUEUED, resent_at__isnull=True).update(
            resent_at=now
        ):
            # A duplicate of a message that was not lost is harmless: the task claims by compare-and-set.
            transaction.on_commit(partial(recommendation_send, pk))
            outcome.requeued.append(pk)
    return outcome
