"""Run lifecycle rules, called as plain functions: requesting, claiming, cancelling, reaping, posting results."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from rest_framework import exceptions

from apps.benchmarks import services
from apps.benchmarks.models import (
    BenchmarkCandidate,
    BenchmarkRun,
    CandidateStatus,
    Executor,
    Measurement,
    RunStatus,
    WorkerHost,
)
from apps.benchmarks.services import CandidateRequest, LoadSettings
from apps.benchmarks.tasks import benchmark_run_execute_task, benchmark_runs_reap_stale_task
from tests.benchmarks.conftest import SMOKE_LOAD, result_json
from tests.conftest import TeamWorld

# ---------------------------------------------------------------------------------------------- requesting


def test_all_runnable_queues_what_live_workers_can_run_and_leaves_the_rest_to_the_model(
    world: TeamWorld, cpu_worker: WorkerHost, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        outcome = services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)

    (requested,) = outcome.runs
    run = requested.run
    assert requested.created
    assert requested.results_token
    assert (run.accelerator, run.queue, run.status) == ("cpu", "bench.cpu", RunStatus.QUEUED)
    assert [(c.engine, c.quant, c.accelerator, c.tp) for c in run.candidates.all()] == [
        ("transformers", "bf16", "cpu", 1)
    ]
    left = {(v.candidate.engine, v.candidate.accelerator) for v in outcome.left_to_model}
    assert ("vllm", "h100-sxm") in left
    assert ("llamacpp", "cpu") in left  # the cpu worker has no llama.cpp installed
    reasons = {v.reason for v in outcome.left_to_model if v.candidate.accelerator == "h100-sxm"}
    assert reasons == {"no live worker with h100-sxm"}
    assert run.left_to_model
    assert run.token_hash != requested.results_token
    assert len(callbacks) == 1  # enqueued on commit, never before


def test_a_second_request_returns_the_active_run(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    first = services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)

    again = services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)

    assert again.runs[0].run.pk == first.runs[0].run.pk
    assert again.runs[0].created is False
    assert again.runs[0].results_token is None
    assert BenchmarkRun.objects.count() == 1


def test_explicit_candidates_are_split_per_accelerator(
    world: TeamWorld, cpu_worker: WorkerHost, h100_worker: WorkerHost
) -> None:
    outcome = services.benchmark_run_request(
        workload=world.workload_a,
        user=world.alice,
        load=LoadSettings(concurrency=(1, 8), requests=10),
        candidates=[
            CandidateRequest(engine="vllm", quant="fp8", accelerator="h100-sxm"),
            CandidateRequest(engine="transformers", quant="bf16", accelerator="cpu"),
            CandidateRequest(engine="sglang", quant="bf16", accelerator="h100-sxm"),
        ],
    )

    assert sorted(r.run.accelerator for r in outcome.runs) == ["cpu", "h100-sxm"]
    gpu_run = next(r.run for r in outcome.runs if r.run.accelerator == "h100-sxm")
    assert [c.label for c in gpu_run.candidates.all()] == ["vllm fp8 on 1x h100-sxm"]
    assert [(v.candidate.engine, v.reason) for v in outcome.left_to_model] == [
        ("sglang", "no live h100-sxm worker has sglang installed")
    ]


def test_nothing_runnable_is_refused_with_the_reasons(world: TeamWorld) -> None:
    with pytest.raises(exceptions.ValidationError) as caught:
        services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)

    assert "no live worker with cpu" in str(caught.value.detail)
    assert not BenchmarkRun.objects.exists()


def test_an_impossible_candidate_is_refused(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    with pytest.raises(exceptions.ValidationError, match="does not run on cpu"):
        services.benchmark_run_request(
            workload=world.workload_a,
            user=world.alice,
            load=SMOKE_LOAD,
            candidates=[CandidateRequest(engine="sglang", quant="bf16", accelerator="cpu")],
        )


def test_shrinking_is_for_cpu_runs_only(world: TeamWorld, h100_worker: WorkerHost) -> None:
    with pytest.raises(exceptions.ValidationError, match="CPU smoke runs only"):
        services.benchmark_run_request(
            workload=world.workload_a,
            user=world.alice,
            load=LoadSettings(concurrency=(1,), shrink=True),
            candidates=[CandidateRequest(engine="vllm", quant="bf16", accelerator="h100-sxm")],
        )


def test_load_levels_are_validated_like_the_runner_does(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    with pytest.raises(exceptions.ValidationError, match="either concurrency levels or request rates"):
        services.benchmark_run_request(
            workload=world.workload_a, user=world.alice, load=LoadSettings(concurrency=(1,), rates=(1.0,))
        )


def test_viewers_cannot_request_runs(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    with pytest.raises(PermissionDenied):
        services.benchmark_run_request(workload=world.workload_a, user=world.victor, load=SMOKE_LOAD)


def test_a_remote_run_needs_no_live_worker_and_is_not_enqueued(
    world: TeamWorld, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        outcome = services.benchmark_run_request(
            workload=world.workload_a,
            user=world.alice,
            load=LoadSettings(concurrency=(1, 4), requests=3, isl=512, osl=128),
            candidates=[CandidateRequest(engine="vllm", quant="bf16", accelerator="h100-sxm")],
            executor=Executor.REMOTE,
        )

    run = outcome.runs[0].run
    assert (run.executor, run.queue, run.status) == (Executor.REMOTE, "", RunStatus.QUEUED)
    assert callbacks == []


# ---------------------------------------------------------------------------------------------- executing


def test_executing_twice_runs_once(queued_run: BenchmarkRun, work_dir: Any) -> None:
    # given a candidate that fails fast inside the real runner (its model path is on no host)
    BenchmarkCandidate.objects.filter(run=queued_run).update(model_path="/nonexistent/model")

    # when the task is delivered twice (acks_late redelivery), as plain calls
    benchmark_run_execute_task(queued_run.pk)
    first = BenchmarkRun.objects.get(pk=queued_run.pk)
    benchmark_run_execute_task(queued_run.pk)

    # then one execution happened: one claim, and the second call changed nothing
    second = BenchmarkRun.objects.get(pk=queued_run.pk)
    assert first.attempts == second.attempts == 1
    assert (second.status, second.finished_at) == (first.status, first.finished_at)
    assert second.status == RunStatus.FAILED
    candidate = second.candidates.get()
    assert candidate.status == CandidateStatus.FAILED
    assert "/nonexistent/model" in candidate.error
    assert "Every candidate failed" in second.error


def test_a_run_already_claimed_is_left_alone(queued_run: BenchmarkRun) -> None:
    BenchmarkRun.objects.filter(pk=queued_run.pk).update(status=RunStatus.RUNNING, attempts=1)

    services.benchmark_run_execute(run_id=queued_run.pk, worker_name="another@host")

    run = BenchmarkRun.objects.get(pk=queued_run.pk)
    assert (run.status, run.attempts, run.worker_name) == (RunStatus.RUNNING, 1, "")
    assert run.candidates.get().status == CandidateStatus.PENDING


def test_a_cancelled_run_is_not_executed(queued_run: BenchmarkRun, world: TeamWorld) -> None:
    services.benchmark_run_cancel(run=queued_run, user=world.alice)

    services.benchmark_run_execute(run_id=queued_run.pk)

    run = BenchmarkRun.objects.get(pk=queued_run.pk)
    assert (run.status, run.attempts) == (RunStatus.CANCELLED, 0)


# ---------------------------------------------------------------------------------------------- cancelling


def test_cancelling_a_queued_run_cancels_it_at_once(queued_run: BenchmarkRun, world: TeamWorld) -> None:
    run = services.benchmark_run_cancel(run=queued_run, user=world.alice)

    assert run.status == RunStatus.CANCELLED
    assert run.finished_at is not None
    assert run.candidates.get().status == CandidateStatus.CANCELLED


def test_cancelling_a_running_run_asks_its_worker_to_stop(queued_run: BenchmarkRun, world: TeamWorld) -> None:
    BenchmarkRun.objects.filter(pk=queued_run.pk).update(status=RunStatus.RUNNING, attempts=1)

    run = services.benchmark_run_cancel(run=queued_run, user=world.alice)

    assert (run.status, run.cancel_requested) == (RunStatus.RUNNING, True)


def test_cancelling_a_finished_run_changes_nothing(queued_run: BenchmarkRun, world: TeamWorld) -> None:
    BenchmarkRun.objects.filter(pk=queued_run.pk).update(status=RunStatus.SUCCEEDED)

    run = services.benchmark_run_cancel(run=queued_run, user=world.alice)

    assert (run.status, run.cancel_requested) == (RunStatus.SUCCEEDED, False)


def test_viewers_cannot_cancel(queued_run: BenchmarkRun, world: TeamWorld) -> None:
    with pytest.raises(PermissionDenied):
        services.benchmark_run_cancel(run=queued_run, user=world.victor)
    assert BenchmarkRun.objects.get(pk=queued_run.pk).status == RunStatus.QUEUED


# ---------------------------------------------------------------------------------------------- reaping


def _running(run: BenchmarkRun, *, attempts: int, heartbeat_age_s: float, cancel: bool = False) -> None:
    BenchmarkRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        attempts=attempts,
        worker_name="bench-cpu@gone",
        started_at=timezone.now() - timedelta(hours=1),
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age_s),
        cancel_requested=cancel,
    )
    BenchmarkCandidate.objects.filter(run=run).update(status=CandidateStatus.RUNNING)


def test_a_stale_run_is_requeued_once_then_failed(
    queued_run: BenchmarkRun, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a run whose worker died mid-candidate, with one level already written
    settings.BENCHMARK_STALE_AFTER_S = 300
    _running(queued_run, attempts=1, heartbeat_age_s=301)
    candidate = queued_run.candidates.get()
    Measurement.objects.create(
        run=queued_run,
        candidate=candidate,
        source_kind="run",
        source="benchmark run",
        accelerator="cpu",
        engine="transformers",
        model_slug="llama-3.1-8b",
        weights="random",
        quant="bf16",
        isl=16,
        osl=8,
        concurrency=1,
        requests_ok=3,
        requests_failed=0,
        output_tokens_per_s=1.0,
        requests_per_s=1.0,
        goodput_requests_per_s=1.0,
        measured_at=timezone.now(),
    )

    # when the beat job runs
    with django_capture_on_commit_callbacks() as callbacks:
        benchmark_runs_reap_stale_task()

    # then it is queued again, the interrupted candidate starts over, and the run is re-enqueued
    run = BenchmarkRun.objects.get(pk=queued_run.pk)
    assert run.status == RunStatus.QUEUED
    assert "no heartbeat from bench-cpu@gone" in run.error
    assert run.candidates.get().status == CandidateStatus.PENDING
    assert not Measurement.objects.filter(candidate=candidate).exists()
    assert len(callbacks) == 1

    # when the second attempt's worker is lost too
    _running(queued_run, attempts=2, heartbeat_age_s=400)
    outcome = services.benchmark_runs_reap_stale()

    # then the run fails with an error that says what happened and what to do
    run = BenchmarkRun.objects.get(pk=queued_run.pk)
    assert outcome.failed == [run.pk]
    assert run.status == RunStatus.FAILED
    assert run.finished_at is not None
    assert "already been requeued once" in run.error
    assert "/api/v1/workers/" in run.error
    assert run.candidates.get().status == CandidateStatus.FAILED


def test_a_fresh_heartbeat_is_left_alone(queued_run: BenchmarkRun, settings: Any) -> None:
    settings.BENCHMARK_STALE_AFTER_S = 300
    _running(queued_run, attempts=1, heartbeat_age_s=30)

    outcome = services.benchmark_runs_reap_stale()

    assert outcome == services.ReapOutcome([], [], [])
    assert BenchmarkRun.objects.get(pk=queued_run.pk).status == RunStatus.RUNNING


def test_a_stale_run_that_was_being_cancelled_ends_cancelled(queued_run: BenchmarkRun) -> None:
    _running(queued_run, attempts=1, heartbeat_age_s=10_000, cancel=True)

    services.benchmark_runs_reap_stale()

    assert BenchmarkRun.objects.get(pk=queued_run.pk).status == RunStatus.CANCELLED


def test_a_worker_whose_run_was_requeued_writes_nothing(queued_run: BenchmarkRun) -> None:
    # given the execution of attempt 1, while the reaper has handed the run to attempt 2
    BenchmarkRun.objects.filter(pk=queued_run.pk).update(status=RunStatus.RUNNING, attempts=1)
    run = BenchmarkRun.objects.get(pk=queued_run.pk)
    execution = services._Execution(run=run, host=None, deadline=float("inf"))
    BenchmarkRun.objects.filter(pk=run.pk).update(attempts=2)

    # when it checks in and tries to finish
    execution.poll(force=True)
    execution.finish()

    # then it knows it lost the run and leaves it to the new attempt
    assert execution.stop == "lost"
    assert BenchmarkRun.objects.get(pk=run.pk).status == RunStatus.RUNNING


# ---------------------------------------------------------------------------------------------- results


@pytest.fixture
def remote_run(world: TeamWorld) -> services.RequestedRun:
    outcome = services.benchmark_run_request(
        workload=world.workload_a,
        user=world.alice,
        load=LoadSettings(concurrency=(1, 4), requests=3, isl=512, osl=128),
        candidates=[
            CandidateRequest(engine="vllm", quant="bf16", accelerator="h100-sxm"),
            CandidateRequest(engine="vllm", quant="fp8", accelerator="h100-sxm"),
        ],
        executor=Executor.REMOTE,
    )
    return outcome.runs[0]


def test_posted_results_become_measurements_with_provenance(remote_run: services.RequestedRun) -> None:
    posted = services.benchmark_run_post_result(run_id=remote_run.run.pk, result=result_json())

    assert posted.created
    assert posted.candidate.status == CandidateStatus.SUCCEEDED
    assert posted.run.status == RunStatus.RUNNING  # the fp8 candidate is still to come
    first = posted.measurements[0]
    assert (first.concurrency, first.ttft_p50_ms, first.ttft_p99_ms, first.requests_ok) == (1, 40.0, 60.0, 3)
    assert first.source == f"benchmark run #{remote_run.run.pk} (posted by air-gapped-7)"
    assert (first.accelerator, first.accelerator_model, first.driver_version) == (
        "h100-sxm",
        "NVIDIA H100 80GB HBM3",
        "550.54.15",
    )
    assert (first.engine_version, first.engine_args[0]) == ("0.11.0", "--model")
    assert len(first.samples) == 3
    assert "random weights at the full architecture" in first.weights

    fp8 = services.benchmark_run_post_result(run_id=remote_run.run.pk, result=result_json(quant="fp8"))

    assert fp8.run.status == RunStatus.SUCCEEDED


def test_posting_the_same_result_twice_stores_it_once(remote_run: services.RequestedRun) -> None:
    first = services.benchmark_run_post_result(run_id=remote_run.run.pk, result=result_json())

    again = services.benchmark_run_post_result(run_id=remote_run.run.pk, result=result_json())

    assert again.created is False
    assert [m.pk for m in again.measurements] == [m.pk for m in first.measurements]
    assert Measurement.objects.count() == 2


def test_a_different_result_for_a_measured_candidate_conflicts(remote_run: services.RequestedRun) -> None:
    services.benchmark_run_post_result(run_id=remote_run.run.pk, result=result_json())

    with pytest.raises(services.Conflict, match="already succeeded"):
        services.benchmark_run_post_result(run_id=remote_run.run.pk, result=result_json(osl=256))


def test_a_result_for_no_candidate_of_the_run_is_refused(remote_run: services.RequestedRun) -> None:
    with pytest.raises(exceptions.ValidationError, match="no candidate sglang bf16"):
        services.benchmark_run_post_result(
            run_id=remote_run.run.pk,
            result=result_json(engine={"name": "sglang", "version": "0.5", "args": []}),
        )


def test_a_cpu_result_is_refused_for_a_gpu_run(remote_run: services.RequestedRun) -> None:
    with pytest.raises(exceptions.ValidationError, match="measured on a CPU"):
        services.benchmark_run_post_result(run_id=remote_run.run.pk, result=result_json(device="cpu"))


def test_a_result_breaking_the_schema_names_the_field(remote_run: services.RequestedRun) -> None:
    broken = result_json()
    del broken["levels"][0]["ttft_ms"]

    with pytest.raises(exceptions.ValidationError) as caught:
        services.benchmark_run_post_result(run_id=remote_run.run.pk, result=broken)

    assert "levels.0" in str(caught.value.detail)


# ---------------------------------------------------------------------------------------------- workers


def test_a_worker_registers_from_its_probe_and_stays_live_while_it_beats(db: Any, settings: Any) -> None:
    from tests.benchmarks.conftest import H100_PROBE

    host = services.worker_host_register(
        name="bench-h100@gpu-host-1", queue_name="bench.h100-sxm", probe=H100_PROBE
    )

    assert (host.accelerator, host.accelerator_count, host.cuda_version) == ("h100-sxm", 8, "12.4")
    assert host.is_live()
    assert host.device_count == 8
    assert "vllm" in host.engines
    WorkerHost.objects.filter(pk=host.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert not WorkerHost.objects.get(pk=host.pk).is_live()
    assert services.worker_host_heartbeat(name=host.name)
    assert WorkerHost.objects.get(pk=host.pk).is_live()
    services.worker_host_offline(name=host.name)
    assert not WorkerHost.objects.get(pk=host.pk).is_live()


def test_a_gpu_queue_on_a_host_without_gpus_is_not_registered(db: Any) -> None:
    from tests.benchmarks.conftest import CPU_PROBE

    with pytest.raises(services.WorkerRegistrationError, match="needs a GPU"):
        services.worker_host_register(name="w", queue_name="bench.h100-sxm", probe=CPU_PROBE)
    with pytest.raises(services.WorkerRegistrationError, match="not an accelerator in the catalog"):
        services.worker_host_register(name="w", queue_name="bench.tpu-v9", probe=CPU_PROBE)
    assert not WorkerHost.objects.exists()


def test_a_worker_registers_itself_with_a_real_probe(db: Any) -> None:
    from apps.benchmarks.worker import register

    names = register(node_name="bench-cpu@here", queues=["bench.cpu"])

    host = WorkerHost.objects.get(name="bench-cpu@here")
    assert names == ["bench-cpu@here"]
    assert host.accelerator == "cpu"
    assert host.memory_mib > 0
    assert "transformers" in host.engines  # this machine has transformers serve installed


def test_the_heartbeat_registers_again_when_the_host_row_is_gone(db: Any) -> None:
    from apps.benchmarks import worker

    worker._registered[:] = worker.register(node_name="bench-cpu@again", queues=["bench.cpu"])
    WorkerHost.objects.all().delete()

    worker._beat_once("bench-cpu@again", ["bench.cpu"])

    assert WorkerHost.objects.get(name="bench-cpu@again").is_live()
    worker._registered.clear()
