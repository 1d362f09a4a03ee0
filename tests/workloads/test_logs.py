"""Request logs to workload profiles (apps/workloads/logs.py), on files in each real format."""

from __future__ import annotations

import io
import itertools
import statistics
import tracemalloc
from collections.abc import Callable, Iterable, Iterator

import pytest

from apps.workloads.histograms import LOG_EDGES, quantile
from apps.workloads.logs import MAX_LINE_BYTES, REORDER_WINDOW, LogFormat, LogImportError, profile_log
from tests.workloads import logfiles
from tests.workloads.logfiles import Request, arrivals, encoded, requests, utc

MONDAY = utc("2024-05-06T00:00:00")  # a Monday, 00:00 UTC
HOUR = 3600


def profile(data: bytes, **kwargs: object):  # type: ignore[no-untyped-def]
    return profile_log(io.BytesIO(data), **kwargs)  # type: ignore[arg-type]


def business_day(seed: int = 0) -> list[Request]:
    """One Monday: 0.5 requests/s from 09:00 to 17:00 UTC, 0.05/s otherwise."""
    times: list[float] = []
    for hour in range(24):
        rate = 0.5 if 9 <= hour < 17 else 0.05
        times += arrivals(start_s=MONDAY + hour * HOUR, seconds=HOUR, rate_per_s=rate, seed=seed + hour)
    return requests(times, seed=seed)


DAY = business_day()

FORMATS: list[tuple[str, Callable[[Iterable[Request]], Iterator[str]], LogFormat]] = [
    ("azure 2023", logfiles.azure_2023_csv, LogFormat.AZURE),
    ("azure 2024", logfiles.azure_2024_csv, LogFormat.AZURE),
    ("openai chat jsonl", logfiles.openai_chat_jsonl, LogFormat.OPENAI),
    ("openai batch jsonl", logfiles.openai_batch_jsonl, LogFormat.OPENAI),
    ("openai responses csv", logfiles.openai_responses_csv, LogFormat.OPENAI),
    ("litellm csv", logfiles.litellm_csv, LogFormat.LITELLM),
    ("litellm jsonl", logfiles.litellm_jsonl, LogFormat.LITELLM),
    ("plain csv", logfiles.plain_csv, LogFormat.PLAIN),
]


@pytest.mark.parametrize(("label", "write", "fmt"), FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_is_detected_and_gives_the_curve_and_lengths(
    label: str, write: Callable[[Iterable[Request]], Iterator[str]], fmt: LogFormat
) -> None:
    # given a day of a business-hours workload written in the format
    data = encoded(write(DAY))

    # when it is read without naming the format, and again naming it
    found = profile(data)
    named = profile(data, log_format=fmt)

    # then the format, every row, the hourly rates and the exact length statistics come out
    assert found.log_format is fmt
    assert named.used == found.used == len(DAY)
    assert found.skips.total == 0
    traffic = found.traffic()
    rates = traffic["hourly_requests_per_s"]
    assert statistics.mean(rates[9:17]) == pytest.approx(0.5, rel=0.06)
    assert statistics.mean(rates[:9] + rates[17:]) == pytest.approx(0.05, rel=0.15)
    prompt = found.prompt.to_distribution()
    assert prompt["mean"] == pytest.approx(statistics.mean(r.prompt for r in DAY), abs=0.05)
    assert prompt["max"] == max(r.prompt for r in DAY)
    assert sum(prompt["histogram"]["counts"]) == len(DAY)
    assert "weekday_hourly_requests_per_s" not in traffic  # one day is not a week


def test_histogram_counts_each_length_in_its_log_spaced_bin() -> None:
    lengths = [1, 1, 2, 7, 8, 9, 10, 600, 600, 601, 100_000]
    rows = [Request(MONDAY + i * 60, n, 10) for i, n in enumerate(lengths)]

    distribution = profile(encoded(logfiles.plain_csv(rows))).prompt.to_distribution()

    edges, counts = distribution["histogram"]["edges"], distribution["histogram"]["counts"]
    assert edges[0] == 1
    assert edges[-1] > 100_000 >= edges[-2]
    for length in set(lengths):
        at = max(i for i, edge in enumerate(edges) if edge <= length)
        assert counts[at] >= lengths.count(length)
    assert sum(counts) == len(lengths)
    assert set(edges) <= set(LOG_EDGES)
    assert distribution["mean"] == pytest.approx(sum(lengths) / len(lengths), abs=0.05)
    assert distribution["max"] == 100_000


def test_percentiles_come_from_the_histogram_within_a_bin() -> None:
    distribution = profile(encoded(logfiles.plain_csv(DAY))).prompt.to_distribution()

    prompts = sorted(r.prompt for r in DAY)
    true_p50, true_p95 = prompts[len(prompts) // 2], prompts[int(len(prompts) * 0.95)]
    assert distribution["p50"] == pytest.approx(true_p50, rel=0.19)
    assert distribution["p95"] == pytest.approx(true_p95, rel=0.19)
    edges, counts = distribution["histogram"]["edges"], distribution["histogram"]["counts"]
    assert quantile(edges, counts, 0.5) == pytest.approx(distribution["p50"], abs=0.1)


def test_a_week_gives_weekday_and_weekend_curves() -> None:
    # given a week from Monday: weekdays 0.2 requests/s, the weekend 0.04/s, every hour
    times: list[float] = []
    for day in range(7):
        rate = 0.2 if day < 5 else 0.04
        times += arrivals(start_s=MONDAY + day * 86_400, seconds=86_400, rate_per_s=rate, seed=day)
    data = encoded(logfiles.azure_2024_csv(requests(times)))

    traffic = profile(data).traffic()

    assert statistics.mean(traffic["weekday_hourly_requests_per_s"]) == pytest.approx(0.2, rel=0.05)
    assert statistics.mean(traffic["weekend_hourly_requests_per_s"]) == pytest.approx(0.04, rel=0.1)
    all_days = (5 * 0.2 + 2 * 0.04) / 7
    assert statistics.mean(traffic["hourly_requests_per_s"]) == pytest.approx(all_days, rel=0.05)
    assert isinstance(traffic["burstiness_cv"], list)
    assert len(traffic["burstiness_cv"]) == 24


@pytest.mark.parametrize(("cv", "expected"), [(1.0, 1.0), (2.0, 2.0), (0.0, 0.0), (0.5, 0.5)])
def test_burstiness_is_the_variation_of_the_gaps(cv: float, expected: float) -> None:
    # six hours at 2 requests/s with gamma gaps of the given coefficient of variation
    times = list(arrivals(start_s=MONDAY, seconds=6 * HOUR, rate_per_s=2, cv=cv, seed=7))

    traffic = profile(encoded(logfiles.plain_csv(requests(times)))).traffic()

    assert traffic["burstiness_cv"] == pytest.approx(expected, abs=0.08)  # one value: not every hour covered


def test_a_rate_that_changes_over_the_day_is_not_taken_for_bursts() -> None:
    # Poisson within every hour, at rates from 0.05 to 0.5 requests/s over the day
    traffic = profile(encoded(logfiles.plain_csv(DAY))).traffic()

    cvs = traffic["burstiness_cv"]
    assert len(cvs) == 24
    assert statistics.mean(cvs[9:17]) == pytest.approx(1.0, abs=0.1)


def test_whole_second_timestamps_take_off_the_rounding() -> None:
    # OpenAI's `created` is whole seconds: Poisson arrivals 30 s apart on average, rounded down
    times = list(arrivals(start_s=MONDAY, seconds=24 * HOUR, rate_per_s=1 / 30, seed=3))

    found = profile(encoded(logfiles.openai_chat_jsonl(requests(times))))

    assert found.arrivals.whole_seconds
    assert statistics.mean(found.traffic()["burstiness_cv"]) == pytest.approx(1.0, abs=0.1)


def test_whole_second_timestamps_too_coarse_for_the_rate_give_no_burstiness() -> None:
    times = list(arrivals(start_s=MONDAY, seconds=2 * HOUR, rate_per_s=3, seed=3))

    found = profile(encoded(logfiles.openai_chat_jsonl(requests(times))))

    assert "burstiness_cv" not in found.traffic()
    assert any("whole seconds" in note for note in found.summary()["notes"])


def test_rows_slightly_out_of_order_keep_the_burstiness() -> None:
    times = list(arrivals(start_s=MONDAY, seconds=4 * HOUR, rate_per_s=2, seed=11))
    in_order = profile(encoded(logfiles.plain_csv(requests(times)))).traffic()["burstiness_cv"]
    # a log written at completion: each request lands up to 50 rows late
    shuffled = sorted(times, key=lambda t: t + (hash(t) % 25))
    assert shuffled != times

    found = profile(encoded(logfiles.plain_csv(requests(shuffled))))

    assert found.traffic()["burstiness_cv"] == pytest.approx(in_order, abs=1e-9)
    assert found.arrivals.late == 0


def test_an_arrival_far_out_of_order_is_counted_and_left_out_of_the_gaps() -> None:
    times = list(arrivals(start_s=MONDAY, seconds=2 * HOUR, rate_per_s=3, seed=5))
    assert len(times) > REORDER_WINDOW + 100
    moved = [*times[1:], times[0]]  # the first arrival written last, beyond the window

    found = profile(encoded(logfiles.plain_csv(requests(moved))))

    assert found.arrivals.late == 1
    assert found.used == len(times)
    assert any("out of order" in note for note in found.summary()["notes"])


def test_bad_rows_are_skipped_and_counted_by_reason_with_their_line_numbers() -> None:
    good = [f"2024-05-06T{h:02d}:{m:02d}:00Z,{100 + m},{20 + h}" for h in range(24) for m in range(0, 60, 5)]
    bad = [
        ("inf,100,10", "bad_timestamp"),
        ("1e20,100,10", "bad_timestamp"),
        ("yesterday,100,10", "bad_timestamp"),
        ("2024-05-06T10:00:00Z,-5,10", "bad_tokens"),
        ("2024-05-06T10:00:00Z,12.5,10", "bad_tokens"),
        ("2024-05-06T10:00:00Z,100," + "9" * 400, "bad_tokens"),
        ("2024-05-06T10:00:00Z,100,0", "zero_tokens"),
        ("2024-05-06T10:00:00Z,130000,5000", "over_context"),
        ("2024-05-06T10:00:00Z,100", "missing_field"),
        (",100,10", "missing_field"),
        ('2024-05-06T10:00:00Z,"' + "7" * (200 * 1024) + '",10', "cell_too_large"),
    ]
    lines = ["timestamp,input_tokens,output_tokens", *good[:100], *(row for row, _ in bad), *good[100:]]
    data = ("\n".join(lines) + "\n").encode()
    data += (
        b"2024-05-06T10:00:00Z,\xff\xfe,10\n"
        + b"x" * (MAX_LINE_BYTES + 10)
        + b"\n"
        + b"2024-05-06T23:59:00Z,5,5\n"
    )

    found = profile(data, max_total_tokens=131_072)

    summary = found.summary()
    expected = {reason: sum(1 for _, r in bad if r == reason) for _, reason in bad}
    expected.update(not_utf8=1, line_too_long=1)
    assert summary["skipped_by_reason"] == expected
    assert summary["rows_used"] == len(good) + 1
    assert summary["rows_skipped"] == len(bad) + 2
    first_bad_line = 1 + 100 + 1  # header, 100 good rows
    assert summary["skipped_examples"][0] == {
        "line": first_bad_line,
        "reason": "bad_timestamp",
        "detail": "timestamp: 'inf' is not a finite time",
    }
    assert [e["line"] for e in summary["skipped_examples"]] == list(range(first_bad_line, first_bad_line + 5))
    assert summary["skipped_examples"][1]["detail"].startswith(
        "timestamp: 1e+20 is outside 2000-01-01..2099-12-31"
    )


def test_failed_requests_are_skipped() -> None:
    found = profile(encoded(logfiles.litellm_csv(DAY[:200], failed_every=10)))
    batch = profile(encoded(logfiles.openai_batch_jsonl(DAY[:200], failed_every=4)))

    assert found.skips.counts == {"failed_request": 20}
    assert found.skips.examples[0]["detail"] == "status 'failure'"
    assert batch.skips.counts == {"failed_request": 50}


def test_broken_json_lines_are_skipped() -> None:
    lines = list(logfiles.openai_chat_jsonl(DAY[:50]))
    lines[3] = '{"created": 1714986000, "usage": {"prompt_tokens": 5,\n'
    lines[4] = "[" * 100_000 + "\n"
    lines[5] = '"just a string"\n'
    lines[6] = '{"created": 1714986000}\n'

    found = profile(encoded(lines))

    assert found.skips.counts == {"malformed_json": 3, "missing_field": 1}
    assert [e["line"] for e in found.skips.examples] == [4, 5, 6, 7]
    assert found.used == 46


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"\n\n  \n", "The file is empty"),
        (b'[{"created": 1}]\n', "one JSON array; give JSON Lines"),
        (b"when,prompt,completion\n2024-05-06T10:00:00Z,1,1\n", "lacks the columns of a known format"),
        (b'{"ts": 1714986000, "in": 3, "out": 4}\n', "lacks the keys of a known format"),
        (
            b"timestamp,input_tokens,output_tokens\nyesterday,1,1\n-1,2,2\n",
            "No usable rows: all 2 were skipped",
        ),
        (
            b"timestamp,input_tokens,output_tokens\n2024-05-06T10:00:00Z,1,1\n2024-05-06T10:00:30Z,1,1\n",
            "span 30 s",
        ),
    ],
)
def test_files_that_cannot_become_a_workload_say_why(data: bytes, message: str) -> None:
    with pytest.raises(LogImportError, match=message):
        profile(data)


def test_a_named_format_that_does_not_fit_names_the_columns_it_needs() -> None:
    data = encoded(logfiles.plain_csv(DAY[:10]))

    with pytest.raises(
        LogImportError, match=r"lacks the columns for --format azure.*TIMESTAMP,ContextTokens"
    ):
        profile(data, log_format=LogFormat.AZURE)


class GeneratedLog:
    """A log produced as it is read, never whole in memory: `rows` Azure rows, 30 per second."""

    def __init__(self, rows: int) -> None:
        header = [b"TIMESTAMP,ContextTokens,GeneratedTokens\n"]
        body = (
            f"{logfiles._iso(MONDAY + i / 30)}0,{100 + i % 900},{1 + i % 300}\n".encode() for i in range(rows)
        )
        self._lines = itertools.chain(header, body)
        self._pending = b""
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        while len(self._pending) < size:
            chunk = b"".join(itertools.islice(self._lines, 2000))
            if not chunk:
                break
            self._pending += chunk
        out, self._pending = self._pending[:size], self._pending[size:]
        self.size += len(out)
        return out


class EndlessLine:
    """One line of `size` bytes without a newline."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, size: int = -1) -> bytes:
        out = min(size, self.left)
        self.left -= out
        return b"7" * out


def test_memory_stays_flat_however_long_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    # given logs of 25k and of 100k rows, produced as they are read and read in 64 KiB chunks, so both span
    # many chunks (scripts/bench_log_import.py reads a 1 GB file with the real chunk size)
    monkeypatch.setattr("apps.workloads.streams.CHUNK_BYTES", 64 * 1024)
    peaks = []
    for rows in (25_000, 100_000):
        log = GeneratedLog(rows)
        tracemalloc.start()
        found = profile_log(log)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert found.used == rows
    # then four times the rows (~3.6 MB) costs no more memory: a chunk, its lines, recent arrivals
    assert log.size > 3_500_000
    assert peaks[1] < 2 << 20
    assert peaks[1] < peaks[0] * 1.25


def test_a_line_of_a_hundred_megabytes_is_dropped_without_being_held() -> None:
    tracemalloc.start()
    with pytest.raises(LogImportError, match="No usable rows"):
        profile_log(EndlessLine(100 << 20))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert peak < MAX_LINE_BYTES + (4 << 20)
