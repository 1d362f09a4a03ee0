"""The REST API: starting, listing, reading and cancelling runs; remote results by run token; measurements;
workers. Errors all come in the project's one format."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkRun, CandidateStatus, Executor, Measurement, RunStatus, WorkerHost
from apps.benchmarks.services import CandidateRequest, LoadSettings, result_sha256
from tests.benchmarks.conftest import remote_run, result_json
from tests.conftest import TeamWorld

START = {"all_runnable": True, "concurrency": [1, 2], "requests": 3, "isl": 16, "osl": 8, "shrink": True}


def _start(world: TeamWorld, body: dict[str, Any] | None = None, user: Any = None) -> Any:
    return world.api_for(user or world.alice).post(
        f"/api/v1/workloads/{world.workload_a.pk}/benchmark-runs/", body or START, format="json"
    )


def test_starting_all_runnable_answers_the_runs_and_what_is_left_to_the_model(
    world: TeamWorld, cpu_worker: WorkerHost, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = _start(world)

    assert response.status_code == 201
    body = response.json()
    (run,) = body["runs"]
    assert (run["accelerator"], run["queue"], run["status"], run["created"]) == (
        "cpu",
        "bench.cpu",
        "queued",
        True,
    )
    assert run["results_token"]
    assert run["results_url"] == f"/api/v1/benchmark-runs/{run['id']}/results/"
    assert [c["name"] for c in run["candidates"]] == ["transformers bf16 on 1x cpu"]
    assert run["load"]["shrink"] is True
    assert run["load"]["slo"] == {"ttft_ms": 800.0, "itl_ms": 60.0}
    assert {
        "engine": "vllm",
        "quant": "bf16",
        "accelerator": "h100-sxm",
        "tp": 1,
        "reason": "no live worker with h100-sxm",
    } in body["left_to_model"]
    assert len(callbacks) == 1

    again = _start(world)

    assert again.status_code == 200
    assert again.json()["runs"][0]["id"] == run["id"]
    assert again.json()["runs"][0]["created"] is False
    assert again.json()["runs"][0]["results_token"] is None


def test_starting_with_nothing_runnable_is_a_400_naming_why(world: TeamWorld) -> None:
    response = _start(world)

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert body["errors"][0]["field"] == "candidates"
    assert body["errors"][0]["code"] == "not_runnable"
    assert "no live worker with cpu" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**START, "rates": [1.0]}, "concurrency"),
        ({**START, "candidates": [{"engine": "vllm", "quant": "bf16"}]}, "candidates"),
        ({"candidates": [{"engine": "nope", "quant": "bf16"}]}, "candidates[0].engine"),
        ({**START, "requests": 0}, "requests"),
        ({**START, "surprise": 1}, "surprise"),
        (
            {"candidates": [{"engine": "transformers", "quant": "bf16", "accelerator": "tpu"}]},
            "candidates[0]",
        ),
    ],
)
def test_bad_start_bodies_name_the_field(
    world: TeamWorld, cpu_worker: WorkerHost, body: dict[str, Any], field: str
) -> None:
    response = _start(world, body)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_listing_filters_by_workload_and_status(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    run_id = _start(world).json()["runs"][0]["id"]
    client = world.api_for(world.alice)

    listed = client.get(f"/api/v1/benchmark-runs/?workload={world.workload_a.pk}&status=queued").json()
    finished = client.get("/api/v1/benchmark-runs/?status=succeeded").json()
    bad = client.get("/api/v1/benchmark-runs/?status=exploded")

    assert [r["id"] for r in listed["results"]] == [run_id]
    assert finished["results"] == []
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "status"


def test_reading_a_run_shows_candidates_progress_and_measurements(
    world: TeamWorld, cpu_worker: WorkerHost
) -> None:
    run_id = _start(world).json()["runs"][0]["id"]
    run = BenchmarkRun.objects.get(pk=run_id)
    candidate = run.candidates.get()
    BenchmarkRun.objects.filter(pk=run_id).update(
        status=RunStatus.RUNNING,
        progress={"candidate": candidate.label, "phase": "measuring", "level_index": 1},
    )
    BenchmarkRun.objects.filter(pk=run_id).update(status=RunStatus.QUEUED)
    services.benchmark_run_post_result(
        run_id=run_id,
        result=result_json(
            device="cpu", engine={"name": "transformers", "version": "5.23.0", "args": []}, quant="bf16"
        )
        | {"hardware": result_json()["hardware"] | {"accelerator": "cpu", "accelerator_count": 0}},
    )

    body = world.api_for(world.victor).get(f"/api/v1/benchmark-runs/{run_id}/").json()

    assert body["progress"]["phase"] == "measuring"
    assert body["candidates"][0]["status"] == "succeeded"
    (first, second) = body["measurements"]
    assert (first["concurrency"], second["concurrency"]) == (1, 4)
    assert first["kind"] == "measured"
    assert first["representative"] is True
    assert first["provenance"].startswith("Measured on cpu")
    assert "samples" not in first


def test_cancelling_through_the_api(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    run_id = _start(world).json()["runs"][0]["id"]

    response = world.api_for(world.alice).post(f"/api/v1/benchmark-runs/{run_id}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["candidates"][0]["status"] == "cancelled"


def test_candidates_endpoint_splits_runnable_from_predicted(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    body = (
        world.api_for(world.victor)
        .get(f"/api/v1/workloads/{world.workload_a.pk}/benchmark-candidates/?shrink=true&isl=16&osl=8")
        .json()
    )

    assert body["runnable"] == [
        {"engine": "transformers", "quant": "bf16", "accelerator": "cpu", "tp": 1, "hosts": [cpu_worker.name]}
    ]
    assert any(c["accelerator"] == "h100-sxm" for c in body["left_to_model"])


# ---------------------------------------------------------------------------------------------- results


@pytest.fixture
def remote(world: TeamWorld) -> services.RequestedRun:
    return remote_run(world)


def _post(client: Any, run_id: int, body: Any, token: str | None, **headers: str) -> Any:
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.post(
        f"/api/v1/benchmark-runs/{run_id}/results/",
        json.dumps(body),
        content_type="application/json",
        **headers,
    )


def test_a_remote_host_posts_results_with_the_run_token(remote: services.RequestedRun) -> None:
    from rest_framework.test import APIClient

    client = APIClient()  # no user: the run token is the only credential
    body = result_json()
    key = result_sha256(body)

    response = _post(client, remote.run.pk, body, remote.results_token, HTTP_IDEMPOTENCY_KEY=key)
    repeat = _post(client, remote.run.pk, body, remote.results_token, HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 201, response.json()
    posted = response.json()
    assert posted["created"] is True
    assert posted["run_status"] == "succeeded"
    assert posted["candidate"]["status"] == "succeeded"
    assert len(posted["measurements"]) == 2
    assert repeat.status_code == 200
    assert repeat.json()["measurements"] == posted["measurements"]
    assert Measurement.objects.filter(run=remote.run).count() == 2


def test_the_workers_report_client_posts_results(
    catalog_loaded: None, live_server: Any, remote: services.RequestedRun
) -> None:
    from workers.report import post_result

    response = post_result(
        f"{live_server.url}/api/v1/benchmark-runs/{remote.run.pk}/results/",
        remote.results_token or "",
        result_json(),
    )

    assert response.status_code == 201
    assert BenchmarkRun.objects.get(pk=remote.run.pk).status == RunStatus.SUCCEEDED


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_results_need_the_right_token(remote: services.RequestedRun, token: str | None) -> None:
    from rest_framework.test import APIClient

    response = _post(APIClient(), remote.run.pk, result_json(), token)

    assert response.status_code == 401
    assert response.json()["status"] == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Measurement.objects.exists()


def test_one_runs_token_does_not_open_another_run(world: TeamWorld, remote: services.RequestedRun) -> None:
    from rest_framework.test import APIClient

    other = services.benchmark_run_request(
        workload=world.workload_b,
        user=world.bob,
        load=LoadSettings(concurrency=(1,), requests=3),
        candidates=[CandidateRequest(engine="vllm", quant="bf16", accelerator="h100-sxm")],
        executor=Executor.REMOTE,
    ).runs[0]

    response = _post(APIClient(), other.run.pk, result_json(), remote.results_token)

    assert response.status_code == 401


def test_a_session_user_cannot_post_results_without_the_token(
    world: TeamWorld, remote: services.RequestedRun
) -> None:
    response = _post(world.api_for(world.alice), remote.run.pk, result_json(), None)

    assert response.status_code == 401


def test_a_bad_result_body_is_a_400(remote: services.RequestedRun) -> None:
    from rest_framework.test import APIClient

    response = _post(APIClient(), remote.run.pk, {"levels": []}, remote.results_token)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "schema"


def test_results_for_a_finished_run_conflict(world: TeamWorld, remote: services.RequestedRun) -> None:
    from rest_framework.test import APIClient

    services.benchmark_run_cancel(run=remote.run, user=world.alice)

    response = _post(APIClient(), remote.run.pk, result_json(), remote.results_token)

    assert response.status_code == 409
    assert "already cancelled" in response.json()["detail"]


# ---------------------------------------------------------------------------------------------- measurements, workers


def test_measurements_are_listed_with_filters_and_read_with_samples(
    world: TeamWorld, remote: services.RequestedRun
) -> None:
    services.benchmark_run_post_result(run_id=remote.run.pk, result=result_json())
    client = world.api_for(world.victor)

    listed = client.get("/api/v1/measurements/?engine=vllm&accelerator=h100-sxm&representative=true").json()
    none = client.get("/api/v1/measurements/?engine=sglang").json()
    detail = client.get(f"/api/v1/measurements/{listed['results'][0]['id']}/").json()

    assert listed["count"] == 2
    assert none["count"] == 0
    assert "samples" not in listed["results"][0]
    assert len(detail["samples"]) == 3
    assert detail["source_kind"] == "remote"


def test_workers_are_listed_live_or_not(world: TeamWorld, cpu_worker: WorkerHost) -> None:
    WorkerHost.objects.create(
        name="old@host",
        accelerator="a100-80gb",
        queue="bench.a100-80gb",
        last_heartbeat=timezone.now() - timedelta(days=1),
    )

    body = world.api_for(world.victor).get("/api/v1/workers/").json()

    assert {(w["name"], w["live"]) for w in body["results"]} == {(cpu_worker.name, True), ("old@host", False)}


def test_candidate_states_are_exposed(world: TeamWorld, remote: services.RequestedRun) -> None:
    body = world.api_for(world.alice).get(f"/api/v1/benchmark-runs/{remote.run.pk}/").json()

    assert body["executor"] == "remote"
    assert body["candidates"][0]["status"] == CandidateStatus.PENDING


def test_results_larger_than_ordinary_bodies_are_accepted(
    remote: services.RequestedRun, settings: Any
) -> None:
    from rest_framework.test import APIClient

    body = result_json()
    sample = body["levels"][0]["samples"][0]
    body["levels"][0]["samples"] = [sample | {"index": i} for i in range(20_000)]
    assert len(json.dumps(body)) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = _post(APIClient(), remote.run.pk, body, remote.results_token)

    assert response.status_code == 201, response.json()
    assert len(Measurement.objects.get(run=remote.run, level_index=0).samples) == 20_000


def test_a_result_that_is_not_json_is_a_400(remote: services.RequestedRun) -> None:
    from rest_framework.test import APIClient

    response = APIClient().post(
        f"/api/v1/benchmark-runs/{remote.run.pk}/results/",
        "{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {remote.results_token}",
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "parse_error"
