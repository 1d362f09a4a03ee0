"""The workload document's optional keys from a request log (histograms, burstiness, weekday and weekend curves)
and for prefix caching: accepted when right, a 400 naming the field when not."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.conftest import TeamWorld
from tests.factories import workload_document

HISTOGRAM = {"edges": [64, 128, 256, 512, 1024, 2048, 4096, 8192], "counts": [5, 20, 40, 20, 10, 4, 1]}


def full_document() -> dict[str, Any]:
    document = workload_document(name="with-extras")
    document["traffic"].update(
        burstiness_cv=[1.3] * 24,
        weekday_hourly_requests_per_s=[1.2] * 24,
        weekend_hourly_requests_per_s=[0.4] * 24,
    )
    document["prompt_tokens"] = {"mean": 800, "p50": 600, "p95": 2400, "max": 8000, "histogram": HISTOGRAM}
    document["prefix"] = {"shared_prefix_tokens": 400, "multi_turn_reuse_fraction": 0.6}
    return document


def test_a_document_with_every_new_key_round_trips(world: TeamWorld) -> None:
    api = world.api_for(world.alice)

    created = api.post("/api/v1/workloads/", {**full_document(), "team": "team-a"}, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["traffic"]["burstiness_cv"] == [1.3] * 24
    assert body["traffic"]["weekend_hourly_requests_per_s"] == [0.4] * 24
    assert body["prompt_tokens"]["histogram"] == HISTOGRAM
    assert body["prefix"] == {"shared_prefix_tokens": 400, "multi_turn_reuse_fraction": 0.6}
    download = world.client_for(world.alice).get(f"/workloads/{body['id']}/workload.json").json()
    assert download["prefix"] == body["prefix"]
    assert download["traffic"] == body["traffic"]


def test_one_burstiness_value_stands_for_every_hour(world: TeamWorld) -> None:
    document = workload_document(name="one-cv")
    document["traffic"]["burstiness_cv"] = 2.5

    response = world.api_for(world.alice).post(
        "/api/v1/workloads/", {**document, "team": "team-a"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["traffic"]["burstiness_cv"] == 2.5


def _with(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(full_document())
    *parents, leaf = path.split(".")
    node = document
    for key in parents:
        node = node[key]
    if value is DROP:
        del node[leaf]
    else:
        node[leaf] = value
    return document


DROP = object()
HIST = "prompt_tokens.histogram"
CASES = [
    ("counts one short", f"{HIST}.counts", HISTOGRAM["counts"][:-1], f"{HIST}.counts", "Expected 7 counts"),
    ("edges not increasing", f"{HIST}.edges", [64, 128, 128, 512, 1024, 2048, 4096, 8192], f"{HIST}.edges", "edges[2] = 128 is not above edges[1] = 128"),
    ("all counts zero", f"{HIST}.counts", [0] * 7, f"{HIST}.counts", "At least one count"),
    ("negative count", f"{HIST}.counts", [5, -1, 40, 20, 10, 4, 1], f"{HIST}.counts[1]", "greater than or equal to 0"),
    ("fractional count", f"{HIST}.counts", [5, 1.5, 40, 20, 10, 4, 1], f"{HIST}.counts[1]", "integer"),
    ("NaN edge", f"{HIST}.edges", [float("nan"), 128, 256, 512, 1024, 2048, 4096, 8192], f"{HIST}.edges[0]", "finite"),
    ("unknown histogram key", f"{HIST}.bins", 10, f"{HIST}.bins", "Unknown field"),
    ("max outside the last bin", "prompt_tokens.max", 9000, "prompt_tokens.max", "outside the histogram's last non-empty bin [4096, 8192)"),
    ("p50 below the histogram", "prompt_tokens.p50", 10, "prompt_tokens.p50", "outside the histogram's non-empty bins [64, 8192)"),
    ("23 burstiness values", "traffic.burstiness_cv", [1.0] * 23, "traffic.burstiness_cv", "Expected 24 hourly values"),
    ("negative burstiness", "traffic.burstiness_cv", [1.0] * 23 + [-0.5], "traffic.burstiness_cv[23]", "greater than or equal to 0"),
    ("absurd burstiness", "traffic.burstiness_cv", 1e6, "traffic.burstiness_cv", "less than or equal to 100"),
    ("burstiness as text", "traffic.burstiness_cv", "high", "traffic.burstiness_cv", "Give one coefficient of variation"),
    ("weekday without weekend", "traffic.weekend_hourly_requests_per_s", DROP, "traffic.weekend_hourly_requests_per_s", "give both curves or neither"),
    ("weekend of 12 hours", "traffic.weekend_hourly_requests_per_s", [1.0] * 12, "traffic.weekend_hourly_requests_per_s", "Expected 24"),
    ("reuse above 1", "prefix.multi_turn_reuse_fraction", 1.2, "prefix.multi_turn_reuse_fraction", "less than or equal to 1"),
    ("prefix longer than the median prompt", "prefix.shared_prefix_tokens", 700, "prefix.shared_prefix_tokens", "longer than the median prompt (600)"),
    ("prefix as text", "prefix.shared_prefix_tokens", "400", "prefix.shared_prefix_tokens", "integer"),
    ("unknown prefix key", "prefix.cached", True, "prefix.cached", "Unknown field"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "path", "value", "field", "message"), CASES, ids=[c[0] for c in CASES])
def test_wrong_values_are_refused_naming_the_field(
    world: TeamWorld, label: str, path: str, value: Any, field: str, message: str
) -> None:
    body = json.dumps({**_with(path, value), "team": "team-a"})  # NaN written as JSON's NaN token

    response = world.api_for(world.alice).post("/api/v1/workloads/", body, content_type="application/json")

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert errors[0]["field"] == field, errors
    assert message in errors[0]["message"]
