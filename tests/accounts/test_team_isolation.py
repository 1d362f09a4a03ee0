"""A user sees only their own teams' objects: another team's workload answers 404 everywhere, and a viewer
changes nothing. Endpoint by endpoint, pages and API."""

from __future__ import annotations

import io
from typing import Any

import pytest

from apps.workloads.models import Workload
from tests.conftest import TeamWorld
from tests.factories import workload_document

PAGE_ENDPOINTS = [
    ("get", "/workloads/{id}/"),
    ("get", "/workloads/{id}/edit/"),
    ("post", "/workloads/{id}/edit/"),
    ("post", "/workloads/{id}/delete/"),
    ("get", "/workloads/{id}/workload.json"),
]

API_ENDPOINTS = [
    ("get", "/api/v1/workloads/{id}/"),
    ("put", "/api/v1/workloads/{id}/"),
    ("patch", "/api/v1/workloads/{id}/"),
    ("delete", "/api/v1/workloads/{id}/"),
    ("post", "/api/v1/workloads/{id}/traffic/"),
]


def _api_call(client: Any, method: str, url: str) -> Any:
    if method == "post" and url.endswith("/traffic/"):
        upload = io.BytesIO(b"hour,requests\n" + b"".join(f"{h},3600\n".encode() for h in range(24)))
        upload.name = "traffic.csv"
        return client.post(url, {"file": upload}, format="multipart")
    if method in {"put", "patch"}:
        return getattr(client, method)(url, workload_document(name="stolen"), format="json")
    return getattr(client, method)(url)


@pytest.mark.parametrize(("method", "path"), PAGE_ENDPOINTS)
def test_pages_answer_404_for_another_teams_workload(world: TeamWorld, method: str, path: str) -> None:
    client = world.client_for(world.alice)

    response = getattr(client, method)(path.format(id=world.workload_b.pk))

    assert response.status_code == 404
    assert Workload.objects.get(pk=world.workload_b.pk).name == "bob-chat"


@pytest.mark.parametrize(("method", "path"), API_ENDPOINTS)
def test_api_answers_404_for_another_teams_workload(world: TeamWorld, method: str, path: str) -> None:
    response = _api_call(world.api_for(world.alice), method, path.format(id=world.workload_b.pk))

    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "detail": "Not found.",
        "errors": [],
        "request_id": response["X-Request-ID"],
    }
    assert (
        Workload.objects.get(pk=world.workload_b.pk).hourly_requests_per_s
        == world.workload_b.hourly_requests_per_s
    )


def test_api_list_shows_only_own_teams(world: TeamWorld) -> None:
    names = [w["name"] for w in world.api_for(world.alice).get("/api/v1/workloads/").json()["results"]]

    assert names == ["alice-chat"]


def test_page_list_shows_only_own_teams(world: TeamWorld) -> None:
    html = world.client_for(world.alice).get("/workloads/").content.decode()

    assert "alice-chat" in html
    assert "bob-chat" not in html


def test_creating_in_another_team_is_refused(world: TeamWorld) -> None:
    response = world.api_for(world.alice).post(
        "/api/v1/workloads/", {**workload_document(), "team": "team-b"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "team"
    assert not Workload.objects.filter(team=world.team_b, name="support-chat").exists()


@pytest.mark.parametrize(("method", "path"), [e for e in API_ENDPOINTS if e[0] != "get"])
def test_viewer_cannot_change_through_the_api(world: TeamWorld, method: str, path: str) -> None:
    before = Workload.objects.get(pk=world.workload_a.pk)

    response = _api_call(world.api_for(world.victor), method, path.format(id=world.workload_a.pk))

    assert response.status_code == 403
    after = Workload.objects.get(pk=world.workload_a.pk)
    assert (after.name, after.hourly_requests_per_s) == (before.name, before.hourly_requests_per_s)


def test_viewer_cannot_create_through_the_api(world: TeamWorld) -> None:
    response = world.api_for(world.victor).post(
        "/api/v1/workloads/", {**workload_document(), "team": "team-a"}, format="json"
    )

    assert response.status_code == 403
    assert Workload.objects.filter(team=world.team_a).count() == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/workloads/{id}/edit/"),
        ("post", "/workloads/{id}/edit/"),
        ("post", "/workloads/{id}/delete/"),
    ],
)
def test_viewer_cannot_change_through_pages(world: TeamWorld, method: str, path: str) -> None:
    response = getattr(world.client_for(world.victor), method)(path.format(id=world.workload_a.pk))

    assert response.status_code == 403
    assert Workload.objects.filter(pk=world.workload_a.pk, name="alice-chat").exists()


def test_viewer_cannot_open_the_create_page(world: TeamWorld) -> None:
    assert world.client_for(world.victor).get("/workloads/new/").status_code == 403


def test_viewer_can_read(world: TeamWorld) -> None:
    assert world.client_for(world.victor).get(f"/workloads/{world.workload_a.pk}/").status_code == 200
    assert world.api_for(world.victor).get(f"/api/v1/workloads/{world.workload_a.pk}/").status_code == 200


def test_anonymous_is_sent_to_sign_in_and_refused_by_the_api(world: TeamWorld) -> None:
    from django.test import Client
    from rest_framework.test import APIClient

    page = Client().get(f"/workloads/{world.workload_a.pk}/")
    api = APIClient().get(f"/api/v1/workloads/{world.workload_a.pk}/")

    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/")
    assert api.status_code == 401
