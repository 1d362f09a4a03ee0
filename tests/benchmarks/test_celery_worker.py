"""End to end with nothing stood in: a real Celery worker process consumes bench.cpu from the real Redis, registers
itself from its own probe, and runs `transformers serve` (CPU, continuous batching), then vLLM's CPU build (the
virtualenv `make install-test` builds, named by ADVISOR_VLLM_PYTHON), on a tiny random Llama that the runner
builds in a temp dir; measurements land in the test database, which the worker reaches because this test
commits (transactional_db, through the bench_cpu_worker fixture)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from apps.benchmarks.models import BenchmarkRun, Measurement, RunStatus, WorkerHost
from tests.benchmarks.conftest import CeleryWorker
from tests.conftest import TeamWorld
from workers.launch import engine_python_override

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 360


def test_a_celery_worker_measures_a_run_from_the_queue(
    bench_cpu_worker: CeleryWorker, world: TeamWorld
) -> None:
    started = time.monotonic()
    # given a worker that registered itself from its own probe
    host = WorkerHost.objects.get(name=bench_cpu_worker.node)
    assert (host.accelerator, host.queue) == ("cpu", "bench.cpu")
    assert "transformers" in host.engines

    # when alice asks for transformers on that worker through the API
    run_id = _request_run(world, "transformers")

    # then the worker picks it up from bench.cpu and the run finishes with measurements
    run = _finished_run(bench_cpu_worker, run_id, RUN_TIMEOUT_S)
    assert run.worker_name == bench_cpu_worker.node
    assert run.attempts == 1
    levels = list(Measurement.objects.filter(run=run).order_by("level_index"))
    assert [m.concurrency for m in levels] == [1, 2]
    for m in levels:
        assert m.host_id == host.pk
        assert m.source == f"benchmark run #{run_id}"
        assert m.engine == "transformers"
        assert "--continuous-batching" in m.engine_args
        assert (m.requests_ok, m.requests_failed) == (4, 0)
        assert m.mean_output_tokens == 8
        assert all(s["output_tokens"] == 8 for s in m.samples)  # tokens counted = tokens asked
        _assert_ordered_percentiles(m)
        assert m.shrunk
        assert not m.representative
    print(f"\nCelery integration: request to finished run in {time.monotonic() - started:.1f} s")

    # and a warm shutdown marks the host offline at once, not after the liveness window
    bench_cpu_worker.process.terminate()
    bench_cpu_worker.process.wait(timeout=60)
    assert WorkerHost.objects.get(name=bench_cpu_worker.node).last_heartbeat is None


VLLM_RUN_TIMEOUT_S = 900  # vLLM's CPU build takes a minute or two to start on a busy 2-core machine


def _request_run(world: TeamWorld, engine: str) -> int:
    response = world.api_for(world.alice).post(
        f"/api/v1/workloads/{world.workload_a.pk}/benchmark-runs/",
        {
            "candidates": [{"engine": engine, "quant": "bf16", "accelerator": "cpu"}],
            "concurrency": [1, 2],
            "requests": 4,
            "isl": 16,
            "osl": 8,
            "shrink": True,
            "warmup_requests": 1,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    (created,) = response.json()["runs"]
    run_id: int = created["id"]
    return run_id


@pytest.mark.skipif(
    engine_python_override("vllm") is None,
    reason="ADVISOR_VLLM_PYTHON names no vLLM virtualenv (`make install-test` builds it)",
)
def test_a_celery_worker_measures_vllm_on_cpu(bench_cpu_worker: CeleryWorker, world: TeamWorld) -> None:
    started = time.monotonic()
    # given a worker whose probe found vLLM's CPU build in its own virtualenv
    host = WorkerHost.objects.get(name=bench_cpu_worker.node)
    assert host.engines["vllm"]["version"] == "0.32.0"

    # when alice asks for vLLM on that worker
    run_id = _request_run(world, "vllm")

    # then the worker starts the real vLLM and measures it
    run = _finished_run(bench_cpu_worker, run_id, VLLM_RUN_TIMEOUT_S)
    levels = list(Measurement.objects.filter(run=run).order_by("level_index"))
    assert [m.concurrency for m in levels] == [1, 2]
    for m in levels:
        assert m.engine == "vllm"
        assert m.engine_version == "0.32.0"
        assert "--load-format" in m.engine_args  # random weights made by vLLM itself, at the shrunk shape
        assert (m.requests_ok, m.requests_failed) == (4, 0)
        assert all(s["output_tokens"] == 8 for s in m.samples)
        _assert_ordered_percentiles(m)
        assert m.shrunk
    print(f"\nCelery + vLLM (CPU): request to finished run in {time.monotonic() - started:.1f} s")


def _finished_run(worker: CeleryWorker, run_id: int, timeout_s: float) -> BenchmarkRun:
    run: BenchmarkRun = worker.wait_for(
        lambda: BenchmarkRun.objects.filter(pk=run_id).exclude(status__in=["queued", "running"]).first(),
        timeout_s,
        f"benchmark run #{run_id} to finish",
    )
    assert run.status == RunStatus.SUCCEEDED, (run.error, list(run.candidates.values("engine", "error")))
    return run


def _assert_ordered_percentiles(m: Any) -> None:
    for metric in ("ttft", "itl", "tpot", "e2e"):
        p50, p90, p95, p99 = (getattr(m, f"{metric}_p{p}_ms") for p in (50, 90, 95, 99))
        # Events the client reads in one socket read share a timestamp: on a loaded machine more than half of
        # a few short streams' gaps can be 0, so ITL's median may be 0 where TTFT, TPOT and e2e cannot.
        assert p50 >= 0 if metric == "itl" else p50 > 0, metric
        assert p50 <= p90 <= p95 <= p99, metric
