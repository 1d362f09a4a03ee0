"""Malformed workload bodies: each gets a 400 naming the field, and nothing is saved."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from apps.workloads.models import Workload
from tests.conftest import TeamWorld
from tests.factories import workload_document


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(document: dict[str, Any]) -> dict[str, Any]:
        document = copy.deepcopy(document)
        *parents, leaf = path.split(".")
        node = document
        for key in parents:
            node = node[key]
        node[leaf] = value
        return document

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(document: dict[str, Any]) -> dict[str, Any]:
        document = copy.deepcopy(document)
        *parents, leaf = path.split(".")
        node = document
        for key in parents:
            node = node[key]
        del node[leaf]
        return document

    return mutate


RATES = "traffic.hourly_requests_per_s"
MALFORMED: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str]] = [
    ("23 hourly values", _set(RATES, [1.0] * 23), RATES),
    ("25 hourly values", _set(RATES, [1.0] * 25), RATES),
    ("negative rate", _set(RATES, [1.0] * 23 + [-1.0]), f"{RATES}[23]"),
    ("NaN rate", _set(RATES, [float("nan")] + [1.0] * 23), f"{RATES}[0]"),
    ("infinite rate", _set(RATES, [float("inf")] + [1.0] * 23), f"{RATES}[0]"),
    ("string rate", _set(RATES, ["fast"] + [1.0] * 23), f"{RATES}[0]"),
    ("all-zero traffic", _set(RATES, [0.0] * 24), RATES),
    ("absurd rate", _set(RATES, [1e9] * 24), f"{RATES}[0]"),
    ("traffic not a list", _set(RATES, "1,2,3"), RATES),
    ("p50 above p95", _set("prompt_tokens.p50", 3000), "prompt_tokens.p50"),
    (
        "max below mean",
        _set("output_tokens", {"mean": 900, "p50": 150, "p95": 600, "max": 800}),
        "output_tokens.max",
    ),
    ("max below p95", _set("output_tokens.max", 500), "output_tokens.max"),
    ("zero-length prompts", _set("prompt_tokens.mean", 0), "prompt_tokens.mean"),
    ("absurd prompt size", _set("prompt_tokens.max", 10**12), "prompt_tokens.max"),
    ("context overflow", _set("prompt_tokens.max", 131_000), "prompt_tokens.max"),
    ("boolean as number", _set("slo.ttft_p95_ms", True), "slo.ttft_p95_ms"),
    ("negative SLO", _set("slo.itl_p95_ms", -5), "slo.itl_p95_ms"),
    ("unknown model", _set("model", "gpt-17-ultra"), "model"),
    (
        "unknown quantization",
        _set("quality.allowed_quantizations", ["bf16", "int3"]),
        "quality.allowed_quantizations",
    ),
    ("empty quality bar", _set("quality.allowed_quantizations", []), "quality.allowed_quantizations"),
    ("unknown GPU", _set("constraints.gpus", ["h900"]), "constraints.gpus"),
    ("unknown provider", _set("constraints.providers", ["nowhere-cloud"]), "constraints.providers"),
    (
        "fractional GPU count",
        _set("constraints.max_gpus_per_replica", 1.5),
        "constraints.max_gpus_per_replica",
    ),
    ("spot as string", _set("constraints.spot", "yes"), "constraints.spot"),
    ("missing slo", _drop("slo"), "slo"),
    ("missing output tokens", _drop("output_tokens"), "output_tokens"),
    ("missing p95 in a distribution", _drop("prompt_tokens.p95"), "prompt_tokens.p95"),
    ("unknown top-level key", _set("colour", "blue"), "colour"),
    ("unknown nested key", _set("slo.ttft_p99_ms", 900), "slo.ttft_p99_ms"),
    ("name with a newline", _set("name", "chat\nbot"), "name"),
    ("name as a number", _set("name", 42), "name"),
    ("prompt tokens not an object", _set("prompt_tokens", [800, 600]), "prompt_tokens"),
]


@pytest.mark.parametrize(("case", "mutate", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_body_gets_400_naming_the_field_and_saves_nothing(
    world: TeamWorld, case: str, mutate: Callable[[dict[str, Any]], dict[str, Any]], field: str
) -> None:
    before = Workload.objects.count()
    body = json.dumps(mutate({**workload_document(), "team": "team-a"}), allow_nan=True)

    response = world.api_for(world.alice).post("/api/v1/workloads/", body, content_type="application/json")

    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["status"] == 400
    assert field in [error["field"] for error in payload["errors"]], payload
    assert all(error["message"] for error in payload["errors"])
    assert Workload.objects.count() == before


def test_malformed_update_changes_nothing(world: TeamWorld) -> None:
    before = world.workload_a.hourly_requests_per_s
    body = workload_document(name="alice-chat", traffic={"hourly_requests_per_s": [1.0] * 23})

    response = world.api_for(world.alice).put(
        f"/api/v1/workloads/{world.workload_a.pk}/", body, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == RATES
    assert Workload.objects.get(pk=world.workload_a.pk).hourly_requests_per_s == before


def test_ten_megabyte_body_is_refused_naming_the_body(world: TeamWorld) -> None:
    body = json.dumps({**workload_document(), "team": "team-a", "name": "x" * (10 * 1024 * 1024)})

    response = world.api_for(world.alice).post("/api/v1/workloads/", body, content_type="application/json")

    assert response.status_code == 413
    (error,) = response.json()["errors"]
    assert error["field"] == "body"
    assert error["message"] == f"Request body is {len(body)} bytes; the limit is 1048576 bytes."
    assert not Workload.objects.filter(team=world.team_a).exclude(pk=world.workload_a.pk).exists()


def test_invalid_json_is_refused_naming_the_body(world: TeamWorld) -> None:
    response = world.api_for(world.alice).post(
        "/api/v1/workloads/", "{not json", content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_body_that_is_not_an_object_is_refused(world: TeamWorld) -> None:
    response = world.api_for(world.alice).post("/api/v1/workloads/", [1, 2], format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_duplicate_name_in_team_is_refused(world: TeamWorld) -> None:
    response = world.api_for(world.alice).post(
        "/api/v1/workloads/", {**workload_document(name="alice-chat"), "team": "team-a"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"
