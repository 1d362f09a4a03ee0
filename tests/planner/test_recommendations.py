"""Planning a stored workload: the service queues a task on commit, the task claims once, and the stored plan
keeps what it was computed from."""

from __future__ import annotations

from typing import Any

import pytest

from apps.planner.models import PlanStatus, Recommendation
from apps.planner.services import recommendation_compute, recommendation_request
from apps.planner.tasks import recommendation_compute_task
from tests.conftest import TeamWorld


@pytest.fixture
def planned(world: TeamWorld) -> Recommendation:
    recommendation = Recommendation.objects.create(
        workload=world.workload_a, requested_by=world.alice, inputs=world.workload_a.to_document()
    )
    recommendation_compute(recommendation_id=recommendation.pk)
    recommendation.refresh_from_db()
    return recommendation


def test_request_enqueues_the_task_on_commit(
    world: TeamWorld, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(recommendation_compute_task, "delay", sent.append)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        recommendation = recommendation_request(workload=world.workload_a, user=world.alice)

    assert len(callbacks) == 1
    assert sent == [recommendation.pk]
    assert recommendation.status == PlanStatus.QUEUED
    assert recommendation.inputs["name"] == "alice-chat"


def test_viewer_cannot_request_a_plan(world: TeamWorld) -> None:
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        recommendation_request(workload=world.workload_a, user=world.victor)


def test_compute_stores_options_with_provenance(planned: Recommendation) -> None:
    assert planned.status == PlanStatus.SUCCEEDED
    assert planned.catalog_version.startswith("catalog-")
    best = planned.options[0]
    assert best["rank"] == 1
    assert best["source"] in {"predicted", "measured"}
    assert 0 < best["error_band_rel"] < 1
    assert len(best["replicas_by_hour"]) == 24
    assert best["why"]
    assert planned.result is not None
    assert planned.result["break_even"]["monthly_tokens"]["total_million_per_month"] > 0


def test_compute_claims_once(planned: Recommendation) -> None:
    finished_at = planned.finished_at

    recommendation_compute(recommendation_id=planned.pk)  # a redelivered task

    planned.refresh_from_db()
    assert planned.finished_at == finished_at


def test_the_stored_plan_does_not_change_when_the_workload_does(
    world: TeamWorld, planned: Recommendation
) -> None:
    world.workload_a.ttft_p95_ms = 50
    world.workload_a.save()

    planned.refresh_from_db()
    assert planned.inputs["slo"]["ttft_p95_ms"] == 800


def test_an_impossible_workload_fails_with_a_reason(world: TeamWorld) -> None:
    document = world.workload_a.to_document()
    document["constraints"]["gpus"] = ["t4"]
    document["model"] = "llama-3.1-405b"
    document["quality"]["allowed_quantizations"] = ["bf16"]
    document["constraints"]["max_gpus_per_replica"] = 1
    recommendation = Recommendation.objects.create(workload=world.workload_a, inputs=document)

    recommendation_compute(recommendation_id=recommendation.pk)

    recommendation.refresh_from_db()
    assert recommendation.status == PlanStatus.SUCCEEDED
    assert recommendation.options == []
    assert recommendation.result is not None
    reasons = {r["reason"] for r in recommendation.result["rejected"]}
    assert reasons
    assert recommendation.result["rejected_summary"]


def test_api_plans_and_reads(world: TeamWorld, django_capture_on_commit_callbacks: Any) -> None:
    api = world.api_for(world.alice)

    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/api/v1/workloads/{world.workload_a.pk}/recommendations/")

    assert response.status_code == 202
    assert response["Location"] == response.json()["url"]
    assert response.json()["status"] == "queued"
    assert len(callbacks) == 1
    recommendation_compute_task(response.json()["id"])  # what the worker does with the queued task
    body = api.get(response["Location"]).json()
    assert body["status"] == "succeeded"
    assert body["result"]["options"][0]["rank"] == 1
    assert body["manifests_url"].endswith("/manifests.zip")
    listed = api.get(f"/api/v1/recommendations/?workload={world.workload_a.pk}").json()
    assert [item["id"] for item in listed["results"]] == [body["id"]]
    assert api.get("/api/v1/recommendations/?workload=abc").json()["errors"][0]["field"] == "workload"


def test_recommendation_page_shows_badges_and_figures(world: TeamWorld, planned: Recommendation) -> None:
    response = world.client_for(world.alice).get(f"/plans/{planned.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "badge predicted" in html or "badge measured" in html
    figures = response.context["figures"]
    assert {"replicas", "cost", "apis", "latency"} <= set(figures)
    traffic = next(t for t in figures["replicas"]["data"] if t["name"] == "traffic (requests/s)")
    assert traffic["y"] == world.workload_a.hourly_requests_per_s
    latency_names = [trace["name"] for trace in figures["latency"]["data"]]
    assert any("predicted" in name for name in latency_names)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/plans/{rec}/"),
        ("post", "/plans/workloads/{workload}/"),
        ("get", "/manifests/plans/{rec}/options/1/"),
        ("get", "/manifests/plans/{rec}/options/1/bundle.zip"),
        ("get", "/api/v1/recommendations/{rec}/"),
        ("post", "/api/v1/workloads/{workload}/recommendations/"),
        ("get", "/api/v1/recommendations/{rec}/manifests.zip"),
    ],
)
def test_another_teams_plan_is_404(world: TeamWorld, method: str, path: str) -> None:
    bobs = Recommendation.objects.create(workload=world.workload_b, inputs=world.workload_b.to_document())
    recommendation_compute(recommendation_id=bobs.pk)
    url = path.format(rec=bobs.pk, workload=world.workload_b.pk)
    client = world.api_for(world.alice) if url.startswith("/api/") else world.client_for(world.alice)

    response = getattr(client, method)(url)

    assert response.status_code == 404
    assert Recommendation.objects.filter(workload=world.workload_b).count() == 1


def test_viewer_cannot_start_a_plan_but_can_read_one(world: TeamWorld, planned: Recommendation) -> None:
    assert (
        world.api_for(world.victor)
        .post(f"/api/v1/workloads/{world.workload_a.pk}/recommendations/")
        .status_code
        == 403
    )
    assert world.client_for(world.victor).post(f"/plans/workloads/{world.workload_a.pk}/").status_code == 403
    assert world.client_for(world.victor).get(f"/plans/{planned.pk}/").status_code == 200
