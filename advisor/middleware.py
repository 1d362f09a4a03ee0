"""The request's edge: an id for every request, refusal of input no handler can use, and one error format for the
API whatever produced the error (a view, DRF, Django's URL resolver or its 400/413/500 handlers)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from advisor.jsonsafe import unstorable_character

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
# A proxy's id is kept when it looks like one, so one id follows the request through every log.
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")
API_PREFIX = "/api/"


def error_body(*, status: int, detail: str, errors: list[dict[str, str]] | None = None) -> dict[str, object]:
    """The documented error object: {"status", "detail", "errors": [{"field", "message", "code"}], "request_id"}."""
    return {"status": status, "detail": detail, "errors": errors or [], "request_id": REQUEST_ID.get()}


class RequestIdLogFilter(logging.Filter):
    """Adds `request_id` to every record, so a client's error body can be matched to the server's log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        # Not reset on the way out: Django logs the response (4xx/5xx) after the middleware chain returns.
        REQUEST_ID.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class InputHardeningMiddleware:
    """Refuse a path or query parameter that holds a NUL or an unpaired surrogate: no view can use one, and
    PostgreSQL raises on them (a 500) wherever they reach a filter."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if bad := unstorable_character(request.path):
            return _bad_request(request, "path", f"The path contains {bad}.")
        for key, values in request.GET.lists():
            for text in (key, *values):
                if bad := unstorable_character(text):
                    field = key if unstorable_character(key) is None else "query"
                    return _bad_request(request, field, f"Query parameter {field!r} contains {bad}.")
        return self.get_response(request)


def _bad_request(request: HttpRequest, field: str, message: str) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        body = error_body(
            status=400, detail=message, errors=[{"field": field, "message": message, "code": "bad_text"}]
        )
        return JsonResponse(body, status=400)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


class ApiErrorMiddleware:
    """Any 4xx or 5xx under /api/ that is not already the JSON error object becomes one. DRF's exception handler
    covers its views; this covers what happens outside them: an unknown URL (404), a body Django refuses before
    the view (400, 413), an uncaught exception (500, HTML even with DEBUG on)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not request.path.startswith(API_PREFIX):
            return response
        if response.get("Content-Type", "").startswith("application/json") and _is_error_body(response):
            return response
        status = response.status_code
        detail = {
            404: "Not found.",
            500: "Internal server error. The request id identifies it in the server log.",
        }.get(status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error")
        replaced = JsonResponse(error_body(status=status, detail=detail), status=status)
        for header in ("Allow", "WWW-Authenticate", "Retry-After"):
            if header in response:
                replaced[header] = response[header]
        # Django logs an error response once; an uncaught exception's was logged, with its traceback, already.
        replaced._has_been_logged = getattr(response, "_has_been_logged", False)  # type: ignore[attr-defined]
        return replaced


def _is_error_body(response: HttpResponse) -> bool:
    if getattr(response, "streaming", False):
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and {"status", "detail", "errors"} <= body.keys()
