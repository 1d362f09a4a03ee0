from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from apps.workloads.models import Workload


def workloads_visible_to(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Workload]:
    """Every read of a workload goes through here: a user sees only their teams' workloads."""
    if not user.is_authenticated:
        return Workload.objects.none()
    return Workload.objects.filter(team__memberships__user=user).select_related("team", "model").distinct()


def workload_list(*, user: AbstractBaseUser | AnonymousUser, name: str = "", team: str = "") -> QuerySet[Workload]:
    qs = workloads_visible_to(user=user)
    if name:
        qs = qs.filter(name__icontains=name)
    if team:
        qs = qs.filter(team__slug=team)
    return qs
