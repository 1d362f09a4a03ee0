"""Reading uploaded text in constant memory, and the timestamps in it. Pure functions, no Django.

An upload may be a gigabyte, a single line may be a gigabyte, and a cell may hold anything; none of that may
cost more than one chunk and one line of memory, and none of it may raise anything but a clear error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Protocol

CHUNK_BYTES = 1 << 20
# Timestamps outside these years are mistakes (a Unix time in microseconds, a row number, `1e20`): refusing
# them keeps every derived date in range and every later calculation finite.
EARLIEST_S = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
LATEST_S = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
# A number this large cannot be seconds since 1970 before 2100, so it is read as milliseconds.
MILLISECONDS_FROM = 1e11
# Subtracting an epoch is several times faster than datetime.timestamp() on a naive time made aware.
NAIVE_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - compared only with naive times, read as UTC
AWARE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class TimestampError(ValueError):
    pass


# Called with (line number, reason code, detail) for a line that cannot be handed on as text.
BadLine = Callable[[int, str, str], None]


def shown(text: str, limit: int = 40) -> str:
    """A value quoted for an error message: cut short, and with control characters and lone surrogates escaped
    so the message is safe in JSON, in PostgreSQL and in a terminal."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return repr(cut)


def text_lines(stream: Readable, *, max_line_bytes: int, on_bad_line: BadLine) -> Iterator[str]:
    """The stream's lines, decoded as UTF-8, without their line endings, one chunk in memory at a time.

    A line longer than max_line_bytes is dropped as it is read (never held whole) and a line that is not UTF-8
    is dropped too; both are reported through on_bad_line and stand as an empty line, so the count of lines
    consumed (csv.reader's line_num) stays the file's line number.
    """
    pending = bytearray()  # the start of a line whose end has not been read yet (at most max_line_bytes)
    number = 0  # lines yielded so far
    discarding = False  # inside an over-long line, dropping bytes until its newline
    first = True
    while chunk := stream.read(CHUNK_BYTES):
        start = 0
        if discarding:
            cut = chunk.find(b"\n")
            if cut < 0:
                continue
            start, discarding = cut + 1, False
            number += 1
            yield ""
        end = chunk.rfind(b"\n", start)
        if end < 0:
            if len(pending) + len(chunk) - start > max_line_bytes:
                on_bad_line(number + 1, "line_too_long", f"longer than {max_line_bytes} bytes")
                pending.clear()
                discarding = True
            else:
                pending += memoryview(chunk)[start:]
            continue
        block = bytes(pending) + chunk[start : end + 1] if pending else chunk[start : end + 1]
        pending = bytearray(memoryview(chunk)[end + 1 :])
        for line in _decoded(block, number, max_line_bytes, on_bad_line, first):
            number += 1
            yield line
        first = False
    if discarding:
        yield ""
    elif pending:
        yield from _decoded(bytes(pending) + b"\n", number, max_line_bytes, on_bad_line, first)


def _decoded(block: bytes, before: int, max_line_bytes: int, on_bad_line: BadLine, first: bool) -> list[str]:
    """Whole lines (block ends with a newline) as text. A newline byte never occurs inside a multi-byte UTF-8
    character, so a block of whole lines decodes on its own; only when it fails is each line tried alone."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        lines = []
        for offset, raw in enumerate(block.split(b"\n")[:-1], start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                on_bad_line(before + offset, "not_utf8", f"byte {exc.start + 1} is not UTF-8")
                lines.append("")
    else:
        lines = text.split("\n")[:-1]
    if first and lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    for index, line in enumerate(lines):
        if len(line) > max_line_bytes:  # a whole line inside one chunk can still be over the limit
            on_bad_line(before + index + 1, "line_too_long", f"longer than {max_line_bytes} bytes")
            lines[index] = ""
        elif line.endswith("\r"):
            lines[index] = line[:-1]
    return lines


def epoch_seconds(value: float) -> float:
    """Seconds since 1970-01-01 UTC from a number of seconds or milliseconds, finite and within 2000..2099."""
    if not math.isfinite(value):
        raise TimestampError(f"{value} is not a finite time")
    seconds = value / 1000 if value >= MILLISECONDS_FROM else value
    if not EARLIEST_S <= seconds < LATEST_S:
        raise TimestampError(
            f"{value:g} is outside 2000-01-01..2099-12-31 as seconds or milliseconds since 1970-01-01 UTC"
        )
    return seconds


def parse_timestamp(text: str) -> float:
    """An ISO 8601 time (UTC when it has no offset) or a Unix time in seconds or milliseconds, as epoch seconds."""
    text = text.strip()
    if len(text) >= 10 and text[4:5] == "-":
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise TimestampError(f"{shown(text)} is not a timestamp: {exc}") from exc
        seconds = (moment - (NAIVE_EPOCH if moment.tzinfo is None else AWARE_EPOCH)).total_seconds()
        if not EARLIEST_S <= seconds < LATEST_S:
            raise TimestampError(f"{shown(text)} is outside 2000-01-01..2099-12-31")
        return seconds
    try:
        value = float(text)
    except ValueError as exc:
        raise TimestampError(
            f"{shown(text)} is not a timestamp (ISO 8601, or seconds or milliseconds since 1970 UTC)"
        ) from exc
    if not math.isfinite(value):
        raise TimestampError(f"{shown(text)} is not a finite time")
    return epoch_seconds(value)
