"""A deliberately misbehaving OpenAI-compatible streaming server, for load generator tests.

Hand-written HTTP/1.1 on asyncio streams, so each behaviour is exactly what a broken engine or proxy sends:
the prompt (or the chat message) names the behaviour, e.g. "mode:drop".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

TOKENS = 4
SLOW_FIRST_BYTE_S = 30.0  # far beyond any test's request timeout
DRIP_INTERVAL_S = 0.05


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _event(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return _chunk(f"data: {text}\n\n".encode())


def _completion(
    text: str, *, finish: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {"object": "text_completion", "choices": [{"index": 0, "text": text}]}
    if finish:
        event["choices"][0]["finish_reason"] = finish
    if usage:
        event["usage"] = usage
    return event


def _chat(delta: dict[str, str], *, finish: str | None = None) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


STREAM_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
END = b"0\r\n\r\n"


class BadServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[BadServer]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            # Handlers still dripping bytes belong to cancelled clients; do not wait for them.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, dict[str, Any]]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        path = lines[0].split()[1]
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        body = json.loads(await reader.readexactly(length)) if length else {}
        return path, body

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path, body = await self._read_request(reader)
            self.requests.append(body)
            prompt = body.get("prompt") or body["messages"][-1]["content"]
            mode = prompt.split(":", 1)[1] if prompt.startswith("mode:") else "ok"
            await getattr(self, f"_mode_{mode}")(writer, path)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up first: expected for the timeout behaviours
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, *parts: bytes) -> None:
        for part in parts:
            writer.write(part)
        await writer.drain()

    async def _mode_ok(self, writer: asyncio.StreamWriter, path: str) -> None:
        if path.endswith("/chat/completions"):
            await self._send(writer, STREAM_HEADERS, _event(_chat({"role": "assistant"})))
            await asyncio.sleep(0.02)  # a role-only chunk before the first token must not count as TTFT
            events = [_event(_chat({"content": f" w{i}"})) for i in range(TOKENS)]
            await self._send(writer, *events, _event(_chat({}, finish="length")), _event("[DONE]"), END)
            return
        events = [_event(_completion(f" w{i}")) for i in range(TOKENS)]
        usage = {"prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": 5 + TOKENS}
        await self._send(
            writer, STREAM_HEADERS, *events, _event(_completion("", finish="length", usage=usage))
        )
        await self._send(writer, _event("[DONE]"), END)

    async def _mode_wrong_usage(self, writer: asyncio.StreamWriter, path: str) -> None:
        events = [_event(_completion(f" w{i}")) for i in range(TOKENS)]
        usage = {"prompt_tokens": 5, "completion_tokens": TOKENS + 3, "total_tokens": 5 + TOKENS + 3}
        last = _event(_completion("", finish="length", usage=usage))
        await self._send(writer, STREAM_HEADERS, *events, last, _event("[DONE]"), END)

    async def _mode_slow_first_byte(self, writer: asyncio.StreamWriter, path: str) -> None:
        await asyncio.sleep(SLOW_FIRST_BYTE_S)
        await self._mode_ok(writer, path)

    async def _mode_drip(self, writer: asyncio.StreamWriter, path: str) -> None:
        # Bytes keep arriving, so a read timeout never fires; only a whole-request deadline ends this.
        await self._send(writer, STREAM_HEADERS, _event(_completion(" w0")))
        for _ in range(int(SLOW_FIRST_BYTE_S / DRIP_INTERVAL_S)):
            await asyncio.sleep(DRIP_INTERVAL_S)
            await self._send(writer, _chunk(b": keep-alive\n\n"))

    async def _mode_drop(self, writer: asyncio.StreamWriter, path: str) -> None:
        await self._send(writer, STREAM_HEADERS, _event(_completion(" w0")), _event(_completion(" w1")))
        writer.transport.abort()  # no terminating chunk: the connection dies mid-stream

    async def _mode_malformed(self, writer: asyncio.StreamWriter, path: str) -> None:
        good = [_event(_completion(f" w{i}")) for i in range(TOKENS)]
        broken = [_chunk(b'data: {"choices": [{"text": \n\n'), _chunk(b"garbage without a field name\n\n")]
        usage = {"prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": 5 + TOKENS}
        last = _event(_completion("", finish="length", usage=usage))
        await self._send(writer, STREAM_HEADERS, good[0], *broken, *good[1:], last, _event("[DONE]"), END)

    async def _mode_http_500(self, writer: asyncio.StreamWriter, path: str) -> None:
        body = b'{"error": {"message": "CUDA out of memory", "type": "InternalServerError"}}'
        head = f"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        await self._send(writer, head.encode() + b"\r\nConnection: close\r\n\r\n", body)

    async def _mode_no_done(self, writer: asyncio.StreamWriter, path: str) -> None:
        events = [_event(_completion(f" w{i}")) for i in range(TOKENS)]
        await self._send(writer, STREAM_HEADERS, *events, END)  # a clean end, but the answer never finished

    async def _mode_split_data(self, writer: asyncio.StreamWriter, path: str) -> None:
        # One event over two data: lines is valid SSE (the lines join with a newline).
        first = json.dumps(_completion(" w0"))
        split = _chunk(f"data: {first[:10]}\ndata: {first[10:]}\n\n".encode())
        rest = [_event(_completion(f" w{i}")) for i in range(1, TOKENS)]
        usage = {"prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": 5 + TOKENS}
        last = _event(_completion("", finish="length", usage=usage))
        await self._send(writer, STREAM_HEADERS, split, *rest, last, _event("[DONE]"), END)

    async def _mode_error_event(self, writer: asyncio.StreamWriter, path: str) -> None:
        error = {"error": {"message": "engine overloaded", "code": 503}}
        await self._send(writer, STREAM_HEADERS, _event(_completion(" w0")), _event(error), END)
