"""Post a result to the advisor's REST API from hosts that cannot reach its database.

    POST {url}   (the Django side serves /api/v1/benchmark-runs/{id}/results/)
    Authorization: Bearer <per-run token>
    Idempotency-Key: <sha256 of the body>

Retried with exponential backoff on connection errors, timeouts, 429 and 5xx (honouring Retry-After); a 4xx
other than 429 is final (the token or the body is wrong, retrying will not help). The idempotency key is the
same on every retry, so a response lost after the server stored the result does not store it twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 300.0


class ReportError(Exception):
    """The result could not be delivered; `status_code` is the last HTTP status, None if none came back."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


def _retry_after_s(response: httpx.Response, fallback_s: float) -> float:
    raw = response.headers.get("Retry-After", "")
    try:
        return min(float(raw), _MAX_RETRY_AFTER_S)
    except ValueError:
        return fallback_s


def post_result(
    url: str,
    token: str,
    result: Mapping[str, Any],
    *,
    attempts: int = 6,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Response:
    """Deliver `result` as JSON; returns the successful response or raises ReportError."""
    if not token:
        raise ReportError("a per-run token is required")
    body = json.dumps(result, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": hashlib.sha256(body).hexdigest(),
    }
    last_status: int | None = None
    last_problem = "no attempt made"
    with httpx.Client(timeout=timeout_s, transport=transport) as client:
        for attempt in range(attempts):
            delay_s = backoff_s * 2**attempt
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                last_status = response.status_code
                if response.is_success:
                    return response
                last_problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in _RETRY_STATUS:
                    raise ReportError(
                        f"the advisor refused the result: {last_problem}", status_code=last_status
                    )
                delay_s = _retry_after_s(response, delay_s)
            if attempt + 1 < attempts:
                sleep(delay_s)
    raise ReportError(f"gave up after {attempts} attempts: {last_problem}", status_code=last_status)
