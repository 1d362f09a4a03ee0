"""Server-rendered pages: the candidate picker, the run page with its htmx progress partial, cancelling, lists."""

from __future__ import annotations

from typing import Any

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkRun, Measurement, RunStatus, WorkerHost
from tests.benchmarks.conftest import SMOKE_LOAD, result_json
from tests.conftest import TeamWorld

PICK = {
    "candidates": ["transformers|bf16|cpu|1"],
    "load_mode": "concurrency",
    "levels": "1, 2",
    "requests": "3",
    "isl": "16",
    "osl": "8",
    "warmup_requests": "1",
    "shrink": "on",
}


def test_workload_page_links_to_the_picker_for_writers_only(world: TeamWorld) -> None:
    url = f"/benchmarks/workloads/{world.workload_a.pk}/new/"

    owner = world.client_for(world.alice).get(f"/workloads/{world.workload_a.pk}/").content.decode()
    viewer = world.client_for(world.victor).get(f"/workloads/{world.workload_a.pk}/").content.decode()

    assert f'href="{url}"' in owner
    assert f'href="{url}"' not in viewer
    assert "Not benchmarked yet" in viewer


def test_the_picker_separates_measurable_from_predicted(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    html = (
        world.client_for(world.alice)
        .get(f"/benchmarks/workloads/{world.workload_a.pk}/new/")
        .content.decode()
    )

    assert 'value="transformers|bf16|cpu|1"' in html
    assert "bench-cpu@bench-host-1" in html
    assert "Left to the performance model" in html
    assert 'class="badge predicted"' in html
    assert "no live worker with h100-sxm" in html


def test_the_picker_says_how_to_attach_a_worker_when_none_is_live(world: TeamWorld) -> None:
    html = (
        world.client_for(world.alice)
        .get(f"/benchmarks/workloads/{world.workload_a.pk}/new/")
        .content.decode()
    )

    assert "run_bench_worker --accelerator cpu" in html


def test_starting_from_the_page_queues_a_run_and_shows_it(
    world: TeamWorld, cpu_worker: WorkerHost, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.client_for(world.alice)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(f"/benchmarks/workloads/{world.workload_a.pk}/new/", PICK)

    run = BenchmarkRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/benchmarks/runs/{run.pk}/"
    assert (run.load["concurrency"], run.load["isl"], run.load["shrink"]) == ([1, 2], 16, True)
    assert len(callbacks) == 1
    page = client.get(response["Location"]).content.decode()
    assert f"Queued benchmark run #{run.pk}" in page
    assert 'hx-trigger="every 2s"' in page
    assert "Cancel run" in page
    assert "shrunk to a few tiny layers" in page


def test_invalid_picks_come_back_with_errors(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    response = world.client_for(world.alice).post(
        f"/benchmarks/workloads/{world.workload_a.pk}/new/", {**PICK, "levels": "1.5", "candidates": []}
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert "Concurrency levels are whole numbers." in html
    assert "Pick at least one candidate" in html
    assert not BenchmarkRun.objects.exists()


def test_the_progress_partial_shows_levels_as_they_arrive_and_stops_polling_when_done(
    world: TeamWorld, cpu_worker: WorkerHost
) -> None:
    run = (
        services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)
        .runs[0]
        .run
    )
    candidate = run.candidates.get()
    BenchmarkRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        progress={
            "candidate": candidate.label,
            "phase": "measuring",
            "level_index": 1,
            "levels_total": 2,
            "load": {"concurrency": 2},
            "requests_done": 1,
            "requests_total": 3,
        },
    )
    result = result_json(device="cpu", engine={"name": "transformers", "version": "5.23.0", "args": []})
    result["hardware"] |= {"accelerator": "cpu", "accelerator_count": 0}
    BenchmarkRun.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED)
    services.benchmark_run_post_result(run_id=run.pk, result=result)
    BenchmarkRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    client = world.client_for(world.victor)

    partial = client.get(f"/benchmarks/runs/{run.pk}/", headers={"HX-Request": "true"}).content.decode()

    assert partial.lstrip().startswith('<section id="run-progress"')
    assert "level 2 of 2" in partial
    assert "1/3 requests" in partial
    assert "40.0 / 55.0" in partial  # TTFT p50 / p95 of the first level, in ms
    assert 'class="badge measured"' in partial
    assert "Measured on cpu" in partial
    assert "Cancel run" not in partial  # a viewer

    BenchmarkRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    done = client.get(f"/benchmarks/runs/{run.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in done


def test_a_failed_candidate_shows_the_engine_log(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    run = (
        services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)
        .runs[0]
        .run
    )
    run.candidates.update(
        status="failed", error="Transformers exited with code 1", log_tail="CUDA out of memory"
    )
    BenchmarkRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error="Every candidate failed.")

    html = world.client_for(world.alice).get(f"/benchmarks/runs/{run.pk}/").content.decode()

    assert "Transformers exited with code 1" in html
    assert "CUDA out of memory" in html
    assert "The engine's last log lines" in html


def test_cancelling_from_the_run_page(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    run = (
        services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)
        .runs[0]
        .run
    )
    client = world.client_for(world.alice)

    response = client.post(f"/benchmarks/runs/{run.pk}/cancel/")

    assert response.status_code == 302
    assert BenchmarkRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert f"Cancelled benchmark run #{run.pk}" in client.get(response["Location"]).content.decode()


def test_run_list_and_workers_pages(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    run = (
        services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)
        .runs[0]
        .run
    )
    client = world.client_for(world.victor)

    listed = client.get("/benchmarks/?status=queued").content.decode()
    partial = client.get("/benchmarks/?status=succeeded", headers={"HX-Request": "true"}).content.decode()
    workers = client.get("/benchmarks/workers/").content.decode()
    workload_page = client.get(f"/workloads/{world.workload_a.pk}/").content.decode()

    assert f'href="/benchmarks/runs/{run.pk}/"' in listed
    assert partial.lstrip().startswith('<div id="run-table"')
    assert f"#{run.pk}" not in partial
    assert cpu_worker.name in workers
    assert "live" in workers
    assert f'href="/benchmarks/runs/{run.pk}/"' in workload_page


def test_shrunk_measurements_are_labelled_as_such(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    run = (
        services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)
        .runs[0]
        .run
    )
    result = result_json(
        device="cpu",
        engine={"name": "transformers", "version": "5.23.0", "args": []},
        model_info={"dummy_weights": True, "shrunk": True, "architecture": {"layers": 32, "hidden": 4096}},
    )
    result["hardware"] |= {"accelerator": "cpu", "accelerator_count": 0}
    services.benchmark_run_post_result(run_id=run.pk, result=result)
    assert Measurement.objects.filter(run=run, shrunk=True).count() == 2

    html = world.client_for(world.alice).get(f"/benchmarks/runs/{run.pk}/").content.decode()

    assert "measured · shrunk model" in html
    assert "Not representative of the full model" in html
