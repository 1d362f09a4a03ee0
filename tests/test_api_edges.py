"""What a careless or hostile client sends never becomes a 500: every refusal under /api/ is the documented JSON
error with a request id that is also in the server log. One test per input class the issue found breaking."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import RequestFactory
from rest_framework.test import APIClient

from advisor.api import exception_handler
from apps.workloads.models import Workload
from tests.benchmarks.conftest import remote_run, result_json
from tests.conftest import TeamWorld
from tests.factories import workload_document


def _assert_error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status
    assert body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    return dict(body)


# ---------------------------------------------------------------------------------------------- NUL, surrogates

FILTERED_LISTS = [
    "/api/v1/workloads/?name={}",
    "/api/v1/workloads/?team={}",
    "/api/v1/benchmark-runs/?accelerator={}",
    "/api/v1/measurements/?model={}",
    "/api/v1/measurements/?quant={}",
    "/api/v1/catalog/gpus/?search={}",
    "/api/v1/catalog/models/?search={}",
    "/api/v1/catalog/offers/?provider={}",
    "/api/v1/catalog/api-prices/?provider={}",
    "/api/v1/catalog/models/{}/",
    "/api/v1/catalog/gpus/{}/",
]


@pytest.mark.parametrize("url", FILTERED_LISTS)
def test_a_nul_byte_in_a_filter_or_path_is_a_400(world: TeamWorld, url: str) -> None:
    response = world.api_for(world.alice).get(url.format("llama%00x"))

    body = _assert_error(response, 400)
    assert "NUL" in body["detail"]


@pytest.mark.parametrize(
    "url",
    ["/workloads/?name=a%00", "/benchmarks/runs/?accelerator=%00", "/catalog/models/?q=%00", "/plans/%00/"],
)
def test_a_nul_byte_on_a_page_is_a_plain_400(world: TeamWorld, url: str) -> None:
    response = world.client_for(world.alice).get(url)

    assert response.status_code == 400
    assert "NUL" in response.content.decode()


@pytest.mark.parametrize("team", ["team\x00a", "team-\ud800"])
def test_a_nul_or_lone_surrogate_in_a_body_string_is_a_400_naming_it(world: TeamWorld, team: str) -> None:
    body = json.dumps({**workload_document(), "team": team})  # json.dumps escapes both as \\u0000 / \\ud800

    response = world.api_for(world.alice).post("/api/v1/workloads/", body, content_type="application/json")

    _assert_error(response, 400, "team")
    assert Workload.objects.filter(team=world.team_a).count() == 1


# ---------------------------------------------------------------------------------------------- JSON shape


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
def test_deeply_nested_json_is_a_400_on_every_json_endpoint(world: TeamWorld, depth: int) -> None:
    remote = remote_run(world)
    body = _nested(depth)
    anonymous = APIClient()
    calls = [
        (world.api_for(world.alice), f"/api/v1/workloads/{world.workload_a.pk}/", "put"),
        (world.api_for(world.alice), "/api/v1/workloads/", "post"),
        (anonymous, "/api/v1/auth/token/", "post"),
        (anonymous, f"/api/v1/benchmark-runs/{remote.run.pk}/results/", "post"),
    ]
    for client, url, method in calls:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {remote.results_token}"} if "results" in url else {}
        response = getattr(client, method)(url, body, content_type="application/json", **headers)
        refusal = _assert_error(response, 400)
        assert "nested deeper" in refusal["detail"].lower() or "Nested deeper" in json.dumps(refusal)


def test_a_400_digit_integer_is_a_400_naming_the_field(world: TeamWorld) -> None:
    document = workload_document()
    raw = json.dumps({**document, "team": "team-a"}).replace(
        '"ttft_p95_ms": 800', '"ttft_p95_ms": ' + "9" * 400
    )
    assert "9" * 400 in raw

    response = world.api_for(world.alice).post("/api/v1/workloads/", raw, content_type="application/json")

    _assert_error(response, 400, "body")


@pytest.mark.parametrize(
    ("field", "value"),
    [("slo.ttft_p95_ms", 10**20), ("headroom", -(10**19)), ("constraints.min_replicas", 10**18)],
)
def test_huge_integers_are_refused_naming_the_field(world: TeamWorld, field: str, value: int) -> None:
    document: dict[str, Any] = {**workload_document(), "team": "team-a"}
    *parents, leaf = field.split(".")
    node = document
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value

    response = world.api_for(world.alice).post("/api/v1/workloads/", document, format="json")

    _assert_error(response, 400, field)


def test_nan_in_a_posted_result_is_a_400_naming_the_field(world: TeamWorld) -> None:
    remote = remote_run(world)
    result = result_json()
    result["levels"][1]["ttft_ms"]["p95"] = float("nan")

    response = APIClient().post(
        f"/api/v1/benchmark-runs/{remote.run.pk}/results/",
        json.dumps(result),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {remote.results_token}",
    )

    _assert_error(response, 400, "levels[1].ttft_ms.p95")


# ---------------------------------------------------------------------------------------------- sizes


def test_a_body_over_the_limit_is_a_413_with_its_real_size(world: TeamWorld) -> None:
    response = world.api_for(world.alice).post(
        "/api/v1/workloads/", "{}", content_type="application/json", CONTENT_LENGTH=str(5 * 1024 * 1024)
    )

    body = _assert_error(response, 413, "body")
    assert body["detail"] == "Request body is 5242880 bytes; the limit is 1048576 bytes."


def test_a_result_over_its_own_limit_is_a_413(world: TeamWorld) -> None:
    remote = remote_run(world)

    response = APIClient().post(
        f"/api/v1/benchmark-runs/{remote.run.pk}/results/",
        "{}",
        content_type="application/json",
        CONTENT_LENGTH=str(65 * 1024 * 1024),
        HTTP_AUTHORIZATION=f"Bearer {remote.results_token}",
    )

    body = _assert_error(response, 413, "body")
    assert body["detail"] == "Request body is 68157440 bytes; the limit is 67108864 bytes."


def test_a_multipart_field_over_the_limit_names_its_size_not_minus_one(settings: Any) -> None:
    request = RequestFactory().post("/api/v1/workloads/1/traffic/", {"note": "x" * 100})
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10

    response = exception_handler(RequestDataTooBig("too big"), {"request": request})

    assert response is not None
    assert response.status_code == 413
    # Django counts a multipart body's fields, not its files, towards the limit: the body's length would mislead.
    assert response.data["detail"] == (
        "Request body is too large; the limit is 10 bytes. Files do not count: the form fields beside them are "
        "over it."
    )
    assert "-1" not in response.data["detail"]


# ---------------------------------------------------------------------------------------------- query values


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("isl=-5", "isl"),
        ("osl=0", "osl"),
        ("isl=1e30", "isl"),
        ("isl=" + "9" * 400, "isl"),
        ("shrink=maybe", "shrink"),
    ],
)
def test_benchmark_candidates_refuse_bad_lengths(world: TeamWorld, query: str, field: str) -> None:
    response = world.api_for(world.alice).get(
        f"/api/v1/workloads/{world.workload_a.pk}/benchmark-candidates/?{query}"
    )

    _assert_error(response, 400, field)


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/benchmark-runs/?status=bogus", "status"),
        ("/api/v1/benchmark-runs/?workload=" + "9" * 30, "workload"),
        ("/api/v1/measurements/?representative=maybe", "representative"),
        ("/api/v1/measurements/?representative=", "representative"),
        ("/api/v1/measurements/?engine=vllm2", "engine"),
        ("/api/v1/measurements/?run=-1", "run"),
        ("/api/v1/catalog/offers/?spot=perhaps", "spot"),
        ("/api/v1/catalog/offers/?max_usd_per_hour=inf", "max_usd_per_hour"),
        ("/api/v1/catalog/offers/?max_usd_per_hour=1e400", "max_usd_per_hour"),
        ("/api/v1/recommendations/?workload=abc", "workload"),
    ],
)
def test_invalid_enum_boolean_and_number_query_values_are_refused(
    world: TeamWorld, url: str, field: str
) -> None:
    _assert_error(world.api_for(world.alice).get(url), 400, field)


@pytest.mark.parametrize(
    "url", ["/api/v1/workloads/99999999999999999999999/", "/api/v1/benchmark-runs/9223372036854775808/"]
)
def test_an_id_past_bigint_in_a_path_is_a_404(world: TeamWorld, url: str) -> None:
    _assert_error(world.api_for(world.alice).get(url), 404)


def test_model_slugs_with_dots_resolve(world: TeamWorld) -> None:
    response = world.api_for(world.alice).get("/api/v1/catalog/models/llama-3.1-8b/")

    assert response.status_code == 200
    assert response.json()["slug"] == "llama-3.1-8b"


# ---------------------------------------------------------------------------------------------- outside DRF


def test_an_unknown_api_url_is_a_json_404(world: TeamWorld) -> None:
    _assert_error(world.api_for(world.alice).get("/api/v1/no-such-thing/"), 404)


def test_a_crash_is_a_json_500_whose_request_id_is_in_the_log(
    world: TeamWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from apps.planner import selectors

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("selector exploded")

    monkeypatch.setattr(selectors, "recommendation_list", broken)
    client = world.api_for(world.alice)
    client.raise_request_exception = False

    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/api/v1/recommendations/")

    body = _assert_error(response, 500)
    assert "selector exploded" not in json.dumps(body)  # no internals to the client
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.request_id == body["request_id"]  # type: ignore[attr-defined]
    assert record.exc_info is not None


def test_a_well_formed_incoming_request_id_is_kept(world: TeamWorld) -> None:
    response = world.api_for(world.alice).get("/api/v1/no-such-thing/", HTTP_X_REQUEST_ID="proxy-id-1234")

    assert response["X-Request-ID"] == "proxy-id-1234"
    assert response.json()["request_id"] == "proxy-id-1234"
