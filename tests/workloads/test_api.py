from __future__ import annotations

import io

from apps.workloads.models import Workload
from tests.conftest import TeamWorld
from tests.factories import WorkloadFactory, workload_document


def test_create_read_update_delete(world: TeamWorld) -> None:
    api = world.api_for(world.alice)

    created = api.post(
        "/api/v1/workloads/", {**workload_document(name="batch-summaries"), "team": "team-a"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["team"] == "team-a"
    assert body["traffic"]["hourly_requests_per_s"] == workload_document()["traffic"]["hourly_requests_per_s"]
    assert body["constraints"]["min_replicas"] == 1
    assert body["headroom"] == 0.2

    url = body["url"]
    assert api.get(url).json()["name"] == "batch-summaries"

    patched = api.patch(url, {"slo": {"ttft_p95_ms": 500, "itl_p95_ms": 40}}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["slo"] == {"ttft_p95_ms": 500.0, "itl_p95_ms": 40.0}
    assert patched.json()["prompt_tokens"]["p95"] == 2400

    replaced = api.put(url, workload_document(name="batch-summaries", model="qwen2.5-7b"), format="json")
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["model"] == "qwen2.5-7b"

    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_team_is_optional_when_the_user_writes_to_one_team(world: TeamWorld) -> None:
    response = world.api_for(world.alice).post(
        "/api/v1/workloads/", workload_document(name="solo"), format="json"
    )

    assert response.status_code == 201
    assert Workload.objects.get(name="solo").team == world.team_a


def test_list_is_paginated_and_filters_by_name(world: TeamWorld) -> None:
    for index in range(3):
        WorkloadFactory.create(team=world.team_a, name=f"rag-{index}")

    page = world.api_for(world.alice).get("/api/v1/workloads/?name=rag&page_size=2").json()

    assert page["count"] == 3
    assert len(page["results"]) == 2
    assert page["next"] is not None
    assert all(item["name"].startswith("rag-") for item in page["results"])


def test_traffic_import_from_hourly_counts(world: TeamWorld) -> None:
    csv_text = "hour,requests\n" + "".join(f"{hour},{hour * 3600}\n" for hour in range(24))
    upload = io.BytesIO(csv_text.encode())
    upload.name = "counts.csv"

    response = world.api_for(world.alice).post(
        f"/api/v1/workloads/{world.workload_a.pk}/traffic/", {"file": upload}, format="multipart"
    )

    assert response.status_code == 200, response.content
    assert response.json()["traffic"]["hourly_requests_per_s"] == [float(hour) for hour in range(24)]


def test_traffic_import_rejects_a_bad_file_naming_the_field(world: TeamWorld) -> None:
    upload = io.BytesIO(b"hour,requests\n0,10\n")
    upload.name = "short.csv"
    before = world.workload_a.hourly_requests_per_s

    response = world.api_for(world.alice).post(
        f"/api/v1/workloads/{world.workload_a.pk}/traffic/", {"file": upload}, format="multipart"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "file"
    assert "hours without a count" in response.json()["errors"][0]["message"]
    assert Workload.objects.get(pk=world.workload_a.pk).hourly_requests_per_s == before


def test_token_authentication(world: TeamWorld) -> None:
    from rest_framework.test import APIClient

    from tests.factories import PASSWORD

    client = APIClient()
    token = client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json"
    ).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    me = client.get("/api/v1/me/").json()

    assert me["username"] == "alice"
    assert me["teams"] == [{"team": "team-a", "team_name": world.team_a.name, "role": "owner"}]


def test_openapi_schema_generates_without_warnings(db: None) -> None:
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_interactive_docs_are_served_offline(world: TeamWorld) -> None:
    html = world.client_for(world.alice).get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()
