from celery import shared_task


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=120, time_limit=150)
def recommendation_compute_task(recommendation_id: int) -> None:
    from apps.planner.services import recommendation_compute  # avoids services<->tasks cycle

    recommendation_compute(recommendation_id=recommendation_id)
