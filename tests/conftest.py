from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import Role, Team
from apps.catalog.services import catalog_load
from apps.workloads.models import Workload
from tests.factories import MembershipFactory, TeamFactory, UserFactory, WorkloadFactory


@pytest.fixture(autouse=True)
def _private_cache(settings: Any, request: pytest.FixtureRequest) -> None:
    """Each test gets its own empty cache, so throttle counters never carry from one test to the next (the
    configured cache is the shared Redis)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> None:
    """Load the shipped catalog once per test session; each test's transaction rolls back its own rows."""
    with django_db_blocker.unblock():
        catalog_load()


@dataclass
class TeamWorld:
    """Two teams: Alice owns team A, Victor views team A, Bob owns team B with Bob's workload."""

    team_a: Team
    team_b: Team
    alice: Any
    victor: Any
    bob: Any
    workload_a: Workload
    workload_b: Workload

    def client_for(self, user: Any) -> Client:
        client = Client()
        client.force_login(user)  # sign-in itself is tested in tests/accounts/test_sign_in.py
        return client

    def api_for(self, user: Any) -> APIClient:
        client = APIClient()
        client.force_authenticate(user=user)
        return client


@pytest.fixture
def world(db: Any) -> TeamWorld:
    team_a, team_b = TeamFactory.create(slug="team-a"), TeamFactory.create(slug="team-b")
    alice, victor, bob = (
        UserFactory.create(username="alice"),
        UserFactory.create(username="victor"),
        UserFactory.create(username="bob"),
    )
    MembershipFactory.create(team=team_a, user=alice, role=Role.OWNER)
    MembershipFactory.create(team=team_a, user=victor, role=Role.VIEWER)
    MembershipFactory.create(team=team_b, user=bob, role=Role.OWNER)
    return TeamWorld(
        team_a=team_a,
        team_b=team_b,
        alice=alice,
        victor=victor,
        bob=bob,
        workload_a=WorkloadFactory.create(team=team_a, name="alice-chat"),
        workload_b=WorkloadFactory.create(team=team_b, name="bob-chat"),
    )
