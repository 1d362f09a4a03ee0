"""Traffic curves from CSV: request timestamps, or counts per hour. Pure functions, no Django.

A curve is 24 request rates (requests per second), hour 0..23 UTC, averaged over the days the file covers.
The file is read as a stream, one chunk and one line at a time, whatever its size; the first bad line stops
the import with its line number (a curve is replaced whole or not at all).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from apps.workloads.streams import Readable, TimestampError, parse_timestamp, shown, text_lines

HOURS = 24
DAY_S = 86_400
HOUR_S = 3600
MAX_LINE_BYTES = 1 << 20  # above csv's cell limit (128 KiB), so an oversized cell is named as such
TIMESTAMP_HEADERS = ("timestamp", "time", "ts", "created_at")


class TrafficImportError(ValueError):
    pass


def _rows(stream: Readable) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of the non-blank rows; a line or cell too long, or not UTF-8, stops the import."""

    def refuse(number: int, _reason: str, detail: str) -> None:
        raise TrafficImportError(f"line {number}: {detail}")

    reader = csv.reader(text_lines(stream, max_line_bytes=MAX_LINE_BYTES, on_bad_line=refuse))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            limit = csv.field_size_limit()
            detail = f"a cell is longer than {limit} characters" if "field limit" in str(exc) else str(exc)
            raise TrafficImportError(f"line {reader.line_num}: {detail}") from exc
        if row and "".join(row).strip():
            yield reader.line_num, row


def curve_from_timestamps(rows: Iterator[tuple[int, list[str]]]) -> list[float]:
    """Per hour of the day, the requests in that hour over the number of distinct days in the file."""
    per_hour = [0] * HOURS
    days: set[int] = set()  # bounded: timestamps lie within 2000..2099
    for number, row in rows:
        try:
            moment = parse_timestamp(row[0])
        except TimestampError as exc:
            raise TrafficImportError(f"line {number}: {exc}") from exc
        day, second = divmod(int(moment), DAY_S)
        days.add(day)
        per_hour[second // HOUR_S] += 1
    if not days:
        raise TrafficImportError("no timestamps found")
    return [round(total / len(days) / HOUR_S, 6) for total in per_hour]


def curve_from_hourly_counts(rows: Iterator[tuple[int, list[str]]]) -> list[float]:
    """Rows of (hour, requests in that hour); an hour given on several days is averaged."""
    totals = [0.0] * HOURS
    seen = [0] * HOURS
    for number, row in rows:
        if len(row) < 2:
            raise TrafficImportError(f"line {number}: expected hour,requests")
        try:
            hour_value, count = float(row[0]), float(row[1])
        except ValueError as exc:
            raise TrafficImportError(f"line {number}: hour and requests must be numbers") from exc
        if not (hour_value.is_integer() and 0 <= hour_value < HOURS):
            raise TrafficImportError(f"line {number}: hour {shown(row[0].strip())} is outside 0..23")
        if not 0 <= count < float("inf"):
            raise TrafficImportError(f"line {number}: requests must be a finite number ≥ 0")
        hour = int(hour_value)
        totals[hour] += count
        seen[hour] += 1
    missing = [hour for hour in range(HOURS) if not seen[hour]]
    if missing:
        raise TrafficImportError(f"hours without a count: {', '.join(map(str, missing))}")
    return [round(totals[hour] / seen[hour] / HOUR_S, 6) for hour in range(HOURS)]


def curve_from_csv(stream: Readable) -> list[float]:
    """Detect the format from the header: `hour,requests` (counts) or a timestamp column (or no header)."""
    rows = _rows(stream)
    first = next(rows, None)
    if first is None:
        raise TrafficImportError("the file is empty")
    header = [cell.strip().lower() for cell in first[1]]
    if header[:1] == ["hour"]:
        return curve_from_hourly_counts(rows)
    if header[:1] and header[0] in TIMESTAMP_HEADERS:
        return curve_from_timestamps(rows)
    return curve_from_timestamps(_chain(first, rows))


def _chain(
    first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]
) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest
