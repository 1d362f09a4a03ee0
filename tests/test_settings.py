from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from advisor.settings import database_from_url, env_bool


def test_database_url_is_parsed() -> None:
    config = database_from_url("postgres://app:s%40cret@db.internal:6543/advisor")

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"], config["NAME"]) == (
        "app",
        "s@cret",
        "db.internal",
        "6543",
        "advisor",
    )


def test_other_database_schemes_fail_loudly() -> None:
    with pytest.raises(ImproperlyConfigured, match="postgres"):
        database_from_url("mysql://root@localhost/db")


def test_booleans_are_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured):
        env_bool("FLAG", False)


def test_celery_is_configured_for_long_jobs() -> None:
    from django.conf import settings

    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > settings.BENCHMARK_TIME_LIMIT_S


ROOT = Path(__file__).resolve().parent.parent


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines())
    return {
        key.strip(): value.strip()
        for key, value in (p for p in pairs if len(p) == 2)
        if not key.startswith("#")
    }


def _run(code_or_args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # DJANGO_ALLOW_ASYNC_UNSAFE: set by the browser tests for their live server, refused by check --deploy.
    dropped = {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, *code_or_args], env=base | env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_settings_are_production_safe_unless_debug_is_asked_for() -> None:
    probe = (
        "import json, django; from django.conf import settings; django.setup(); print(json.dumps(["
        "settings.DEBUG, settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS, settings.SESSION_COOKIE_SECURE,"
        " settings.CSRF_COOKIE_SECURE]))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "advisor.settings", "SECRET_KEY": "x" * 60}

    production = _run(["-c", probe], env)
    development = _run(["-c", probe], env | {"DEBUG": "true"})

    assert production.returncode == 0, production.stderr
    assert json.loads(production.stdout) == [False, True, 365 * 24 * 3600, True, True]
    assert json.loads(development.stdout) == [True, False, 0, False, False]


def test_without_debug_a_missing_secret_key_fails_loudly() -> None:
    result = _run(["-c", "import advisor.settings"], {})

    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off" in result.stderr


def test_the_production_env_example_passes_the_deployment_checks() -> None:
    env = _env_example() | {"SECRET_KEY": secrets.token_urlsafe(50)}

    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_placeholder_secret_key_is_refused_by_the_deployment_checks() -> None:
    result = _run(["manage.py", "check", "--deploy"], _env_example())

    assert result.returncode != 0
    assert "advisor.E001" in result.stderr + result.stdout
