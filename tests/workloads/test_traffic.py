from __future__ import annotations

import io

import pytest

from apps.workloads.traffic import MAX_LINE_BYTES, TrafficImportError, curve_from_csv


def curve(text: str) -> list[float]:
    return curve_from_csv(io.BytesIO(text.encode()))


def test_timestamps_average_over_days_into_rates() -> None:
    # two days; hour 9 UTC has 7200 requests on each day -> 2 requests/s
    lines = ["timestamp"]
    for day in ("2026-01-05", "2026-01-06"):
        lines += [f"{day}T09:{i // 120:02d}:{(i // 2) % 60:02d}Z" for i in range(7200)]

    rates = curve("\n".join(lines))

    assert rates[9] == pytest.approx(2.0)
    assert sum(rates) == pytest.approx(2.0)


def test_epoch_seconds_without_header() -> None:
    # 1767603600 = 2026-01-05T09:00:00Z
    assert curve("\n".join(str(1767603600 + i) for i in range(3600)))[9] == pytest.approx(1.0)


def test_hourly_counts_average_repeated_hours() -> None:
    rows = ["hour,requests"] + [f"{h},3600" for h in range(24)] + ["5,7200"]

    assert curve("\r\n".join(rows))[5] == pytest.approx(1.5)


def test_a_file_larger_than_a_read_chunk_is_read_whole() -> None:
    # 3 days x 24 hours x 100 requests, about 2.7 MB: several of the reader's 1 MiB chunks
    lines = [f"2026-01-0{5 + day}T{hour:02d}:00:{second:02d}.{n:06d}Z" for day in range(3) for hour in range(24) for second in range(50) for n in range(2)]  # fmt: skip
    text = "timestamp\n" + "\n".join(lines * 15) + "\n"
    assert len(text) > 2 * (1 << 20)

    rates = curve(text)

    assert rates == [pytest.approx(1500 / 3600)] * 24


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("hour,requests\n25,10\n", "outside 0..23"),
        ("hour,requests\n0,-3\n", "finite number"),
        ("hour,requests\n0,inf\n", "finite number"),
        ("timestamp\nyesterday\n", "line 2: 'yesterday' is not a timestamp"),
        ("timestamp\n2026-01-05T09:00:00Z\ninf\n", "line 3: 'inf' is not a finite time"),
        ("timestamp\n1e20\n", "line 2: 1e\\+20 is outside 2000-01-01..2099-12-31"),
        ("timestamp\nnan\n", "not a finite time"),
        ("timestamp\n" + "9" * 400 + "\n", "line 2: '9999.*' is not a finite time"),
        ("timestamp\n9999-12-31T00:00:00\n", "outside 2000-01-01"),
        ("hour,requests\n" + "".join(f"{h},1\n" for h in range(23)), "hours without a count: 23"),
        ('timestamp\n2026-01-05T09:00:00Z\n"' + "x" * (200 * 1024) + '"\n', "line 3: a cell is longer than"),
        ("hour,requests\n0,1\x00\n", "line 2: hour and requests must be numbers"),
    ],
)
def test_bad_files_say_why(text: str, message: str) -> None:
    with pytest.raises(TrafficImportError, match=message):
        curve(text)


def test_an_endless_line_is_refused_without_holding_it() -> None:
    endless = b"0" * (50 * MAX_LINE_BYTES)

    with pytest.raises(TrafficImportError, match=f"line 1: longer than {MAX_LINE_BYTES} bytes"):
        curve_from_csv(io.BytesIO(endless))


def test_bytes_that_are_not_utf8_name_their_line() -> None:
    with pytest.raises(TrafficImportError, match="line 3: byte 1 is not UTF-8"):
        curve_from_csv(io.BytesIO(b"timestamp\n2026-01-05T09:00:00Z\n\xff\xfe\n"))
