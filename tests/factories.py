from __future__ import annotations

import copy
from typing import Any

import factory
from django.contrib.auth.models import User
from factory.django import DjangoModelFactory

from apps.accounts.models import Membership, Role, Team
from apps.catalog.models import ModelArchitecture
from apps.workloads.models import Workload

PASSWORD = "correct-horse-battery-staple"

WORKLOAD_DOCUMENT: dict[str, Any] = {
    "name": "support-chat",
    "model": "llama-3.1-8b",
    "traffic": {"hourly_requests_per_s": [1.0] * 8 + [5.0] * 10 + [2.0] * 6},
    "prompt_tokens": {"mean": 800, "p50": 600, "p95": 2400, "max": 8000},
    "output_tokens": {"mean": 200, "p50": 150, "p95": 600, "max": 1024},
    "slo": {"ttft_p95_ms": 800, "itl_p95_ms": 60},
    "quality": {"allowed_quantizations": ["bf16", "fp8", "awq-int4"]},
    "constraints": {"gpus": [], "providers": [], "max_gpus_per_replica": 8, "spot": False, "min_replicas": 1},
}


def workload_document(**overrides: Any) -> dict[str, Any]:
    document = copy.deepcopy(WORKLOAD_DOCUMENT)
    document.update(overrides)
    return document


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)


class TeamFactory(DjangoModelFactory[Team]):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class MembershipFactory(DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class WorkloadFactory(DjangoModelFactory[Workload]):
    class Meta:
        model = Workload

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"workload-{n}")
    model = factory.LazyFunction(lambda: ModelArchitecture.objects.get(slug="llama-3.1-8b"))
    hourly_requests_per_s = factory.LazyFunction(
        lambda: list(WORKLOAD_DOCUMENT["traffic"]["hourly_requests_per_s"])
    )
    prompt_tokens = factory.LazyFunction(lambda: dict(WORKLOAD_DOCUMENT["prompt_tokens"]))
    output_tokens = factory.LazyFunction(lambda: dict(WORKLOAD_DOCUMENT["output_tokens"]))
    ttft_p95_ms = 800.0
    itl_p95_ms = 60.0
    allowed_quantizations = factory.LazyFunction(lambda: ["bf16", "fp8", "awq-int4"])
    constraints = factory.LazyFunction(lambda: dict(WORKLOAD_DOCUMENT["constraints"]))
    options = factory.LazyFunction(dict)
