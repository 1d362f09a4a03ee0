"""Traffic curves from CSV: request timestamps, or counts per hour. Pure functions, no Django.

A curve is 24 request rates (requests per second), hour 0..23 UTC, averaged over the days the file covers.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime

HOURS = 24
MAX_CSV_ROWS = 2_000_000


class TrafficImportError(ValueError):
    pass


def _parse_timestamp(raw: str) -> datetime:
    text = raw.strip()
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TrafficImportError(f"not a timestamp: {text[:40]!r}") from exc
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def curve_from_timestamps(lines: list[str]) -> list[float]:
    counts: dict[tuple[object, int], int] = defaultdict(int)
    days = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            moment = _parse_timestamp(line.split(",")[0])
        except TrafficImportError as exc:
            raise TrafficImportError(f"line {number}: {exc}") from exc
        days.add(moment.date())
        counts[(moment.date(), moment.hour)] += 1
    if not days:
        raise TrafficImportError("no timestamps found")
    per_hour = [0.0] * HOURS
    for (_, hour), count in counts.items():
        per_hour[hour] += count
    return [round(total / len(days) / 3600, 6) for total in per_hour]


def curve_from_hourly_counts(rows: list[list[str]]) -> list[float]:
    """Rows of (hour, requests in that hour); an hour given on several days is averaged."""
    totals = [0.0] * HOURS
    seen = [0] * HOURS
    for number, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise TrafficImportError(f"line {number}: expected hour,requests")
        try:
            hour = int(float(row[0]))
            count = float(row[1])
        except ValueError as exc:
            raise TrafficImportError(f"line {number}: hour and requests must be numbers") from exc
        if not 0 <= hour < HOURS:
            raise TrafficImportError(f"line {number}: hour {hour} is outside 0..23")
        if not count >= 0 or count == float("inf"):
            raise TrafficImportError(f"line {number}: requests must be a finite number ≥ 0")
        totals[hour] += count
        seen[hour] += 1
    missing = [hour for hour in range(HOURS) if not seen[hour]]
    if missing:
        raise TrafficImportError(f"hours without a count: {', '.join(map(str, missing))}")
    return [round(totals[hour] / seen[hour] / 3600, 6) for hour in range(HOURS)]


def curve_from_csv(text: str) -> list[float]:
    """Detect the format from the header: `hour,requests` (counts) or a timestamp column."""
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) > MAX_CSV_ROWS:
        raise TrafficImportError(f"the file has more than {MAX_CSV_ROWS} rows")
    if not rows:
        raise TrafficImportError("the file is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    if header[:1] == ["hour"]:
        return curve_from_hourly_counts(rows[1:])
    has_header = header[:1] in (["timestamp"], ["time"], ["ts"], ["created_at"])
    body = rows[1:] if has_header else rows
    return curve_from_timestamps([row[0] if row else "" for row in body])
