"""Who is calling, and how often: expiring API tokens, throttles whose rates come from settings, and what a
locked-out sign-in (django-axes) answers."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.throttling import BaseThrottle

from advisor.middleware import API_PREFIX, error_body


def token_expires_at(token: Token) -> datetime:
    expires_at: datetime = token.created + settings.API_TOKEN_TTL
    return expires_at


class ExpiringTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, refused once the token is older than API_TOKEN_TTL."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        user, token = super().authenticate_credentials(key)
        expired_at = token_expires_at(token)
        if expired_at <= timezone.now():
            raise exceptions.AuthenticationFailed(
                f"Token expired at {expired_at:%Y-%m-%d %H:%M} UTC; get a new one from POST /api/v1/auth/token/."
            )
        return user, token


class _WindowThrottle(BaseThrottle):
    """Requests per client in fixed windows, counted with one atomic increment in the shared cache.

    DRF's SimpleRateThrottle keeps every timestamp of the window and rewrites the whole list on each request: at
    1,200 requests a minute that is a 10 KB read and write per request. A counter per window costs the same at
    any rate; the price is that a client may send up to twice its rate across a window boundary. The rate is
    read from API_THROTTLE_RATES per request, so deployments and tests can change it."""

    scope = ""

    def ident_for(self, request: Any) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Any, view: Any) -> bool:
        ident = self.ident_for(request)
        if ident is None:
            return True
        count_allowed, period = self.parse_rate(settings.API_THROTTLE_RATES[self.scope])
        window = int(time.time() // period)
        self.window_ends_at = (window + 1) * period
        key = f"throttle:{self.scope}:{ident}:{window}"
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between the two calls: this request opens the window again
            cache.add(key, 1, timeout=period + 1)
            count = 1
        return count <= count_allowed

    def wait(self) -> float:
        return max(0.0, self.window_ends_at - time.time())

    @staticmethod
    def parse_rate(rate: str) -> tuple[int, int]:
        count, _, unit = rate.partition("/")
        return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit[0]]


class AnonThrottle(_WindowThrottle):
    """Anonymous requests, per client address."""

    scope = "anon"

    def ident_for(self, request: Any) -> str | None:
        return None if request.user and request.user.is_authenticated else str(self.get_ident(request))


class UserThrottle(_WindowThrottle):
    """Authenticated requests, per user; anonymous ones per address."""

    scope = "user"

    def ident_for(self, request: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return f"user-{request.user.pk}"
        return str(self.get_ident(request))


class SignInThrottle(_WindowThrottle):
    """Token requests per client address, whoever they name."""

    scope = "auth"

    def ident_for(self, request: Any) -> str | None:
        return str(self.get_ident(request))


class IsAuthenticatedWithinAnonRate(IsAuthenticated):
    """The default permission. DRF checks permissions before throttles, so an anonymous request to a protected
    endpoint would answer 401 for ever without counting; here it counts against the address's anonymous
    budget, and past it answers 429 like any other anonymous request."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if super().has_permission(request, view):
            return True
        throttle = AnonThrottle()
        if not throttle.allow_request(request, view):
            raise exceptions.Throttled(throttle.wait())
        return False


def client_ip(request: HttpRequest) -> str:
    """The caller's address: REMOTE_ADDR, or with TRUSTED_PROXY_COUNT proxies in front, the address the
    outermost trusted proxy saw (the same rule as DRF's NUM_PROXIES, so throttles and lockouts agree)."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = request.headers.get("X-Forwarded-For")
    if not hops or not forwarded:
        return remote
    addresses = [part.strip() for part in forwarded.split(",")]
    return addresses[-min(hops, len(addresses))]


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many failed sign-ins from this address or for this username ({settings.AXES_FAILURE_LIMIT} "
        f"attempts). Sign-in is blocked for {minutes} minutes; ask an administrator if you need access sooner."
    )


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' answer to a locked-out sign-in: the API's error JSON under /api/, else the login page."""
    message = lockout_message()
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if request.path.startswith(API_PREFIX):
        body = error_body(
            status=429,
            detail=message,
            errors=[{"field": "username", "message": message, "code": "locked_out"}],
        )
        response: HttpResponse = JsonResponse(body, status=429)
    else:
        context = {"form": AuthenticationForm(request), "lockout": message}
        response = render(request, "accounts/login.html", context, status=429)
    response["Retry-After"] = retry_after
    return response
