from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.selectors import AnyUser
from apps.planner.models import Recommendation


def recommendations_visible_to(*, user: AnyUser) -> QuerySet[Recommendation]:
    if not user.is_authenticated:
        return Recommendation.objects.none()
    return (
        Recommendation.objects.filter(workload__team__memberships__user=user)
        .select_related("workload", "workload__team")
        .distinct()
    )


def recommendation_list(*, user: AnyUser, workload_id: int | None = None) -> QuerySet[Recommendation]:
    qs = recommendations_visible_to(user=user)
    return qs.filter(workload_id=workload_id) if workload_id is not None else qs
