"""DRF building blocks named in settings. Kept apart from advisor/api.py, which imports rest_framework.views:
APIView reads DEFAULT_PARSER_CLASSES at import time, so the parser's module must not import views."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import QueryDict
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser

from advisor.jsonsafe import MAX_DEPTH, json_problem


class Pagination(PageNumberPagination):
    """DRF's page-number pagination, strict: a page or page_size that is not a positive integer (or too large a
    page_size) is a 400 naming it, as the schema documents, instead of being silently ignored."""

    page_size_query_param = "page_size"
    max_page_size = 200

    def _positive_int(self, request: Any, name: str, maximum: int | None = None) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        bound = f" up to {maximum}" if maximum else ""
        if not raw.isdigit() or not 1 <= int(raw) <= (maximum or 2**31):
            raise exceptions.ValidationError({name: [f"A positive integer{bound} is required."]})
        return int(raw)

    def get_page_size(self, request: Any) -> int | None:
        return self._positive_int(request, self.page_size_query_param, self.max_page_size) or self.page_size

    def get_page_number(self, request: Any, paginator: Any) -> Any:
        return self._positive_int(request, self.page_query_param) or 1

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters


class BodyTooLarge(exceptions.APIException):
    """A body, upload or form over its limit: 413 Content Too Large, naming the field, the size and the limit
    (`hint` ends the sentence: which setting it is, or what counts towards it)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self, *, limit: int, length: int | None = None, field: str = "body", hint: str = "") -> None:
        size = f"Request body is {length} bytes" if length is not None else "Request body is too large"
        self.field = field
        super().__init__(f"{size}; the limit is {limit} bytes{hint or '.'}", code="too_large")


def declared_length(request: Any) -> int | None:
    """The body's Content-Length as the client sent it; None when absent or unreadable (chunked)."""
    raw = request.META.get("CONTENT_LENGTH") if request is not None else None
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def read_bounded(stream: Any, request: Any, limit: int) -> bytes:
    """Read the whole body, never more than `limit` bytes into memory, refusing a larger one with 413."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise BodyTooLarge(length=length, limit=limit)
    raw: bytes = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise BodyTooLarge(limit=limit)
    return raw


def _bounded_int(digits: str) -> int:
    # Called by json for every integer literal: refuse huge ones before int() spends time on them.
    if len(digits.lstrip("-")) > 30:
        raise ValueError(f"integer literal of {len(digits)} digits")
    return int(digits)


def loads_checked(raw: bytes) -> Any:
    """Decode a JSON body the way every endpoint should: UTF-8, bounded depth and integers, and no value that
    PostgreSQL or a strict JSON client would refuse (NaN, Infinity, NUL, unpaired surrogates), each refused
    with a 400 that names the field.

    NaN and Infinity parse (the json module's default) only so that the error can name where they are."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise exceptions.ParseError(f"JSON parse error - the body is not UTF-8: {exc.reason}") from exc
    try:
        data = json.loads(text, parse_int=_bounded_int)
    except RecursionError as exc:
        raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
    problem = json_problem(data)
    if problem is not None:
        raise exceptions.ValidationError(
            {problem.path or "body": [exceptions.ErrorDetail(problem.message, problem.code)]}
        )
    return data


class BoundedFormParser(BaseParser):
    """application/x-www-form-urlencoded up to DATA_UPLOAD_MAX_MEMORY_SIZE (DRF's FormParser reads unbounded)."""

    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> QueryDict:
        request = (parser_context or {}).get("request")
        raw = read_bounded(stream, request, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return QueryDict(raw, encoding=settings.DEFAULT_CHARSET)


class BoundedJSONParser(BaseParser):
    """JSON bodies up to DATA_UPLOAD_MAX_MEMORY_SIZE, read from the stream (never whole into memory past the
    limit) and checked by `loads_checked`. Not DRF's JSONParser: that one reads without a bound."""

    media_type = "application/json"
    limit_setting = "DATA_UPLOAD_MAX_MEMORY_SIZE"

    def limit(self) -> int:
        return int(getattr(settings, self.limit_setting))

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        request = (parser_context or {}).get("request")
        return loads_checked(read_bounded(stream, request, self.limit()))
