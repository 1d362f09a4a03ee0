from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.selectors import AnyUser
from apps.workloads.models import Workload


def workloads_visible_to(*, user: AnyUser) -> QuerySet[Workload]:
    """Every read of a workload goes through here: a user sees only their teams' workloads."""
    if not user.is_authenticated:
        return Workload.objects.none()
    # One membership per (team, user): the join cannot repeat a row, so no DISTINCT.
    return Workload.objects.filter(team__memberships__user=user).select_related("team", "model")


def workload_list(*, user: AnyUser, name: str = "", team: str = "") -> QuerySet[Workload]:
    qs = workloads_visible_to(user=user)
    if name:
        qs = qs.filter(name__icontains=name)
    if team:
        qs = qs.filter(team__slug=team)
    return qs
