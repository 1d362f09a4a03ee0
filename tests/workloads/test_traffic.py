from __future__ import annotations

import pytest

from apps.workloads.traffic import TrafficImportError, curve_from_csv


def test_timestamps_average_over_days_into_rates() -> None:
    # two days; hour 9 UTC has 7200 requests on each day -> 2 requests/s
    lines = ["timestamp"]
    for day in ("2026-01-05", "2026-01-06"):
        lines += [f"{day}T09:{i // 120:02d}:{(i // 2) % 60:02d}Z" for i in range(7200)]
    curve = curve_from_csv("\n".join(lines))

    assert curve[9] == pytest.approx(2.0)
    assert sum(curve) == pytest.approx(2.0)


def test_epoch_seconds_without_header() -> None:
    # 1767603600 = 2026-01-05T09:00:00Z
    curve = curve_from_csv("\n".join(str(1767603600 + i) for i in range(3600)))

    assert curve[9] == pytest.approx(1.0)


def test_hourly_counts_average_repeated_hours() -> None:
    rows = ["hour,requests"] + [f"{h},3600" for h in range(24)] + ["5,7200"]

    assert curve_from_csv("\n".join(rows))[5] == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("hour,requests\n25,10\n", "outside 0..23"),
        ("hour,requests\n0,-3\n", "finite number"),
        ("timestamp\nyesterday\n", "not a timestamp"),
        ("hour,requests\n" + "".join(f"{h},1\n" for h in range(23)), "hours without a count: 23"),
    ],
)
def test_bad_files_say_why(text: str, message: str) -> None:
    with pytest.raises(TrafficImportError, match=message):
        curve_from_csv(text)
