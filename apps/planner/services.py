from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.selectors import AnyUser
from apps.catalog.selectors import catalog_snapshot
from apps.planner.models import PlanStatus, Recommendation
from apps.planner.perf.corpus import MeasuredPoint
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import WorkloadError, workload_spec_from_dict
from apps.workloads.models import Workload
from apps.workloads.services import ensure_can_write

logger = logging.getLogger(__name__)


def recommendation_request(*, workload: Workload, user: AnyUser) -> Recommendation:
    """Queue a plan of the workload as it is now. With no broker configured the task runs in-process."""
    from apps.planner.tasks import recommendation_compute_task

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


def recommendation_compute(*, recommendation_id: int) -> None:
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
        _finish(recommendation, error=f"The workload cannot be planned: {exc}")
        return
    except Exception as exc:
        # The row is the truth: never leave it "running" behind a crash; Celery still logs the traceback.
        logger.exception("planning recommendation %s failed", recommendation_id)
        _finish(recommendation, error=f"Planning failed: {exc.__class__.__name__}: {exc}")
        raise
    recommendation.catalog_version = snapshot.version
    recommendation.measured_points = len(measured)
    recommendation.result = result
    _finish(recommendation)


def _finish(recommendation: Recommendation, *, error: str = "") -> None:
    recommendation.status = PlanStatus.FAILED if error else PlanStatus.SUCCEEDED
    recommendation.error = error
    recommendation.finished_at = timezone.now()
    recommendation.save()
