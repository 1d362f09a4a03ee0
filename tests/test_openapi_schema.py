"""The OpenAPI schema says what the API answers: paginated envelopes, the error object on every operation, slug
patterns that real slugs match, enums and bounds on query values. (scripts/fuzz_api.py checks the responses
against it at run time.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from rest_framework.test import APIClient

PAGINATED = [
    "/api/v1/workloads/",
    "/api/v1/benchmark-runs/",
    "/api/v1/measurements/",
    "/api/v1/recommendations/",
    "/api/v1/workers/",
    "/api/v1/catalog/models/",
]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return dict(response.json())


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


@pytest.mark.parametrize("path", PAGINATED)
def test_lists_are_documented_as_paginated_envelopes(schema: dict[str, Any], path: str) -> None:
    body = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    envelope = _resolve(schema, body)

    assert set(envelope["properties"]) == {"count", "next", "previous", "results"}
    assert envelope["properties"]["results"]["type"] == "array"
    names = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
    assert {"page", "page_size"} <= names


def test_every_operation_documents_the_error_object(schema: dict[str, Any]) -> None:
    for path, method, operation in _operations(schema):
        codes = set(operation["responses"])
        assert {"400", "429"} <= codes, (method, path)
        if "{" in path:
            assert "404" in codes, (method, path)
        if method in {"post", "put", "patch"}:
            assert {"413", "415"} <= codes, (method, path)
        error = operation["responses"]["400"]["content"]["application/json"]["schema"]
        assert set(_resolve(schema, error)["properties"]) == {"status", "detail", "errors", "request_id"}


def test_the_model_slug_pattern_accepts_real_slugs(schema: dict[str, Any]) -> None:
    model = _resolve(schema, {"$ref": "#/components/schemas/ModelArchitectureOut"})
    parameter = next(p for p in schema["paths"]["/api/v1/catalog/models/{slug}/"]["get"]["parameters"])

    for pattern in (model["properties"]["slug"]["pattern"], parameter["schema"]["pattern"]):
        for slug in ("llama-3.1-8b", "qwen2.5-72b", "mistral-7b-v0.3"):
            assert re.fullmatch(pattern.strip("^$"), slug), (pattern, slug)


def test_query_values_carry_their_enums_and_bounds(schema: dict[str, Any]) -> None:
    candidates = schema["paths"]["/api/v1/workloads/{workload_id}/benchmark-candidates/"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in candidates}
    runs = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/benchmark-runs/"]["get"]["parameters"]}
    measurements = {
        p["name"]: p["schema"] for p in schema["paths"]["/api/v1/measurements/"]["get"]["parameters"]
    }

    assert (by_name["isl"]["type"], by_name["isl"]["minimum"]) == ("integer", 1)
    assert by_name["osl"]["minimum"] == 1
    assert by_name["shrink"]["type"] == "boolean"
    assert set(_resolve(schema, runs["status"])["enum"]) == {
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    }
    assert "vllm" in _resolve(schema, measurements["engine"])["enum"]
    assert measurements["representative"]["type"] == "boolean"
