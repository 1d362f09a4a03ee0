"""A plan always ends succeeded or failed with a reason, and nothing non-finite reaches storage or a response.

The first test is the issue's exact scenario: a valid benchmark result with two load levels, for an engine x GPU
family x quantization with no published calibration rows, used to make the leave-one-out error NaN; PostgreSQL
refused the plan JSON, the API answered 500 and the plan stayed "running" for ever.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from advisor.jsonsafe import json_problem
from apps.benchmarks.models import Measurement
from apps.planner import services
from apps.planner.models import PlanStatus, Recommendation
from apps.planner.pipeline import plan as plan_module
from apps.planner.services import recommendation_compute, recommendations_reap_stuck
from apps.planner.tasks import PLAN_TIME_LIMIT_S, recommendation_compute_task
from tests.benchmarks.conftest import remote_run, result_json
from tests.conftest import TeamWorld
from tests.factories import workload_document


def _strict_json(response: Any) -> Any:
    """Parse as a strict client would: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-JSON constant {constant} in {response.request['PATH_INFO']}")

    return json.loads(response.content, parse_constant=refuse)


def _post_two_level_result(world: TeamWorld) -> None:
    remote = remote_run(world)
    response = APIClient().post(
        f"/api/v1/benchmark-runs/{remote.run.pk}/results/",
        json.dumps(result_json()),  # two levels: concurrency 1 and 4
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {remote.results_token}",
    )
    assert response.status_code == 201, response.content
    assert Measurement.objects.filter(team=world.team_a, engine="vllm", quant="bf16").count() == 2


def test_a_two_level_result_for_an_unpublished_family_never_breaks_the_teams_plans(
    world: TeamWorld, django_capture_on_commit_callbacks: Any
) -> None:
    # given a valid posted result for vllm bf16 on H100 (the published rows are all TensorRT-LLM fp8)
    _post_two_level_result(world)
    api = world.api_for(world.alice)

    # when alice plans, and the task runs as the worker would
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/api/v1/workloads/{world.workload_a.pk}/recommendations/")
    assert len(callbacks) == 1
    recommendation_compute_task(response.json()["id"])

    # then the plan finished, its detail and the list answer strict JSON, and a failure says what to look at
    assert response.status_code == 202, response.content
    detail = api.get(response["Location"])
    assert detail.status_code == 200
    body = _strict_json(detail)
    assert body["status"] in (PlanStatus.SUCCEEDED, PlanStatus.FAILED)
    if body["status"] == PlanStatus.FAILED:  # until calibration handles a key with under 3 points
        assert "vllm" in body["error"]
        assert "GET /api/v1/measurements/?engine=vllm&quant=bf16" in body["error"]
        assert body["result"] is None
    else:
        assert json_problem(body["result"]) is None
    listed = api.get("/api/v1/recommendations/")
    assert listed.status_code == 200
    assert [item["status"] for item in _strict_json(listed)["results"]] == [body["status"]]
    # and the next plan of the same team finishes the same way instead of hanging
    with django_capture_on_commit_callbacks():
        again = api.post(f"/api/v1/workloads/{world.workload_a.pk}/recommendations/")
    recommendation_compute_task(again.json()["id"])
    assert Recommendation.objects.get(pk=again.json()["id"]).status == body["status"]


def test_a_non_finite_number_from_the_planner_fails_the_plan_naming_the_field(
    world: TeamWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_plan = plan_module.plan

    def plan_with_an_overflowing_cost(*args: Any, **kwargs: Any) -> dict[str, Any]:
        result = real_plan(*args, **kwargs)
        result["options"][0]["cost_per_million_tokens_usd"] = math.inf
        return result

    monkeypatch.setattr(services, "plan", plan_with_an_overflowing_cost)
    recommendation = Recommendation.objects.create(
        workload=world.workload_a, inputs=world.workload_a.to_document()
    )

    recommendation_compute(recommendation_id=recommendation.pk)

    recommendation.refresh_from_db()
    assert recommendation.status == PlanStatus.FAILED
    assert "options[0].cost_per_million_tokens_usd: Must be a finite number (got inf)" in recommendation.error
    assert "check traffic.hourly_requests_per_s" in recommendation.error
    assert recommendation.result is None
    assert recommendation.finished_at is not None


def test_a_planner_crash_fails_the_plan_with_a_reason_and_does_not_escape(
    world: TeamWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(team: object) -> list[object]:
        raise RuntimeError("measurements unreadable")

    monkeypatch.setattr(services, "measured_points_for", broken)
    recommendation = Recommendation.objects.create(
        workload=world.workload_a, inputs=world.workload_a.to_document()
    )

    recommendation_compute_task(recommendation.pk)  # returns: the row, not an exception, is the outcome

    recommendation.refresh_from_db()
    assert recommendation.status == PlanStatus.FAILED
    assert "RuntimeError: measurements unreadable" in recommendation.error
    assert f"plan #{recommendation.pk}" in recommendation.error


def test_a_denormal_traffic_rate_is_refused_naming_the_hour(world: TeamWorld) -> None:
    rates = [5e-324] + [1.0] * 23
    body = {**workload_document(traffic={"hourly_requests_per_s": rates}), "team": "team-a"}

    response = world.api_for(world.alice).post("/api/v1/workloads/", body, format="json")

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["field"] == "traffic.hourly_requests_per_s[0]"
    assert "at least 0.0001 requests/s" in error["message"]
    assert "5e-324" in error["message"]


def test_rates_at_the_bounds_are_accepted(world: TeamWorld) -> None:
    rates = [0.0, 1e-4] + [100_000.0] + [1.0] * 21
    body = {**workload_document(traffic={"hourly_requests_per_s": rates}), "team": "team-a"}

    response = world.api_for(world.alice).post("/api/v1/workloads/", body, format="json")

    assert response.status_code == 201, response.json()


def test_a_stored_plan_input_with_a_denormal_rate_ends_finished_not_running(world: TeamWorld) -> None:
    # given inputs that bypassed today's validation (stored before it existed)
    document = world.workload_a.to_document()
    document["traffic"]["hourly_requests_per_s"] = [5e-324] + [0.0] * 23
    recommendation = Recommendation.objects.create(workload=world.workload_a, inputs=document)

    recommendation_compute(recommendation_id=recommendation.pk)

    recommendation.refresh_from_db()
    assert recommendation.status == PlanStatus.FAILED
    assert (
        "traffic.hourly_requests_per_s[0] is 5e-324: an hour has no traffic (0) or at least 0.0001 requests/s"
        in recommendation.error
    )


# ---------------------------------------------------------------------------------------------- beat's sweep


def _plan(world: TeamWorld, *, status: str, age_s: float, **fields: Any) -> Recommendation:
    recommendation = Recommendation.objects.create(
        workload=world.workload_a, inputs=world.workload_a.to_document(), status=status, **fields
    )
    then = timezone.now() - timedelta(seconds=age_s)
    Recommendation.objects.filter(pk=recommendation.pk).update(created_at=then)
    recommendation.refresh_from_db()
    return recommendation


def test_a_plan_running_past_its_time_limit_is_failed_by_the_sweep(world: TeamWorld) -> None:
    now = timezone.now()
    stuck = _plan(
        world,
        status=PlanStatus.RUNNING,
        age_s=600,
        started_at=now - timedelta(seconds=PLAN_TIME_LIMIT_S + 120),
    )
    fresh = _plan(world, status=PlanStatus.RUNNING, age_s=30, started_at=now - timedelta(seconds=30))

    outcome = recommendations_reap_stuck(now=now)

    assert outcome.failed == [stuck.pk]
    stuck.refresh_from_db()
    assert stuck.status == PlanStatus.FAILED
    assert f"its {PLAN_TIME_LIMIT_S} s limit" in stuck.error
    assert "Plan again" in stuck.error
    fresh.refresh_from_db()
    assert fresh.status == PlanStatus.RUNNING


def test_a_plan_whose_message_was_lost_is_sent_once_more_then_failed(
    world: TeamWorld, settings: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PLAN_RESEND_AFTER_S, settings.PLAN_QUEUE_TIMEOUT_S = 300, 1800
    sent: list[int] = []
    monkeypatch.setattr(recommendation_compute_task, "delay", sent.append)
    lost = _plan(world, status=PlanStatus.QUEUED, age_s=400)
    recent = _plan(world, status=PlanStatus.QUEUED, age_s=10)

    with django_capture_on_commit_callbacks(execute=True):
        first = recommendations_reap_stuck()
    with django_capture_on_commit_callbacks(execute=True):
        second = recommendations_reap_stuck()  # the next beat: already sent again, so not again
    Recommendation.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=1900))
    third = recommendations_reap_stuck()

    assert (first.requeued, second.requeued, sent) == ([lost.pk], [], [lost.pk])
    assert third.failed == [lost.pk]
    lost.refresh_from_db()
    assert lost.status == PlanStatus.FAILED
    assert "No planning worker picked this plan up within 1800 s" in lost.error
    recent.refresh_from_db()
    assert (recent.status, recent.resent_at) == (PlanStatus.QUEUED, None)


def test_the_plan_list_reads_the_best_option_without_loading_plans(world: TeamWorld) -> None:
    recommendation = Recommendation.objects.create(
        workload=world.workload_a, inputs=world.workload_a.to_document()
    )
    recommendation_compute(recommendation_id=recommendation.pk)
    recommendation.refresh_from_db()
    assert recommendation.status == PlanStatus.SUCCEEDED
    api = world.api_for(world.alice)

    with CaptureQueriesContext(connection) as queries:
        listed = api.get("/api/v1/recommendations/").json()

    assert listed["results"][0]["best"]["engine"] == recommendation.options[0]["engine"]
    assert listed["results"][0]["best"]["monthly_cost_usd"] == recommendation.options[0]["monthly_cost_usd"]
    selects = [q["sql"] for q in queries.captured_queries if "planner_recommendation" in q["sql"]]
    assert selects
    assert all('"planner_recommendation"."result"' not in sql for sql in selects)
    assert all('"planner_recommendation"."inputs"' not in sql for sql in selects)
