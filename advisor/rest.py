"""DRF building blocks named in settings. Kept apart from advisor/api.py, which imports rest_framework.views:
APIView reads DEFAULT_PARSER_CLASSES at import time, so the parser's module must not import views."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


class BoundedJSONParser(JSONParser):
    """Refuse bodies over DATA_UPLOAD_MAX_MEMORY_SIZE before reading them into memory.

    Not strict: NaN and Infinity parse, so the field validators can name the field that holds them.
    """

    strict = False

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        if limit is not None and length > limit:
            raise BodyTooLarge(length=length, limit=limit)
        return super().parse(stream, media_type, parser_context)


class BodyTooLarge(exceptions.ValidationError):
    def __init__(self, *, length: int | None, limit: int, field: str = "body", hint: str = "") -> None:
        size = f"Request body is {length} bytes" if length is not None else "Request body is too large"
        super().__init__({field: [f"{size}; the limit is {limit} bytes{hint or '.'}"]}, code="too_large")


class UploadTooLargeError(BodyTooLarge):
    """An upload over its cap: 413 Content Too Large, with the cap in the message."""

    status_code = 413
