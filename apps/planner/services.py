from __future__ import annotations

import logging
import re
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
from apps.planner.models import PlanStatus, Recommendation
from apps.planner.perf.corpus import MeasuredPoint
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import WorkloadError, workload_spec_from_dict
from apps.planner.tasks import PLAN_SOFT_TIME_LIMIT_S, PLAN_TIME_LIMIT_S, recommendation_compute_task
from apps.workloads.models import Workload
from apps.workloads.services import ensure_can_write

logger = logging.getLogger(__name__)

# What the plan list shows of the best option, kept in its own column so lists never read whole plans.
BEST_OPTION_KEYS = (
    "rank", "model", "engine", "quant", "gpu", "tp", "gpus_per_replica", "provider", "instance_type",
    "monthly_cost_usd", "source", "error_band_rel", "calibration_key", "calibration_basis",
)  # fmt: skip
# A running plan is given up this long after the task's hard limit: by then its worker process was killed.
RUNNING_GRACE_S = 60


def recommendation_request(*, workload: Workload, user: AnyUser) -> Recommendation:
    """Queue a plan of the workload as it is now. With no broker configured the task runs in-process."""
    ensure_can_write(user=user, team=workload.team)
    recommendation = Recommendation.objects.create(
        workload=workload,
        requested_by=user if user.is_authenticated else None,
        inputs=workload.to_document(),
    )
    transaction.on_commit(lambda: recommendation_compute_task.delay(recommendation.pk))
    return recommendation


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
    try:
        snapshot = catalog_snapshot()
        measured = measured_points_for(recommendation.workload.team)
        result = plan(workload_spec_from_dict(recommendation.inputs), snapshot, measured)
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
            transaction.on_commit(partial(recommendation_compute_task.delay, pk))
            outcome.requeued.append(pk)
    return outcome
