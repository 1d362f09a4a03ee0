"""Another team's run or measurement answers 404 everywhere; a viewer reads but starts and cancels nothing.
Endpoint by endpoint, pages and API (the style of tests/accounts/test_team_isolation.py)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkRun, Measurement, RunStatus, WorkerHost
from apps.benchmarks.services import LoadSettings
from tests.benchmarks.conftest import SMOKE_LOAD, result_json
from tests.conftest import TeamWorld

API_RUN_ENDPOINTS = [
    ("get", "/api/v1/benchmark-runs/{id}/"),
    ("post", "/api/v1/benchmark-runs/{id}/cancel/"),
]
API_WORKLOAD_ENDPOINTS = [
    ("post", "/api/v1/workloads/{id}/benchmark-runs/"),
    ("get", "/api/v1/workloads/{id}/benchmark-candidates/"),
]
PAGE_RUN_ENDPOINTS = [
    ("get", "/benchmarks/runs/{id}/"),
    ("post", "/benchmarks/runs/{id}/cancel/"),
]
PAGE_WORKLOAD_ENDPOINTS = [
    ("get", "/benchmarks/workloads/{id}/new/"),
    ("post", "/benchmarks/workloads/{id}/new/"),
]
START = {"all_runnable": True, "concurrency": [1], "requests": 3, "isl": 16, "osl": 8, "shrink": True}


@pytest.fixture
def bobs_run(world: TeamWorld, cpu_worker: WorkerHost) -> BenchmarkRun:
    return (
        services.benchmark_run_request(workload=world.workload_b, user=world.bob, load=SMOKE_LOAD).runs[0].run
    )


@pytest.fixture
def alices_run(world: TeamWorld, cpu_worker: WorkerHost) -> BenchmarkRun:
    return (
        services.benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)
        .runs[0]
        .run
    )


def _call(client: Any, method: str, url: str) -> Any:
    if method == "post":
        return client.post(url, START, format="json") if url.startswith("/api/") else client.post(url, {})
    return client.get(url)


@pytest.mark.parametrize(("method", "path"), API_RUN_ENDPOINTS)
def test_api_answers_404_for_another_teams_run(
    world: TeamWorld, bobs_run: BenchmarkRun, method: str, path: str
) -> None:
    response = _call(world.api_for(world.alice), method, path.format(id=bobs_run.pk))

    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "detail": "Not found.",
        "errors": [],
        "request_id": response["X-Request-ID"],
    }
    assert BenchmarkRun.objects.get(pk=bobs_run.pk).status == RunStatus.QUEUED


@pytest.mark.parametrize(("method", "path"), API_WORKLOAD_ENDPOINTS)
def test_api_answers_404_for_another_teams_workload(
    world: TeamWorld, cpu_worker: WorkerHost, method: str, path: str
) -> None:
    response = _call(world.api_for(world.alice), method, path.format(id=world.workload_b.pk))

    assert response.status_code == 404
    assert not BenchmarkRun.objects.exists()


@pytest.mark.parametrize(("method", "path"), PAGE_RUN_ENDPOINTS)
def test_pages_answer_404_for_another_teams_run(
    world: TeamWorld, bobs_run: BenchmarkRun, method: str, path: str
) -> None:
    response = _call(world.client_for(world.alice), method, path.format(id=bobs_run.pk))

    assert response.status_code == 404
    assert BenchmarkRun.objects.get(pk=bobs_run.pk).status == RunStatus.QUEUED


@pytest.mark.parametrize(("method", "path"), PAGE_WORKLOAD_ENDPOINTS)
def test_pages_answer_404_for_another_teams_workload(
    world: TeamWorld, cpu_worker: WorkerHost, method: str, path: str
) -> None:
    response = _call(world.client_for(world.alice), method, path.format(id=world.workload_b.pk))

    assert response.status_code == 404


def test_lists_show_only_own_teams_runs_and_measurements(world: TeamWorld, bobs_run: BenchmarkRun) -> None:
    services.benchmark_run_post_result(
        run_id=bobs_run.pk,
        result=result_json(device="cpu", engine={"name": "transformers", "version": "5.23.0", "args": []})
        | {"hardware": result_json()["hardware"] | {"accelerator": "cpu", "accelerator_count": 0}},
    )
    measurement = Measurement.objects.filter(run=bobs_run).first()
    assert measurement is not None
    client = world.api_for(world.alice)

    assert client.get("/api/v1/benchmark-runs/").json()["results"] == []
    assert client.get(f"/api/v1/benchmark-runs/?workload={world.workload_b.pk}").json()["results"] == []
    assert client.get("/api/v1/measurements/").json()["results"] == []
    assert client.get(f"/api/v1/measurements/{measurement.pk}/").status_code == 404
    assert f"#{bobs_run.pk}" not in world.client_for(world.alice).get("/benchmarks/").content.decode()


def test_shared_imports_are_visible_to_every_team(world: TeamWorld) -> None:
    (shared,) = services.measurements_import(
        result=result_json(levels=result_json()["levels"][:1]), file_name="x.json"
    )

    for user in (world.alice, world.bob, world.victor):
        assert world.api_for(user).get(f"/api/v1/measurements/{shared.pk}/").status_code == 200


@pytest.mark.parametrize(
    "path", ["/api/v1/workloads/{workload}/benchmark-runs/", "/api/v1/benchmark-runs/{run}/cancel/"]
)
def test_viewer_cannot_start_or_cancel_through_the_api(
    world: TeamWorld, alices_run: BenchmarkRun, path: str
) -> None:
    response = world.api_for(world.victor).post(
        path.format(workload=world.workload_a.pk, run=alices_run.pk), START, format="json"
    )

    assert response.status_code == 403
    assert response.json()["status"] == 403
    assert BenchmarkRun.objects.get().status == RunStatus.QUEUED


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/benchmarks/workloads/{workload}/new/"),
        ("post", "/benchmarks/workloads/{workload}/new/"),
        ("post", "/benchmarks/runs/{run}/cancel/"),
    ],
)
def test_viewer_cannot_start_or_cancel_through_pages(
    world: TeamWorld, alices_run: BenchmarkRun, method: str, path: str
) -> None:
    response = getattr(world.client_for(world.victor), method)(
        path.format(workload=world.workload_a.pk, run=alices_run.pk)
    )

    assert response.status_code == 403
    assert BenchmarkRun.objects.get().status == RunStatus.QUEUED


def test_viewer_can_read(world: TeamWorld, alices_run: BenchmarkRun) -> None:
    assert world.client_for(world.victor).get(f"/benchmarks/runs/{alices_run.pk}/").status_code == 200
    assert world.api_for(world.victor).get(f"/api/v1/benchmark-runs/{alices_run.pk}/").status_code == 200


def test_anonymous_is_sent_to_sign_in_and_refused_by_the_api(
    world: TeamWorld, alices_run: BenchmarkRun
) -> None:
    from django.test import Client
    from rest_framework.test import APIClient

    page = Client().get(f"/benchmarks/runs/{alices_run.pk}/")
    api = APIClient().get(f"/api/v1/benchmark-runs/{alices_run.pk}/")

    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/")
    assert api.status_code == 401


def test_remote_runs_of_other_teams_are_hidden_too(world: TeamWorld) -> None:
    remote = services.benchmark_run_request(
        workload=world.workload_b,
        user=world.bob,
        load=LoadSettings(concurrency=(1,), requests=3),
        candidates=[services.CandidateRequest(engine="vllm", quant="bf16", accelerator="h100-sxm")],
        executor="remote",
    ).runs[0]

    assert world.api_for(world.alice).get(f"/api/v1/benchmark-runs/{remote.run.pk}/").status_code == 404
