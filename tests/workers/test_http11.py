"""The load generator's HTTP/1.1 transport against hand-written servers: framing, reuse, failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from workers.http11 import FastTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server running `handler` per connection; yields its URL and a list that counts connections."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await handler(reader, writer)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/x", connections
    finally:
        server.close()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


async def _fetch(transport: FastTransport, url: str, body: bytes = b"{}") -> tuple[int, list[bytes]]:
    async with httpx.AsyncClient(trust_env=False) as builder:
        request = builder.build_request("POST", url, content=body)
    response = await transport.handle_async_request(request)
    try:
        pieces = [piece async for piece in response.aiter_raw()]
    finally:
        await response.aclose()
    return response.status_code, pieces


def test_chunks_split_across_reads_reassemble_and_the_connection_is_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
            for i in range(len(wire)):  # one byte at a time: every boundary falls inside a read
                writer.write(wire[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)

    async def run() -> tuple[list[bytes], list[int]]:
        async with serving(handler) as (url, connections):
            transport = FastTransport(max_connections=4)
            bodies = [b"".join((await _fetch(transport, url, f"req{i}".encode()))[1]) for i in range(3)]
            await transport.aclose()
            return bodies, connections

    bodies, connections = asyncio.run(run())

    assert bodies == [b"hello req0", b"hello req1", b"hello req2"]
    assert len(connections) == 1  # keep-alive: one connection for three requests


def test_content_length_and_trailers() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops")
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-t: 1\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def run() -> list[tuple[int, bytes]]:
        async with serving(handler) as (url, _connections):
            transport = FastTransport(max_connections=1)
            results = []
            for _ in range(2):
                status, pieces = await _fetch(transport, url)
                results.append((status, b"".join(pieces)))
            await transport.aclose()
            return results

    assert asyncio.run(run()) == [(500, b"oops"), (200, b"ok")]


def test_a_body_cut_short_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel")
        await writer.drain()
        writer.transport.abort()

    async def run() -> None:
        async with serving(handler) as (url, _connections):
            await _fetch(FastTransport(max_connections=1), url)

    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        asyncio.run(run())


def test_an_idle_connection_closed_by_the_server_is_replaced_transparently() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        # then close the kept-alive connection, as servers do after their idle timeout

    async def run() -> tuple[list[int], list[int]]:
        async with serving(handler) as (url, connections):
            transport = FastTransport(max_connections=1)
            statuses = [(await _fetch(transport, url))[0]]
            await asyncio.sleep(0.05)
            statuses.append((await _fetch(transport, url))[0])
            await transport.aclose()
            return statuses, connections

    statuses, connections = asyncio.run(run())

    assert statuses == [200, 200]
    assert len(connections) == 2


def test_connection_refused_and_read_timeout_are_httpx_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def refused() -> None:
        await _fetch(FastTransport(max_connections=1), "http://127.0.0.1:9/")

    async def timeout() -> None:
        async with serving(silent) as (url, _connections), httpx.AsyncClient(timeout=0.2) as builder:
            request = builder.build_request("POST", url, content=b"{}")
            await FastTransport(max_connections=1).handle_async_request(request)

    with pytest.raises(httpx.ConnectError):
        asyncio.run(refused())
    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(timeout())


def test_only_plain_http_is_handled() -> None:
    async def run() -> None:
        await _fetch(FastTransport(max_connections=1), "https://127.0.0.1:9/")

    with pytest.raises(httpx.UnsupportedProtocol):
        asyncio.run(run())
