from __future__ import annotations

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
