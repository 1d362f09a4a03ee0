"""Celery entry points: thin, taking ids; the BenchmarkRun row, not the result backend, holds the outcome.

`benchmark_run_execute_task` is routed per call to the run's `bench.<accelerator>` queue. Its limits here are the
defaults; `services.benchmark_run_enqueue` passes the ones derived from BENCHMARK_TIME_LIMIT_S. acks_late is safe
because the service claims the run by compare-and-set: a redelivered message finds the run taken and returns.
"""

from __future__ import annotations

from celery import Task, shared_task

import advisor.celery  # noqa: F401  (configures the app the shared tasks bind to)


@shared_task(
    bind=True, acks_late=True, ignore_result=True, soft_time_limit=2 * 3600, time_limit=2 * 3600 + 300
)
def benchmark_run_execute_task(self: Task, run_id: int) -> None:  # type: ignore[type-arg]
    from apps.benchmarks.services import benchmark_run_execute  # avoids services<->tasks cycle

    benchmark_run_execute(run_id=run_id, worker_name=str(self.request.hostname or ""))


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=50, time_limit=60)
def benchmark_runs_reap_stale_task() -> None:
    from apps.benchmarks.services import benchmark_runs_reap_stale

    benchmark_runs_reap_stale()
