"""Percentiles, length distributions and arrival schedules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.errors import InvalidSpec
from workers.metrics import LengthDistribution, arrival_offsets_s, percentiles


def test_percentiles_of_a_known_sample() -> None:
    summary = percentiles([float(v) for v in range(1, 101)])

    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p90"] == pytest.approx(90.1)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["mean"] == pytest.approx(50.5)
    assert summary["max"] == 100.0


def test_percentiles_of_nothing_are_none() -> None:
    assert percentiles([]) == {"p50": None, "p90": None, "p95": None, "p99": None, "mean": None, "max": None}


@given(st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=1, max_size=300))
def test_percentiles_are_ordered(values: list[float]) -> None:
    s = percentiles(values)

    assert min(values) <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"] == max(values)  # type: ignore[operator]


@st.composite
def distributions(draw: st.DrawFn) -> LengthDistribution:
    p50 = draw(st.integers(1, 4000))
    p95 = draw(st.integers(p50, 20_000))
    maximum = draw(st.integers(p95, 40_000))
    minimum = draw(st.integers(1, p50))
    return LengthDistribution.parse({"mean": p50, "p50": p50, "p95": p95, "max": maximum, "min": minimum})


@settings(max_examples=60)
@given(distributions(), st.integers(0, 2**32 - 1))
def test_sampled_lengths_stay_within_bounds(dist: LengthDistribution, seed: int) -> None:
    lengths = dist.sample(np.random.default_rng(seed), 500)

    assert len(lengths) == 500
    assert all(dist.min <= n <= dist.max for n in lengths)
    assert all(isinstance(n, int) for n in lengths)


def test_sampled_lengths_follow_the_quantiles() -> None:
    dist = LengthDistribution.parse({"mean": 800, "p50": 600, "p95": 2400, "max": 8000})

    lengths = np.array(dist.sample(np.random.default_rng(0), 20_000))

    assert np.percentile(lengths, 50) == pytest.approx(600, rel=0.05)
    assert np.percentile(lengths, 95) == pytest.approx(2400, rel=0.08)
    assert lengths.max() <= 8000


def test_fixed_lengths_are_exact() -> None:
    assert LengthDistribution.parse(128).sample(np.random.default_rng(0), 3) == [128, 128, 128]
    assert LengthDistribution.parse("64").is_fixed


@pytest.mark.parametrize(
    "bad", [0, {"p50": 10, "p95": 5, "max": 20}, {"p50": 10, "p95": 20, "max": 15}, {"max": 3}]
)
def test_inconsistent_distributions_are_refused(bad: object) -> None:
    with pytest.raises(InvalidSpec):
        LengthDistribution.parse(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_arrivals_have_the_requested_mean_rate(burstiness: float) -> None:
    offsets = arrival_offsets_s(
        np.random.default_rng(1), rate_per_s=20.0, count=20_000, burstiness=burstiness
    )

    gaps = np.diff(offsets)
    assert offsets[0] == 0.0
    assert np.all(gaps >= 0)
    assert gaps.mean() == pytest.approx(1 / 20.0, rel=0.05)
    # gamma shape k: coefficient of variation 1/sqrt(k); Poisson at k = 1
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.08)


def test_arrivals_refuse_a_non_positive_rate() -> None:
    with pytest.raises(InvalidSpec):
        arrival_offsets_s(np.random.default_rng(0), rate_per_s=0.0, count=3)
