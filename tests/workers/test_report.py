"""Posting results to the advisor, against a real local HTTP server that fails the first attempts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from workers.report import ReportError, post_result


class _Advisor(ThreadingHTTPServer):
    def __init__(self, responses: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responses = responses
        self.received: list[dict[str, Any]] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Advisor

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(
            {"headers": dict(self.headers), "body": json.loads(body), "path": self.path}
        )
        status = self.server.responses.pop(0) if self.server.responses else 201
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}' if status < 400 else b'{"detail": "nope"}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def advisor(request: pytest.FixtureRequest) -> Iterator[_Advisor]:
    server = _Advisor(list(request.param))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Advisor) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/api/v1/benchmark-runs/42/results/"


@pytest.mark.parametrize("advisor", [[503, 429, 201]], indirect=True)
def test_retries_until_accepted_with_the_same_token_and_key(advisor: _Advisor) -> None:
    sleeps: list[float] = []

    response = post_result(_url(advisor), "run-token", {"levels": []}, sleep=sleeps.append, backoff_s=0.01)

    assert response.status_code == 201
    assert len(advisor.received) == 3
    assert {r["headers"]["Authorization"] for r in advisor.received} == {"Bearer run-token"}
    assert len({r["headers"]["Idempotency-Key"] for r in advisor.received}) == 1
    assert advisor.received[0]["path"] == "/api/v1/benchmark-runs/42/results/"
    assert advisor.received[-1]["body"] == {"levels": []}
    assert sleeps == [0.01, 0.0]  # exponential backoff, then the server's Retry-After


@pytest.mark.parametrize("advisor", [[403]], indirect=True)
def test_a_refusal_is_final(advisor: _Advisor) -> None:
    with pytest.raises(ReportError, match="403") as caught:
        post_result(_url(advisor), "bad-token", {"levels": []}, sleep=lambda _s: None)

    assert caught.value.status_code == 403
    assert len(advisor.received) == 1


@pytest.mark.parametrize("advisor", [[500, 500, 500]], indirect=True)
def test_gives_up_after_the_attempts(advisor: _Advisor) -> None:
    with pytest.raises(ReportError, match="gave up after 3 attempts"):
        post_result(_url(advisor), "t", {}, attempts=3, sleep=lambda _s: None)

    assert len(advisor.received) == 3


def test_an_unreachable_advisor_is_a_report_error() -> None:
    with pytest.raises(ReportError, match="ConnectError"):
        post_result("http://127.0.0.1:9/results/", "t", {}, attempts=2, sleep=lambda _s: None)


def test_a_token_is_required() -> None:
    with pytest.raises(ReportError, match="token"):
        post_result("http://127.0.0.1:9/results/", "", {})
