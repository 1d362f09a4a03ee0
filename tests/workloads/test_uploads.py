"""Uploads are refused before their body is read when the sender may not write or the body is over the cap.

The live-server tests send only the request's headers, announcing a large body, and wait for the answer: a
server that tried to read the body would wait for bytes that never come, and the test would time out."""

from __future__ import annotations

import http.client
import io
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from apps.accounts.models import Role
from apps.workloads.models import Workload
from tests.conftest import TeamWorld
from tests.factories import MembershipFactory, TeamFactory, UserFactory, WorkloadFactory
from tests.workloads.test_log_import import AZURE

FIFTY_MB = 50 * 1024 * 1024
MULTIPART = "multipart/form-data; boundary=----advisor"
OUTSIDE = "is outside 2000-01-01..2099-12-31 as seconds or milliseconds since 1970-01-01 UTC"


def headers_only(base_url: str, path: str, headers: dict[str, str], length: int) -> tuple[int, bytes]:
    """POST the headers of a `length`-byte request, none of its body, and return the answer."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=15)
    try:
        connection.putrequest("POST", path)
        for name, value in {**headers, "Content-Length": str(length)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def people(transactional_db: None) -> dict[str, Any]:
    from apps.catalog.services import catalog_load

    catalog_load()
    team = TeamFactory.create(slug="team-a")
    alice, victor = UserFactory.create(username="alice"), UserFactory.create(username="victor")
    MembershipFactory.create(team=team, user=alice, role=Role.OWNER)
    MembershipFactory.create(team=team, user=victor, role=Role.VIEWER)
    workload = WorkloadFactory.create(team=team, name="chat")

    def session(user: Any) -> str:
        client = Client()
        client.force_login(user)  # sign-in itself is tested in tests/accounts/test_sign_in.py
        return f"sessionid={client.cookies['sessionid'].value}"

    return {
        "workload": workload,
        "viewer_token": f"Token {Token.objects.create(user=victor).key}",
        "owner_token": f"Token {Token.objects.create(user=alice).key}",
        "viewer_session": session(victor),
        "owner_session": session(alice),
    }


def test_a_viewers_upload_is_refused_before_its_body_is_read(
    live_server: Any, people: dict[str, Any]
) -> None:
    workload_id = people["workload"].pk
    token, cookie = {"Authorization": people["viewer_token"]}, {"Cookie": people["viewer_session"]}
    cases = [
        (
            "/api/v1/workloads/import-log/?name=x&model=llama-3.1-8b&team=team-a",
            {**token, "Content-Type": "text/csv"},
        ),
        (
            "/api/v1/workloads/import-log/?name=x&model=llama-3.1-8b&team=team-a",
            {**cookie, "Content-Type": MULTIPART},
        ),
        (f"/api/v1/workloads/{workload_id}/traffic/", {**token, "Content-Type": MULTIPART}),
        (f"/api/v1/workloads/{workload_id}/traffic/", {**cookie, "Content-Type": MULTIPART}),
        ("/workloads/import-log/", {**cookie, "Content-Type": MULTIPART}),
        ("/workloads/new/", {**cookie, "Content-Type": MULTIPART}),
        (f"/workloads/{workload_id}/edit/", {**cookie, "Content-Type": MULTIPART}),
    ]
    for path, headers in cases:
        status, _ = headers_only(live_server.url, path, headers, FIFTY_MB)
        assert status == 403, path


def test_an_upload_over_the_cap_is_refused_before_its_body_is_read(
    live_server: Any, people: dict[str, Any]
) -> None:
    token, cookie = {"Authorization": people["owner_token"]}, {"Cookie": people["owner_session"]}
    over = 200 * 1024 * 1024  # the default cap is 100 MiB

    status, body = headers_only(
        live_server.url,
        "/api/v1/workloads/import-log/?name=x&model=llama-3.1-8b",
        {**token, "Content-Type": "text/csv"},
        over,
    )
    assert status == 413
    assert (
        f"Request body is {over} bytes; the limit is {100 * 1024 * 1024} bytes (UPLOAD_MAX_BYTES)"
        in body.decode()
    )

    status, body = headers_only(
        live_server.url, "/workloads/import-log/", {**cookie, "Content-Type": MULTIPART}, over
    )
    assert status == 413
    assert "the limit is 104857600 bytes (UPLOAD_MAX_BYTES)" in body.decode()


def test_an_owners_upload_through_the_live_server_is_imported(
    live_server: Any, people: dict[str, Any]
) -> None:
    address = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)
    connection.request(
        "POST",
        "/api/v1/workloads/import-log/?name=live&model=llama-3.1-8b",
        body=AZURE,
        headers={"Authorization": people["owner_token"], "Content-Type": "text/csv"},
    )
    response = connection.getresponse()

    assert response.status == 201, response.read()
    assert Workload.objects.get(name="live").import_summary["format"] == "azure"


def test_session_uploads_still_need_the_csrf_token(world: TeamWorld) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.alice)
    client.get("/workloads/import-log/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    url = "/api/v1/workloads/import-log/?name={}&model=llama-3.1-8b&team=team-a"

    refused = client.post(url.format("no-token"), AZURE, content_type="text/csv")
    accepted = client.post(url.format("with-token"), AZURE, content_type="text/csv", HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403
    assert "CSRF Failed" in refused.json()["detail"]
    assert accepted.status_code == 201, accepted.content
    counts = io.BytesIO(("hour,requests\n" + "".join(f"{h},3600\n" for h in range(24))).encode())
    counts.name = "counts.csv"
    traffic_url = f"/api/v1/workloads/{world.workload_a.pk}/traffic/"
    assert client.post(traffic_url, {"file": counts}).status_code == 403
    counts.seek(0)
    multipart = client.post(traffic_url, {"file": counts}, HTTP_X_CSRFTOKEN=token)
    assert multipart.status_code == 200, multipart.content
    assert multipart.json()["traffic"]["hourly_requests_per_s"] == [1.0] * 24
    upload = io.BytesIO(AZURE)
    upload.name = "trace.csv"
    form = {"log_file": upload, "name": "page", "model": "llama-3.1-8b", "ttft_p95_ms": 800, "itl_p95_ms": 60}
    assert (
        client.post("/workloads/import-log/", {**form, "allowed_quantizations": ["fp8"]}).status_code == 403
    )
    upload.seek(0)
    form["csrfmiddlewaretoken"] = token
    assert (
        client.post("/workloads/import-log/", {**form, "allowed_quantizations": ["fp8"]}).status_code == 302
    )
    assert client.post(f"/workloads/{world.workload_a.pk}/edit/", {}).status_code == 403


def test_form_fields_over_the_memory_limit_are_named_without_a_negative_size(world: TeamWorld) -> None:
    upload = io.BytesIO(b"hour,requests\n")
    upload.name = "counts.csv"

    response = world.api_for(world.alice).post(
        f"/api/v1/workloads/{world.workload_a.pk}/traffic/",
        {"file": upload, "note": "x" * (2 * 1024 * 1024)},
        format="multipart",
    )

    assert response.status_code == 413
    message = response.json()["errors"][0]["message"]
    assert "-1" not in message
    assert "the limit is 1048576 bytes. Files do not count" in message


def test_traffic_csv_defects_are_clear_400s(world: TeamWorld) -> None:
    api = world.api_for(world.alice)
    url = f"/api/v1/workloads/{world.workload_a.pk}/traffic/"
    cases = {
        b'timestamp\n"' + b"x" * (200 * 1024) + b'"\n': "line 2: a cell is longer than 131072 characters",
        b"timestamp\ninf\n": "line 2: 'inf' is not a finite time",
        b"timestamp\n1e20\n": f"line 2: 1e+20 {OUTSIDE}",
        b"0\n" * 1000: f"line 1: 0 {OUTSIDE}",
    }
    for body, message in cases.items():
        upload = io.BytesIO(body)
        upload.name = "traffic.csv"
        response = api.post(url, {"file": upload}, format="multipart")
        assert response.status_code == 400, body[:20]
        assert response.json()["errors"][0] == {"field": "file", "message": message, "code": "invalid"}
        raw = api.post(url, body, content_type="text/csv")
        assert raw.status_code == 400
        assert raw.json()["errors"][0]["message"] == message
