"""Percentiles and length distributions: the arithmetic of a benchmark, kept apart so it is easy to test."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.errors import InvalidSpec

PERCENTILES = (50, 90, 95, 99)
_Z_95 = 1.6448536269514722  # standard normal quantile at 0.95


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """{"p50", "p90", "p95", "p99", "mean", "max"} with linear interpolation; None for an empty sample.

    Linear interpolation between order statistics (numpy's default, as vLLM's and GuideLLM's reports) keeps
    p50 <= p90 <= p95 <= p99 <= max for any sample.
    """
    keys = [f"p{p}" for p in PERCENTILES]
    if not values:
        return {**dict.fromkeys(keys), "mean": None, "max": None}
    array = np.asarray(values, dtype=np.float64)
    points = np.percentile(array, PERCENTILES)
    summary: dict[str, float | None] = {key: float(v) for key, v in zip(keys, points, strict=True)}
    summary["mean"] = float(array.mean())
    summary["max"] = float(array.max())
    return summary


@dataclass(frozen=True)
class LengthDistribution:
    """Token lengths as the workload JSON gives them: {"mean", "p50", "p95", "max"} (and an optional "min").

    Sampled from a log-normal whose median is p50 and whose 95th percentile is p95, clipped to [min, max]:
    request lengths are positive and right-skewed, and two quantiles pin a log-normal exactly. The mean is
    kept for the record; when only a mean is given the length is fixed at it.
    """

    mean: float
    p50: float
    p95: float
    max: int
    min: int = 1

    @classmethod
    def fixed(cls, tokens: int) -> LengthDistribution:
        if tokens < 1:
            raise InvalidSpec(f"a length must be at least 1 token, got {tokens}")
        return cls(mean=tokens, p50=tokens, p95=tokens, max=tokens, min=tokens)

    @classmethod
    def parse(cls, value: int | str | Mapping[str, Any]) -> LengthDistribution:
        """An int (fixed length), a decimal string, or a mapping with the workload JSON's keys."""
        if isinstance(value, int | str):
            return cls.fixed(int(value))
        if "mean" not in value and "p50" not in value:
            raise InvalidSpec(f"length distribution {dict(value)} needs mean or p50")
        p50 = float(value.get("p50", value.get("mean", 0)))
        mean = float(value.get("mean", p50))
        p95 = float(value.get("p95", p50))
        maximum = int(value.get("max", max(p95, p50, mean)))
        minimum = int(value.get("min", 1))
        if not 1 <= minimum <= p50 <= p95 <= maximum:
            raise InvalidSpec(f"length distribution {dict(value)} needs 1 <= min <= p50 <= p95 <= max")
        return cls(mean=mean, p50=p50, p95=p95, max=maximum, min=minimum)

    @property
    def is_fixed(self) -> bool:
        return self.min == self.max

    def sample(self, rng: np.random.Generator, count: int) -> list[int]:
        if self.is_fixed:
            return [self.max] * count
        mu = math.log(self.p50)
        sigma = math.log(self.p95 / self.p50) / _Z_95 if self.p95 > self.p50 else 0.0
        raw = rng.lognormal(mean=mu, sigma=sigma, size=count) if sigma else np.full(count, self.p50)
        clipped = np.clip(np.rint(raw), self.min, self.max)
        return [int(v) for v in clipped]

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "p50": self.p50, "p95": self.p95, "max": self.max, "min": self.min}


def arrival_offsets_s(
    rng: np.random.Generator, *, rate_per_s: float, count: int, burstiness: float = 1.0
) -> list[float]:
    """Send times (seconds from the start) of an open-loop run: gamma-distributed gaps with mean 1/rate.

    burstiness is the gamma shape: 1.0 is a Poisson process; below 1 arrivals come in bursts (coefficient
    of variation 1/sqrt(shape)); above 1 they are more regular. The first request goes at 0.
    """
    if rate_per_s <= 0 or burstiness <= 0:
        raise InvalidSpec("rate and burstiness must be positive")
    if count <= 0:
        return []
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (burstiness * rate_per_s), size=count - 1)
    return [0.0, *np.cumsum(gaps).tolist()]
