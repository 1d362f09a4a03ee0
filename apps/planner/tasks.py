"""Celery entry points for planning: thin, taking ids; the Recommendation row holds the outcome.

The limits are constants rather than settings because the beat sweep (`recommendations_reap_stuck`) must know the
same hard limit the worker enforces: a plan still running past it had its worker process killed.
"""

from __future__ import annotations

from celery import shared_task

import advisor.celery  # noqa: F401  (configures the app the shared tasks bind to)

PLAN_SOFT_TIME_LIMIT_S = 120
PLAN_TIME_LIMIT_S = 150


@shared_task(
    acks_late=True, ignore_result=True, soft_time_limit=PLAN_SOFT_TIME_LIMIT_S, time_limit=PLAN_TIME_LIMIT_S
)
def recommendation_compute_task(recommendation_id: int) -> None:
    from apps.planner.services import recommendation_compute  # avoids services<->tasks cycle

    recommendation_compute(recommendation_id=recommendation_id)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=50, time_limit=60)
def recommendations_reap_stuck_task() -> None:
    from apps.planner.services import recommendations_reap_stuck

    recommendations_reap_stuck()
