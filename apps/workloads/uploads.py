"""File uploads (traffic CSVs, request logs): who may upload is settled before a byte of the body is read.

Order, for pages and API alike: authenticate (headers and cookies only), check the role, refuse a body over
UPLOAD_MAX_BYTES by its Content-Length, run the CSRF check, and only then open the file, which the parsers
read as a stream. Django's CSRF check looks for the form token in a POST body, so run where it normally runs
(middleware, DRF's SessionAuthentication) it would read a viewer's multipart upload before the view could
refuse it; upload views are therefore csrf_exempt and call csrf_rejection() / deferred_csrf_check() after
their role check.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from drf_spectacular.authentication import SessionScheme
from rest_framework import exceptions
from rest_framework.authentication import CSRFCheck, SessionAuthentication
from rest_framework.request import Request

CSRF_DEFERRED = "advisor.csrf_deferred"


LARGER_FILES = " (UPLOAD_MAX_BYTES). Import a larger log with `manage.py import_workload --log FILE`."


class UploadTooLarge(Exception):
    def __init__(self, *, length: int, limit: int) -> None:
        self.length, self.limit = length, limit
        super().__init__(f"The upload is {length} bytes; the limit is {limit} bytes{LARGER_FILES}")


def content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def check_upload_size(request: HttpRequest) -> None:
    """Raise UploadTooLarge from the declared length, before reading (the WSGI server never lets the app
    read past Content-Length, so the declaration bounds what can arrive)."""
    limit: int = settings.UPLOAD_MAX_BYTES
    length = content_length(request)
    if length > limit:
        raise UploadTooLarge(length=length, limit=limit)


def _checked_view(request: HttpRequest) -> HttpResponse:
    """Stands for the view in the CSRF check: a view without csrf_exempt, so the check runs."""
    return HttpResponse()


def csrf_rejection(request: HttpRequest) -> HttpResponse | None:
    """Django's CSRF check, for a csrf_exempt page view that has authorised the caller: None when it passes,
    else the usual 403 response."""
    check = CsrfViewMiddleware(_checked_view)
    check.process_request(request)
    return check.process_view(request, _checked_view, (), {})


class UploadSessionAuthentication(SessionAuthentication):
    """Session authentication whose CSRF check waits for deferred_csrf_check(), after the view's role check."""

    def enforce_csrf(self, request: Request) -> None:
        request._request.META[CSRF_DEFERRED] = True


class UploadSessionScheme(SessionScheme):  # type: ignore[no-untyped-call]
    """The same session cookie, under its own name (the schema refuses two classes under one)."""

    target_class = "apps.workloads.uploads.UploadSessionAuthentication"
    name = "uploadCookieAuth"


def deferred_csrf_check(request: Request) -> None:
    """Run the CSRF check UploadSessionAuthentication put off, on the Django request (so DRF's parsers are not
    involved); raises PermissionDenied as DRF's own check does."""
    if not request._request.META.pop(CSRF_DEFERRED, False):
        return
    check = CSRFCheck(_checked_view)
    check.process_request(request._request)
    reason = check.process_view(request._request, _checked_view, (), {})
    if reason:
        raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")
