from __future__ import annotations

from django.db import DatabaseError
from django.db.models import QuerySet

from apps.accounts.selectors import AnyUser
from apps.catalog.selectors import catalog_snapshot
from apps.catalog.specs import CatalogSnapshot, load_snapshot
from apps.planner.models import Recommendation
from apps.planner.perf.corpus import MeasuredPoint


def recommendations_visible_to(*, user: AnyUser) -> QuerySet[Recommendation]:
    if not user.is_authenticated:
        return Recommendation.objects.none()
    # One membership per (team, user): the join cannot repeat a row, so no DISTINCT (which would compare
    # every column, plans included).
    return Recommendation.objects.filter(workload__team__memberships__user=user).select_related(
        "workload", "workload__team"
    )


# What a list of plans shows (API summaries, the plans page, the dashboard, a workload's page).
SUMMARY_FIELDS = (
    "id", "workload_id", "status", "error", "catalog_version", "measured_points", "best_option",
    "created_at", "started_at", "finished_at", "workload__id", "workload__name",
)  # fmt: skip


def recommendation_list(*, user: AnyUser, workload_id: int | None = None) -> QuerySet[Recommendation]:
    """Summaries only: a stored plan is ~170 KB of JSON, so lists read `best_option` and never the plan (nor the
    inputs, nor the workload's own JSON columns)."""
    qs = (
        recommendations_visible_to(user=user)
        .select_related(None)
        .select_related("workload")
        .only(*SUMMARY_FIELDS)
    )
    return qs.filter(workload_id=workload_id) if workload_id is not None else qs


# For the commands (predict, plan, calibration_report, manifests): the database catalog when it is loaded,
# else the shipped CSVs; shared measurements only, as no team is asking.
def planner_catalog() -> CatalogSnapshot:
    try:
        snapshot = catalog_snapshot()
    except DatabaseError:  # tables not migrated yet
        return load_snapshot()
    # An empty database (load_catalog not run) would make every name unknown; the shipped CSVs are the same rows.
    if not snapshot.models or not snapshot.gpus:
        return load_snapshot()
    return snapshot


def planner_measured_points() -> tuple[MeasuredPoint, ...]:
    from apps.benchmarks.selectors import measured_points  # benchmarks imports the planner's dataclasses

    try:
        return tuple(measured_points())
    except DatabaseError:
        return ()
