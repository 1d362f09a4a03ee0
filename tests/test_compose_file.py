"""The project's own docker-compose.yml is valid against the Compose specification (the schema vendored for
the manifests), and keeps secrets out of the file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_docker_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads((ROOT / "apps/manifests/schemas/compose-spec.json").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))

    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_full_stack_services_have_healthchecks_and_no_literal_secrets() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]

    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    assert all("healthcheck" in services[name] for name in ("postgres", "redis", "web", "worker"))
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert all(port.startswith("127.0.0.1:") for s in services.values() for port in s.get("ports", []))
    assert {"postgres-data", "redis-data"} <= set(compose["volumes"])
