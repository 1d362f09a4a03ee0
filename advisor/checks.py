"""Deployment checks of our own, run by `manage.py check --deploy` beside Django's."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register

PLACEHOLDER_MARK = "change-me"


@register(Tags.security, deploy=True)
def secret_key_is_not_the_placeholder(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if not settings.DEBUG and PLACEHOLDER_MARK in settings.SECRET_KEY:
        return [
            Error(
                "SECRET_KEY is still the placeholder from .env.example.",
                hint="Set it to a long random string: python -c 'import secrets; print(secrets.token_urlsafe(50))'",
                id="advisor.E001",
            )
        ]
    return []
