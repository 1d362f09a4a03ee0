"""Guessing passwords, hammering the API and old tokens: lockouts (django-axes), throttles and token expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import TeamWorld
from tests.factories import PASSWORD


@pytest.fixture(autouse=True)
def _fast_lockout(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _token_request(client: APIClient, username: str, password: str) -> Any:
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_the_token_endpoint_locks_out_after_repeated_failures(world: TeamWorld) -> None:
    client = APIClient()

    failures = [_token_request(client, "alice", f"guess-{i}").status_code for i in range(5)]
    locked = _token_request(client, "alice", PASSWORD)  # even the right password, while locked out

    assert failures == [400, 400, 400, 400, 429]
    assert locked.status_code == 429
    body = locked.json()
    assert body["status"] == 429
    assert "Too many failed sign-ins" in body["detail"]
    assert "15 minutes" in body["detail"]
    assert body["request_id"] == locked["X-Request-ID"]
    assert int(locked["Retry-After"]) == 15 * 60


def test_the_login_page_locks_out_after_repeated_failures(world: TeamWorld) -> None:
    client = Client()

    statuses = [
        client.post("/accounts/login/", {"username": "alice", "password": f"guess-{i}"}).status_code
        for i in range(5)
    ]
    locked = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert statuses == [200, 200, 200, 200, 429]
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_successful_sign_in_clears_the_failures(world: TeamWorld) -> None:
    client = APIClient()
    for i in range(4):
        _token_request(client, "alice", f"guess-{i}")

    assert _token_request(client, "alice", PASSWORD).status_code == 200
    statuses = [_token_request(client, "alice", f"again-{i}").status_code for i in range(4)]

    assert statuses == [400, 400, 400, 400]


def test_a_token_works_until_it_expires_then_a_new_one_is_issued(world: TeamWorld, settings: Any) -> None:
    issued = _token_request(APIClient(), "alice", PASSWORD)
    assert issued.status_code == 200, issued.content
    key = issued.json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/me/").status_code == 200

    Token.objects.filter(key=key).update(
        created=timezone.now() - settings.API_TOKEN_TTL - timedelta(seconds=1)
    )
    expired = client.get("/api/v1/me/")

    assert expired.status_code == 401
    assert "Token expired" in expired.json()["detail"]
    renewed = _token_request(client, "alice", PASSWORD).json()  # still sending the expired token
    assert renewed["token"] != key
    client.credentials(HTTP_AUTHORIZATION=f"Token {renewed['token']}")
    assert client.get("/api/v1/me/").status_code == 200


def test_a_token_can_be_revoked(world: TeamWorld) -> None:
    key = _token_request(APIClient(), "alice", PASSWORD).json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    assert client.delete("/api/v1/auth/token/").status_code == 204
    assert client.get("/api/v1/me/").status_code == 401


def test_asking_twice_returns_the_same_live_token_with_its_expiry(world: TeamWorld, settings: Any) -> None:
    first = _token_request(APIClient(), "alice", PASSWORD).json()
    second = _token_request(APIClient(), "alice", PASSWORD).json()

    assert first == second
    created = Token.objects.get(key=first["token"]).created
    assert first["expires_at"].startswith((created + settings.API_TOKEN_TTL).strftime("%Y-%m-%dT%H:%M"))


def test_an_authenticated_user_is_throttled_per_user(world: TeamWorld, settings: Any) -> None:
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "5/min"}
    alice, bob = world.api_for(world.alice), world.api_for(world.bob)

    statuses = [alice.get("/api/v1/workloads/").status_code for _ in range(6)]

    assert statuses == [200] * 5 + [429]
    throttled = alice.get("/api/v1/workloads/")
    assert throttled.json()["status"] == 429
    assert int(throttled["Retry-After"]) > 0
    assert bob.get("/api/v1/workloads/").status_code == 200  # another user's budget is untouched


def test_anonymous_requests_are_throttled_per_address_without_trusting_x_forwarded_for(
    db: Any, settings: Any
) -> None:
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "anon": "3/min"}
    client = APIClient()

    statuses = [
        client.get("/api/v1/me/", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}").status_code for i in range(4)
    ]  # a client rotating the header it controls

    assert statuses == [401, 401, 401, 429]
    assert APIClient(REMOTE_ADDR="127.0.0.2").get("/api/v1/me/").status_code == 401
