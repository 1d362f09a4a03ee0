"""Request logs to a workload profile, in one pass and constant memory. Pure, no Django.

Formats, as their owners publish them (a CSV header row, or JSON Lines: one object per line):

- ``azure``: the Azure LLM inference traces (Azure/AzurePublicDataset, AzureLLMInferenceDataset2023.md and
  2024.md: ``TIMESTAMP,ContextTokens,GeneratedTokens``; timestamps as in data/AzureLLMInferenceTrace_code.csv at
  commit 7909210, ``2023-11-16 18:17:03.9799600``, and in the 2024 notebook at commit 7f7c0f4,
  ``2024-05-10 00:00:00.009930+00:00``).
- ``openai``: usage records as the OpenAI API returns them (openai-python ``ChatCompletion``: ``created`` in Unix
  seconds and ``usage.prompt_tokens`` / ``usage.completion_tokens``; ``Response``: ``created_at`` and
  ``usage.input_tokens`` / ``usage.output_tokens``), one per line, or wrapped as Batch API output lines
  (``{"custom_id", "response": {"status_code", "body": …}, "error"}``); as CSV, the same dotted column names.
- ``litellm``: LiteLLM proxy spend logs (``LiteLLM_SpendLogs`` in BerriAI/litellm schema.prisma at commit
  029f645: ``startTime``, ``prompt_tokens``, ``completion_tokens``, ``status`` "success"/"failure"), as a table
  export (CSV) or rows as JSON Lines.
- ``plain``: ``timestamp,input_tokens,output_tokens``.

Timestamps are ISO 8601 (UTC when they carry no offset) or Unix seconds (milliseconds above 1e11).

Derived, for the workload document:

- requests per second for each hour of the day (UTC): the requests that arrived in that hour of the day divided
  by the time the log observed that hour of the day (between its first and last request); an hour observed for
  under 5 minutes in all has no rate (0, and it is listed). With every hour observed at least 30 minutes on
  both weekdays and weekend days, a weekday curve and a weekend curve as well.
- length histograms of prompts and outputs (apps/workloads/histograms.py), with mean, p50, p95 and max.
- burstiness: the coefficient of variation (standard deviation / mean) of the gaps between consecutive
  arrivals. It is taken within each clock hour (so a rate that changes over the day does not pass for
  bursts), averaged over the clock hours of each hour of the day weighted by their gaps; 1 is a Poisson
  process, above 1 bursty, below 1 regular. Arrivals are put in time order through a window of
  REORDER_WINDOW rows (logs written at completion are slightly out of order); an arrival later than that is
  counted and left out of the gaps. With whole-second timestamps the rounding's variance (1/6 s²) is taken
  off and clock hours whose mean gap is under 5 s are not measured.

Rows that cannot be used are skipped and counted by reason, with the first few as examples.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from apps.workloads.histograms import MAX_TOKENS, LengthHistogram
from apps.workloads.streams import (
    Readable,
    TimestampError,
    epoch_seconds,
    parse_timestamp,
    shown,
    text_lines,
)

HOURS = 24
HOUR_S = 3600
DAY_S = 86_400
MAX_LINE_BYTES = 4 << 20  # a JSON line with a stored prompt and response; anything longer is dropped unread
MAX_EXAMPLES = 5
MIN_OBSERVED_S = 300  # an hour of the day seen for less than this in all has no rate
MIN_DAYTYPE_OBSERVED_S = 1800  # per (weekday or weekend, hour) for the two separate curves
REORDER_WINDOW = 8192
MIN_SLOT_GAPS = 10  # gaps in one clock hour for its coefficient of variation to count
MIN_HOUR_GAPS = 20  # gaps in an hour of the day for it to have its own value
WHOLE_SECOND_GAP_VARIANCE = 1 / 6  # two roundings to whole seconds, each uniform: 2 × 1/12 s²
WHOLE_SECOND_MIN_MEAN_GAP_S = 5.0
SATURDAY = 5  # Monday is 0
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday


class LogFormat(StrEnum):
    AZURE = "azure"
    OPENAI = "openai"
    LITELLM = "litellm"
    PLAIN = "plain"


REASONS = {
    "bad_timestamp": "the timestamp is not a time in 2000..2099",
    "bad_tokens": f"a token count is not a whole number from 0 to {MAX_TOKENS}",
    "zero_tokens": "the prompt or the output has 0 tokens",
    "over_context": "prompt + output tokens exceed the model's context",
    "missing_field": "a column or key the format needs is missing or empty",
    "failed_request": "the log marks the request as failed",
    "malformed_csv": "the CSV row cannot be parsed",
    "cell_too_large": f"a CSV cell is longer than {csv.field_size_limit()} characters",
    "malformed_json": "the line is not a JSON object",
    "line_too_long": f"the line is longer than {MAX_LINE_BYTES} bytes",
    "not_utf8": "the line is not UTF-8 text",
}


@dataclass(frozen=True)
class Columns:
    """Where a format keeps the arrival time and the token counts (CSV column names, or dotted JSON paths)."""

    timestamp: str
    prompt: str
    output: str
    status: str | None = None


FORMAT_COLUMNS: dict[LogFormat, tuple[Columns, ...]] = {
    LogFormat.AZURE: (Columns("TIMESTAMP", "ContextTokens", "GeneratedTokens"),),
    LogFormat.OPENAI: (
        Columns("created", "usage.prompt_tokens", "usage.completion_tokens"),
        Columns("created_at", "usage.input_tokens", "usage.output_tokens"),
    ),
    LogFormat.LITELLM: (Columns("startTime", "prompt_tokens", "completion_tokens", status="status"),),
    LogFormat.PLAIN: (Columns("timestamp", "input_tokens", "output_tokens"),),
}


def expected_headers() -> str:
    return "; ".join(
        f"{fmt.value}: {','.join((c.timestamp, c.prompt, c.output))}"
        for fmt, variants in FORMAT_COLUMNS.items()
        for c in variants
    )


class LogImportError(ValueError):
    """The file cannot become a workload; the message says why and what would work."""


class RowProblem(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Skips:
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, line: int, reason: str, detail: str) -> None:
        """Count the row; keep it as an example if it is among the first MAX_EXAMPLES lines skipped (lines
        dropped while decoding are reported before the rows above them are parsed)."""
        self.counts[reason] += 1
        example = {"line": line, "reason": reason, "detail": detail}
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)
        elif line < self.examples[-1]["line"]:
            self.examples[-1] = example
        else:
            return
        self.examples.sort(key=lambda e: e["line"])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        reasons = ", ".join(f"{REASONS[r]} ({n})" for r, n in self.counts.most_common())
        examples = "; ".join(f"line {e['line']}: {e['detail']}" for e in self.examples[:3])
        return f"{reasons}. {examples}".strip()


def tokens_of(value: object, name: str) -> int:
    if type(value) is str:  # the common case first: a CSV cell holding digits
        try:
            count = int(value)
        except ValueError:
            pass
        else:
            if 0 <= count <= MAX_TOKENS:
                return count
    if isinstance(value, bool) or value is None:
        raise RowProblem("bad_tokens" if value is not None else "missing_field", f"{name} is {value!r}")
    if isinstance(value, int):
        count = value
    elif isinstance(value, float) and value.is_integer():
        count = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise RowProblem("missing_field", f"{name} is empty")
        try:
            count = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise RowProblem("bad_tokens", f"{name} {shown(text)} is not a number") from None
            if not number.is_integer():
                raise RowProblem("bad_tokens", f"{name} {shown(text)} is not a whole number") from None
            count = int(number)
    else:
        raise RowProblem("bad_tokens", f"{name} {shown(str(value))} is not a whole number")
    if not 0 <= count <= MAX_TOKENS:
        raise RowProblem("bad_tokens", f"{name} {count} is outside 0..{MAX_TOKENS}")
    return count


def time_of(value: object, name: str) -> float:
    try:
        if isinstance(value, str):
            if not value.strip():
                raise RowProblem("missing_field", f"{name} is empty")
            return parse_timestamp(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return epoch_seconds(float(value))
    except TimestampError as exc:
        raise RowProblem("bad_timestamp", f"{name}: {exc}") from None
    except OverflowError:  # an integer too large for a float
        raise RowProblem("bad_timestamp", f"{name} is out of range") from None
    raise RowProblem("missing_field" if value is None else "bad_timestamp", f"{name} is {shown(repr(value))}")


# Arrivals and lengths


@dataclass
class ArrivalStats:
    """Counts by (weekday, hour) and the inter-arrival statistics, fed one arrival at a time."""

    counts: list[int] = field(default_factory=lambda: [0] * (7 * HOURS))
    first_s: float = math.inf
    last_s: float = -math.inf
    whole_seconds: bool = True
    late: int = 0
    _heap: list[float] = field(default_factory=list)
    _emitted_s: float = -math.inf
    _slot: int = -1
    _gaps: int = 0
    _mean: float = 0.0
    _m2: float = 0.0
    # Per hour of the day: gaps weighted and coefficient-of-variation × gaps summed, for sub-second and for
    # whole-second timestamps (which one applies is known only at the end of the file).
    _weight: list[list[int]] = field(default_factory=lambda: [[0] * HOURS, [0] * HOURS])
    _weighted_cv: list[list[float]] = field(default_factory=lambda: [[0.0] * HOURS, [0.0] * HOURS])

    def add(self, moment: float) -> None:
        slot = int(moment // HOUR_S)
        self.counts[((slot // HOURS + EPOCH_WEEKDAY) % 7) * HOURS + slot % HOURS] += 1
        if moment < self.first_s:
            self.first_s = moment
        if moment > self.last_s:
            self.last_s = moment
        if self.whole_seconds and not moment.is_integer():
            self.whole_seconds = False
        if len(self._heap) < REORDER_WINDOW:
            heapq.heappush(self._heap, moment)
        else:
            self._emit(heapq.heappushpop(self._heap, moment))

    def finish(self) -> None:
        while self._heap:
            self._emit(heapq.heappop(self._heap))
        self._fold()

    def _emit(self, moment: float) -> None:
        if moment < self._emitted_s:
            self.late += 1
            return
        slot = int(moment // HOUR_S)
        if slot == self._slot:
            gap = moment - self._emitted_s
            self._gaps += 1
            delta = gap - self._mean
            self._mean += delta / self._gaps
            self._m2 += delta * (gap - self._mean)
        else:
            self._fold()
            self._slot, self._gaps, self._mean, self._m2 = slot, 0, 0.0, 0.0
        self._emitted_s = moment

    def _fold(self) -> None:
        if self._gaps < MIN_SLOT_GAPS or self._mean <= 0:
            return
        hour = self._slot % HOURS
        variance = self._m2 / (self._gaps - 1)
        self._weight[0][hour] += self._gaps
        self._weighted_cv[0][hour] += self._gaps * math.sqrt(variance) / self._mean
        if self._mean >= WHOLE_SECOND_MIN_MEAN_GAP_S:
            corrected = max(variance - WHOLE_SECOND_GAP_VARIANCE, 0.0)
            self._weight[1][hour] += self._gaps
            self._weighted_cv[1][hour] += self._gaps * math.sqrt(corrected) / self._mean

    def observed_s(self) -> list[float]:
        """Seconds of each (weekday, hour) between the first and the last arrival."""
        observed = [0.0] * (7 * HOURS)
        for slot in range(int(self.first_s // HOUR_S), int(self.last_s // HOUR_S) + 1):
            start, end = max(self.first_s, slot * HOUR_S), min(self.last_s, (slot + 1) * HOUR_S)
            observed[((slot // HOURS + EPOCH_WEEKDAY) % 7) * HOURS + slot % HOURS] += end - start
        return observed

    def burstiness(self, *, every_hour_observed: bool) -> tuple[list[float] | float | None, str]:
        resolution = 1 if self.whole_seconds else 0
        weight, weighted = self._weight[resolution], self._weighted_cv[resolution]
        if sum(weight) < MIN_HOUR_GAPS:
            why = (
                "timestamps are whole seconds and requests come less than 5 s apart"
                if self.whole_seconds
                else "too few arrivals close together"
            )
            return None, f"Burstiness not measured: {why}."
        overall = round(sum(weighted) / sum(weight), 3)
        if not every_hour_observed:
            return overall, "One value: the log does not cover every hour of the day."
        hourly = [
            round(weighted[h] / weight[h], 3) if weight[h] >= MIN_HOUR_GAPS else overall for h in range(HOURS)
        ]
        filled = [h for h in range(HOURS) if weight[h] < MIN_HOUR_GAPS]
        note = (
            f"Hours {', '.join(map(str, filled))} had too few gaps and take the all-day value."
            if filled
            else ""
        )
        return hourly, note


@dataclass
class LogProfile:
    log_format: LogFormat
    rows: int
    arrivals: ArrivalStats
    prompt: LengthHistogram
    output: LengthHistogram
    skips: Skips

    @property
    def used(self) -> int:
        return self.prompt.total

    @cached_property
    def _curves(self) -> tuple[list[float], list[int], list[float] | None, list[float] | None]:
        counts, observed = self.arrivals.counts, self.arrivals.observed_s()

        def rates(days: range) -> tuple[list[float], list[float]]:
            seen = [sum(observed[d * HOURS + h] for d in days) for h in range(HOURS)]
            arrived = [sum(counts[d * HOURS + h] for d in days) for h in range(HOURS)]
            return [
                round(arrived[h] / seen[h], 6) if seen[h] >= MIN_OBSERVED_S else 0.0 for h in range(HOURS)
            ], seen

        hourly, seen = rates(range(7))
        missing = [h for h in range(HOURS) if seen[h] < MIN_OBSERVED_S]
        weekday, weekday_seen = rates(range(SATURDAY))
        weekend, weekend_seen = rates(range(SATURDAY, 7))
        if min(weekday_seen + weekend_seen) >= MIN_DAYTYPE_OBSERVED_S:
            return hourly, missing, weekday, weekend
        return hourly, missing, None, None

    def traffic(self) -> dict[str, Any]:
        hourly, missing, weekday, weekend = self._curves
        traffic: dict[str, Any] = {"hourly_requests_per_s": hourly}
        cv, _ = self.arrivals.burstiness(every_hour_observed=not missing)
        if cv is not None:
            traffic["burstiness_cv"] = cv
        if weekday is not None and weekend is not None:
            traffic["weekday_hourly_requests_per_s"] = weekday
            traffic["weekend_hourly_requests_per_s"] = weekend
        return traffic

    def summary(self) -> dict[str, Any]:
        """What the import read and left out, for the user (kept with the workload)."""
        _, missing, weekday, _ = self._curves
        _, burstiness_note = self.arrivals.burstiness(every_hour_observed=not missing)
        notes = [burstiness_note] if burstiness_note else []
        if missing:
            notes.append(
                f"No rate for hours {', '.join(map(str, missing))} UTC: the log covers under 5 minutes of each."
            )
        if weekday is None:
            notes.append("No weekday and weekend curves: the log does not cover every hour on both.")
        if self.arrivals.late:
            notes.append(
                f"{self.arrivals.late} arrivals more than {REORDER_WINDOW} rows out of order were left out of the burstiness."
            )
        return {
            "format": self.log_format.value,
            "rows_read": self.rows,
            "rows_used": self.used,
            "rows_skipped": self.skips.total,
            "skipped_by_reason": dict(self.skips.counts.most_common()),
            "skipped_examples": list(self.skips.examples),
            "first_request_at": _iso(self.arrivals.first_s),
            "last_request_at": _iso(self.arrivals.last_s),
            "hours_without_data": missing,
            "notes": notes,
        }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat().replace("+00:00", "Z")


# Reading


@dataclass
class Collector:
    """What the reading loop feeds: arrivals, lengths, and the rows left out."""

    limit: int
    skips: Skips = field(default_factory=Skips)
    arrivals: ArrivalStats = field(default_factory=ArrivalStats)
    prompt: LengthHistogram = field(default_factory=LengthHistogram.empty)
    output: LengthHistogram = field(default_factory=LengthHistogram.empty)
    rows: int = 0

    def take(self, number: int, moment: float, prompt_tokens: int, output_tokens: int) -> None:
        if not prompt_tokens or not output_tokens:
            self.skips.add(number, "zero_tokens", f"{prompt_tokens} prompt and {output_tokens} output tokens")
        elif prompt_tokens + output_tokens > self.limit:
            self.skips.add(
                number, "over_context", f"{prompt_tokens} + {output_tokens} tokens is over {self.limit}"
            )
        else:
            self.arrivals.add(moment)
            self.prompt.add(prompt_tokens)
            self.output.add(output_tokens)


def profile_log(
    stream: Readable, *, log_format: LogFormat | None = None, max_total_tokens: int | None = None
) -> LogProfile:
    """Read a whole log once; raises LogImportError when it has no usable row or cannot be read at all."""
    collector = Collector(limit=max_total_tokens if max_total_tokens is not None else 2 * MAX_TOKENS)
    lines = text_lines(stream, max_line_bytes=MAX_LINE_BYTES, on_bad_line=collector.skips.add)
    leading = 0
    for first in lines:
        leading += 1
        if first.strip():
            break
    else:
        if collector.skips.total:
            raise LogImportError(f"No usable rows: {collector.skips.describe()}")
        raise LogImportError("The file is empty.")
    if first.lstrip().startswith("["):
        raise LogImportError(
            "The file is one JSON array; give JSON Lines (one object per line), e.g. `jq -c '.[]' spend.json`."
        )
    if first.lstrip().startswith("{"):
        fmt = _read_jsonl(first, lines, leading, log_format, collector)
    else:
        fmt = _read_csv(first, lines, leading, log_format, collector)
    collector.arrivals.finish()
    profile = LogProfile(
        fmt, collector.rows, collector.arrivals, collector.prompt, collector.output, collector.skips
    )
    if not profile.used:
        raise LogImportError(
            f"No usable rows: all {collector.rows} were skipped: {collector.skips.describe()}"
        )
    if not any(profile.traffic()["hourly_requests_per_s"]):
        span_s = collector.arrivals.last_s - collector.arrivals.first_s
        raise LogImportError(
            f"The log's {profile.used} requests span {span_s:.0f} s: it must cover at least "
            f"{MIN_OBSERVED_S // 60} minutes of some hour to give a request rate."
        )
    return profile


def _read_csv(
    header_line: str, lines: Iterator[str], leading: int, log_format: LogFormat | None, collector: Collector
) -> LogFormat:
    try:
        header = [cell.strip() for cell in next(csv.reader([header_line]))]
    except csv.Error as exc:
        raise LogImportError(f"Line {leading}: the header row cannot be read as CSV ({exc}).") from exc
    index = {name.lower(): position for position, name in enumerate(header)}
    found = _match(log_format, lambda c: all(n.lower() in index for n in (c.timestamp, c.prompt, c.output)))
    if found is None:
        wanted = f"for --format {log_format.value}" if log_format else "of a known format"
        raise LogImportError(
            f"Line {leading}: the header {shown(','.join(header), 120)} lacks the columns {wanted} "
            f"({expected_headers()})."
        )
    fmt, columns = found
    ts_at, prompt_at, output_at = (
        index[n.lower()] for n in (columns.timestamp, columns.prompt, columns.output)
    )
    status_at = index.get(columns.status.lower()) if columns.status else None
    reader = csv.reader(lines)
    # The hot loop: a well-formed row goes straight to the accumulators; anything unusual goes through
    # _csv_row, which names the problem. Bound names, because this runs once per row of a gigabyte file.
    add_arrival, add_prompt, add_output = collector.arrivals.add, collector.prompt.add, collector.output.add
    limit, rows = collector.limit, 0
    while True:
        try:
            for row in reader:
                if not row:
                    continue
                rows += 1
                try:
                    moment = parse_timestamp(row[ts_at])
                    prompt_tokens, output_tokens = int(row[prompt_at]), int(row[output_at])
                except (IndexError, ValueError):
                    pass
                else:
                    if (
                        0 < prompt_tokens <= MAX_TOKENS
                        and 0 < output_tokens <= MAX_TOKENS
                        and prompt_tokens + output_tokens <= limit
                        and (status_at is None or status_at >= len(row) or row[status_at] in ("", "success"))
                    ):
                        add_arrival(moment)
                        add_prompt(prompt_tokens)
                        add_output(output_tokens)
                        continue
                if len(row) == 1 and not row[0].strip():
                    rows -= 1
                    continue
                _csv_row(
                    row,
                    leading + reader.line_num,
                    columns,
                    (ts_at, prompt_at, output_at, status_at),
                    collector,
                )
            break
        except csv.Error as exc:  # the reader goes on with the next line
            rows += 1
            reason = "cell_too_large" if "field larger than field limit" in str(exc) else "malformed_csv"
            collector.skips.add(leading + reader.line_num, reason, str(exc))
    collector.rows = rows
    return fmt


def _csv_row(
    row: list[str],
    number: int,
    columns: Columns,
    positions: tuple[int, int, int, int | None],
    collector: Collector,
) -> None:
    ts_at, prompt_at, output_at, status_at = positions
    try:
        if len(row) <= max(ts_at, prompt_at, output_at):
            raise RowProblem("missing_field", f"{len(row)} columns, fewer than the header's")
        if status_at is not None and status_at < len(row) and row[status_at].strip() not in ("", "success"):
            raise RowProblem("failed_request", f"status {shown(row[status_at])}")
        collector.take(
            number,
            time_of(row[ts_at], columns.timestamp),
            tokens_of(row[prompt_at], columns.prompt),
            tokens_of(row[output_at], columns.output),
        )
    except RowProblem as problem:
        collector.skips.add(number, problem.reason, problem.detail)


def _read_jsonl(
    first_line: str, lines: Iterator[str], leading: int, log_format: LogFormat | None, collector: Collector
) -> LogFormat:
    try:
        sample = json.loads(first_line)
    except (ValueError, RecursionError):
        sample = None
    if _is_batch_line(sample) and log_format in (None, LogFormat.OPENAI):
        found: tuple[LogFormat, Columns] | None = (LogFormat.OPENAI, FORMAT_COLUMNS[LogFormat.OPENAI][0])
    else:
        found = _match(
            log_format, lambda c: isinstance(sample, dict) and _lookup(sample, c.timestamp) is not None
        )
    if found is None:
        wanted = f"for --format {log_format.value}" if log_format else "of a known format"
        keys = ", ".join(sorted(sample)[:12]) if isinstance(sample, dict) else "none"
        raise LogImportError(
            f"Line {leading}: the first record (keys: {shown(keys, 120)}) lacks the keys {wanted} ({expected_headers()})."
        )
    fmt, _ = found
    variants = FORMAT_COLUMNS[fmt]
    for number, line in enumerate(itertools.chain([first_line], lines), start=leading):
        if not line.strip():
            continue
        collector.rows += 1
        try:
            try:
                record = _unwrap_batch(json.loads(line))
            except (ValueError, RecursionError) as exc:
                raise RowProblem("malformed_json", f"not JSON ({str(exc)[:60]})") from None
            if not isinstance(record, dict):
                raise RowProblem("malformed_json", f"a JSON {type(record).__name__}, not an object")
            columns = next((c for c in variants if _lookup(record, c.timestamp) is not None), variants[0])
            if columns.status and record.get(columns.status) not in (None, "", "success"):
                raise RowProblem("failed_request", f"status {shown(str(record.get(columns.status)))}")
            collector.take(
                number,
                time_of(_lookup(record, columns.timestamp), columns.timestamp),
                tokens_of(_lookup(record, columns.prompt), columns.prompt),
                tokens_of(_lookup(record, columns.output), columns.output),
            )
        except RowProblem as problem:
            collector.skips.add(number, problem.reason, problem.detail)
    return fmt


def _match(log_format: LogFormat | None, fits: Callable[[Columns], bool]) -> tuple[LogFormat, Columns] | None:
    formats = [log_format] if log_format else list(LogFormat)
    for fmt in formats:
        for columns in FORMAT_COLUMNS[fmt]:
            if fits(columns):
                return fmt, columns
    return None


def _lookup(record: dict[str, Any], path: str) -> Any:
    """`usage.prompt_tokens` in a nested object, or as a flat key (some exports flatten)."""
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _is_batch_line(record: Any) -> bool:
    return isinstance(record, dict) and "custom_id" in record and "response" in record


def _unwrap_batch(record: Any) -> Any:
    """An OpenAI Batch API output line carries the response body inside; a failed one has no usage."""
    if not _is_batch_line(record):
        return record
    response = record.get("response")
    if record.get("error") or not isinstance(response, dict):
        raise RowProblem("failed_request", f"batch error {shown(str(record.get('error')))}")
    if response.get("status_code") != 200:
        raise RowProblem("failed_request", f"batch status_code {shown(str(response.get('status_code')))}")
    return response.get("body")
