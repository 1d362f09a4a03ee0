"""API plumbing shared by every app: one error format, bounded JSON bodies, pagination.

Every error answers {"status": N, "detail": "...", "errors": [{"field": "a.b", "message": "...", "code": "..."}],
"request_id": "..."}; the request id is also in the X-Request-ID header and in the server's log lines.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from advisor.middleware import error_body
from advisor.rest import BodyTooLarge, BoundedJSONParser, Pagination, declared_length


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "The database was unavailable or dropped the connection while serving this request. Retry shortly; "
        "where the endpoint takes an Idempotency-Key, retry with the same key."
    )
    default_code = "database_unavailable"


logger = logging.getLogger(__name__)


def flatten_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error detail into a flat list with dotted field paths."""
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            if isinstance(key, int):  # a list item's errors, as ListField reports them
                out.extend(flatten_errors(value, f"{prefix}[{key}]"))
                continue
            name = "" if key == "non_field_errors" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (name or prefix)
            out.extend(flatten_errors(value, path))
        return out
    if isinstance(detail, list):
        if detail and all(isinstance(item, exceptions.ErrorDetail | str) for item in detail):
            return [
                {"field": prefix or "body", "message": str(item), "code": getattr(item, "code", "invalid")}
                for item in detail
            ]
        out = []
        for index, item in enumerate(detail):
            out.extend(flatten_errors(item, f"{prefix}[{index}]" if prefix else f"[{index}]"))
        return out
    return [{"field": prefix or "body", "message": str(detail), "code": getattr(detail, "code", "invalid")}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = _data_too_big(context)
    elif isinstance(exc, TooManyFieldsSent):
        exc = exceptions.ParseError(str(exc))
    elif isinstance(exc, OperationalError | InterfaceError):
        # A dropped or refused connection: the transaction rolled back, so a retry (with the same
        # Idempotency-Key where there is one) is safe. Logged, as it is the operators' problem.
        logger.warning("database unavailable: %s", exc)
        exc = DatabaseUnavailable()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = "5"
    if isinstance(exc, BodyTooLarge):
        errors = [{"field": exc.field, "message": str(exc.detail), "code": "too_large"}]
        detail = str(exc.detail)
    elif isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        detail = "Invalid input: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
    elif isinstance(exc, exceptions.ParseError):
        errors = [{"field": "body", "message": str(exc.detail), "code": "parse_error"}]
        detail = str(exc.detail)
    elif isinstance(exc, Http404 | exceptions.NotFound):
        errors = []
        detail = "Not found."
    else:
        errors = []
        detail = str(getattr(exc, "detail", exc))
    response.data = error_body(status=response.status_code, detail=detail, errors=errors)
    return response


def _data_too_big(context: dict[str, Any]) -> BodyTooLarge:
    """Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE (for multipart: its fields other than files)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    request = context.get("request")
    meta = request.META if request is not None else {}
    if str(meta.get("CONTENT_TYPE", "")).startswith("multipart/"):
        return BodyTooLarge(
            length=None, limit=limit, hint=". Files do not count: the form fields beside them are over it."
        )
    return BodyTooLarge(length=declared_length(request), limit=limit)


# Ids in query strings and paths: PostgreSQL's bigint. A larger number can name nothing, and says so with a 400.
MAX_ID = 2**63 - 1


class IdParam(serializers.IntegerField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_ID, required=False, **kwargs)


def parse_query(serializer_class: type[serializers.Serializer[Any]], request: Any) -> dict[str, Any]:
    """Validate query parameters with a serializer: the same class documents them in the OpenAPI schema, so an
    invalid enum, boolean or number is refused with a 400 naming the parameter, as the schema says."""
    # A plain dict, not the QueryDict: DRF treats an empty value in a QueryDict as "not given", while the schema
    # says an empty enum or slug is invalid. A repeated parameter counts by its last value.
    query = serializer_class(data={key: request.query_params.get(key) for key in request.query_params})
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def validation_error(field: str, message: str, code: str = "invalid") -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [exceptions.ErrorDetail(message, code=code)]})


__all__ = [
    "BodyTooLarge",
    "BoundedJSONParser",
    "IdParam",
    "Pagination",
    "exception_handler",
    "parse_query",
    "status",
    "validation_error",
]
