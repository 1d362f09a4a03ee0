"""A lean HTTP/1.1 transport for httpx, for the load generator's hot path.

httpx's default transport (httpcore + h11) spends about 25 µs of Python per HTTP chunk on a slow core, and an
engine streams one chunk per token: at a few hundred requests per second the client, not the engine, sets
the measured TTFT. This transport keeps httpx's Request/Response API but parses responses itself on an
asyncio Protocol: every chunk already in the receive buffer is decoded in one pass and handed over as one
piece, so the cost is per network read, not per token. scripts/bench_loadgen.py measures the difference.

Scope, on purpose: plain http:// to the engine on this host or a private network, keep-alive, chunked or
Content-Length or close-delimited bodies. Anything else (https, proxies, HTTP/2) goes through httpx's
default transport. Failures raise httpx's own exception types, so callers cannot tell the transports apart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx

_MAX_HEAD_BYTES = 64 * 1024
_CHUNKED, _LENGTH, _UNTIL_CLOSE = "chunked", "length", "close"


class _StaleConnection(Exception):
    """The server closed the connection without a byte of response."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: bytes in a buffer, one waiter woken when more arrive or the peer closes."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self.requests_sent = 0
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait_for_data(self, timeout_s: float | None) -> None:
        """Until new bytes or the close arrive; raises httpx.ReadTimeout after `timeout_s`."""
        if self.closed:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout(f"no data for {timeout_s} s") from None
        finally:
            self._waiter = None

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise _StaleConnection
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True


def _timeouts(request: httpx.Request) -> tuple[float | None, float | None]:
    timeout: dict[str, Any] = request.extensions.get("timeout", {})
    return timeout.get("connect"), timeout.get("read")


def _head(request: httpx.Request, body: bytes) -> bytes:
    target = request.url.raw_path.decode("ascii")
    lines = [f"{request.method} {target} HTTP/1.1"]
    for name, value in request.headers.multi_items():
        if name.lower() not in ("content-length", "transfer-encoding"):
            lines.append(f"{name}: {value}")
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    status_line, *header_lines = raw.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise httpx.RemoteProtocolError(f"bad status line {status_line[:80]!r}")
    headers = []
    for line in header_lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise httpx.RemoteProtocolError(f"bad header line {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


class _Body(httpx.AsyncByteStream):
    """The response body, decoded from the connection's buffer one network read at a time."""

    def __init__(
        self, pool: FastTransport, key: tuple[str, int], conn: _Connection, framing: str, length: int
    ) -> None:
        self._pool, self._key, self._conn = pool, key, conn
        self._framing, self._remaining = framing, length
        self._complete = False
        self.read_timeout_s: float | None = None
        self.keep_alive = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while not self._complete:
            piece = self._take()
            if piece:
                yield piece
                continue
            if self._complete:
                break
            if conn.closed:
                if self._framing == _UNTIL_CLOSE:
                    self._complete = True
                    break
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            await conn.wait_for_data(self.read_timeout_s)

    def _take(self) -> bytes:
        buffer = self._conn.buffer
        if self._framing == _LENGTH:
            piece = bytes(buffer[: self._remaining])
            del buffer[: len(piece)]
            self._remaining -= len(piece)
            self._complete = self._remaining == 0
            return piece
        if self._framing == _UNTIL_CLOSE:
            piece = bytes(buffer)
            buffer.clear()
            return piece
        return self._take_chunks(buffer)

    def _take_chunks(self, buffer: bytearray) -> bytes:
        """Every complete chunk in the buffer, joined; a partial chunk stays for the next read."""
        out = bytearray()
        position = 0
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                break
            size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                trailer_end = buffer.find(b"\r\n", line_end + 2)
                if trailer_end < 0:
                    break
                if trailer_end != line_end + 2:  # trailers present: skip to the blank line ending them
                    blank = buffer.find(b"\r\n\r\n", line_end)
                    if blank < 0:
                        break
                    trailer_end = blank + 2
                position = trailer_end + 2
                self._complete = True
                break
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                break
            out += buffer[line_end + 2 : data_end]
            position = data_end + 2
        del buffer[:position]
        return bytes(out)

    async def aclose(self) -> None:
        reusable = self._complete and self.keep_alive and not self._conn.closed and not self._conn.buffer
        if reusable:
            self._pool.release(self._key, self._conn)
        else:
            self._pool.discard(self._conn)


class FastTransport(httpx.AsyncBaseTransport):
    """httpx transport for http:// with a keep-alive pool capped at `max_connections`."""

    def __init__(self, max_connections: int) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._all: set[_Connection] = set()

    async def _connect(self, host: str, port: int, timeout_s: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _transport, conn = await loop.create_connection(_Connection, host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} took over {timeout_s} s") from None
        except OSError as exc:
            raise httpx.ConnectError(f"{host}:{port}: {exc}") from exc
        self._all.add(conn)
        return conn

    async def _acquire(self, key: tuple[str, int], timeout_s: float | None) -> _Connection:
        idle = self._idle.get(key, [])
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.buffer:
                return conn
            conn.close()
        return await self._connect(key[0], key[1], timeout_s)

    def release(self, key: tuple[str, int], conn: _Connection) -> None:
        self._idle.setdefault(key, []).append(conn)
        self._slots.release()

    def discard(self, conn: _Connection) -> None:
        conn.close()
        self._all.discard(conn)
        self._slots.release()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol("FastTransport speaks plain http:// only")
        connect_timeout_s, read_timeout_s = _timeouts(request)
        payload = _head(request, request.content) + request.content  # bodies are built in memory
        key = (request.url.host, request.url.port or 80)
        await self._slots.acquire()
        conn: _Connection | None = None
        try:
            conn = await self._acquire(key, connect_timeout_s)
            reused = conn.requests_sent > 0
            try:
                status, headers = await self._exchange(conn, payload, read_timeout_s)
            except _StaleConnection:
                if not reused:
                    raise httpx.RemoteProtocolError(
                        "server disconnected without sending a response"
                    ) from None
                # The server had closed this idle keep-alive connection before reading the request, so it
                # was never processed: resend once on a fresh connection (httpcore does the same).
                conn.close()
                self._all.discard(conn)
                conn = await self._connect(key[0], key[1], connect_timeout_s)
                status, headers = await self._exchange(conn, payload, read_timeout_s)
        except BaseException:
            if conn is not None:
                conn.close()
                self._all.discard(conn)
            self._slots.release()
            raise
        stream = self._body(key, conn, headers, request.method)
        stream.read_timeout_s = read_timeout_s
        return httpx.Response(status, headers=headers, stream=stream, request=request)

    def _body(
        self, key: tuple[str, int], conn: _Connection, headers: list[tuple[bytes, bytes]], method: str
    ) -> _Body:
        values = {name.lower(): value for name, value in headers}
        if method == "HEAD":
            framing, length = _LENGTH, 0
        elif b"chunked" in values.get(b"transfer-encoding", b"").lower():
            framing, length = _CHUNKED, 0
        elif b"content-length" in values:
            framing, length = _LENGTH, int(values[b"content-length"])
        else:
            framing, length = _UNTIL_CLOSE, 0
        body = _Body(self, key, conn, framing, length)
        body.keep_alive = values.get(b"connection", b"").lower() != b"close" and framing != _UNTIL_CLOSE
        if framing == _LENGTH and length == 0:
            body._complete = True
        return body

    async def _exchange(
        self, conn: _Connection, payload: bytes, read_timeout_s: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        conn.write(payload)
        conn.requests_sent += 1
        return await self._read_head(conn, read_timeout_s)

    async def _read_head(
        self, conn: _Connection, timeout_s: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        received_any = False
        while True:
            received_any = received_any or bool(conn.buffer)
            end = conn.buffer.find(b"\r\n\r\n")
            if end >= 0:
                raw = bytes(conn.buffer[:end])
                del conn.buffer[: end + 4]
                status, headers = _parse_head(raw)
                if 100 <= status < 200:  # interim responses (100 Continue): the real one follows
                    continue
                return status, headers
            if len(conn.buffer) > _MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError("response head too large")
            if conn.closed:
                if not received_any:
                    raise _StaleConnection
                raise httpx.RemoteProtocolError("server disconnected in the middle of the response head")
            await conn.wait_for_data(timeout_s)

    async def aclose(self) -> None:
        for conn in self._all:
            with contextlib.suppress(Exception):
                conn.close()
        self._all.clear()
        self._idle.clear()
