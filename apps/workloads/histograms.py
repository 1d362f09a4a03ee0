"""Token-length histograms on fixed log-spaced bins. Pure, no Django.

Lengths run from a handful of tokens to hundreds of thousands, so the bins are log-spaced: four per doubling
(each about 19% wider than the last), rounded to whole tokens, from 1 to 2^24. Bin i holds lengths in
[edges[i], edges[i+1]). Fixed edges make histograms of different logs comparable and cost ~90 counters however
many rows are read. A stored histogram keeps only the edges from its first to its last non-empty bin.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The longest prompt or output a workload may state (the document's validator uses the same bound).
MAX_TOKENS = 10_000_000
BINS_PER_DOUBLING = 4
DOUBLINGS = 24
LOG_EDGES: tuple[int, ...] = tuple(
    sorted({max(1, round(2 ** (k / BINS_PER_DOUBLING))) for k in range(BINS_PER_DOUBLING * DOUBLINGS + 1)})
)


def quantile(edges: Sequence[float], counts: Sequence[int], q: float) -> float:
    """The q-quantile of a histogram, linear within the bin it falls in."""
    total = sum(counts)
    target = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= target:
            fraction = (target - seen) / count
            return edges[index] + fraction * (edges[index + 1] - edges[index])
        seen += count
    return float(edges[-1])


def support(edges: Sequence[float], counts: Sequence[int]) -> tuple[float, float]:
    """From the lower edge of the first non-empty bin to the upper edge of the last one."""
    filled = [index for index, count in enumerate(counts) if count]
    return edges[filled[0]], edges[filled[-1] + 1]


def last_filled_bin(edges: Sequence[float], counts: Sequence[int]) -> tuple[float, float]:
    last = max(index for index, count in enumerate(counts) if count)
    return edges[last], edges[last + 1]


@dataclass
class LengthHistogram:
    """Counts of lengths on LOG_EDGES, with the exact count, sum, min and max beside them."""

    counts: list[int]
    token_sum: int = 0
    minimum: int = MAX_TOKENS + 1  # above any length until one is added
    maximum: int = 0

    @classmethod
    def empty(cls) -> LengthHistogram:
        return cls(counts=[0] * (len(LOG_EDGES) - 1))

    def add(self, tokens: int) -> None:  # once per request of a gigabyte log: kept to the bare minimum
        self.counts[bisect_right(LOG_EDGES, tokens) - 1] += 1
        self.token_sum += tokens
        if tokens < self.minimum:
            self.minimum = tokens
        if tokens > self.maximum:
            self.maximum = tokens

    @property
    def total(self) -> int:
        return sum(self.counts)

    def trimmed(self) -> tuple[list[int], list[int]]:
        filled = [index for index, count in enumerate(self.counts) if count]
        first, last = filled[0], filled[-1]
        return list(LOG_EDGES[first : last + 2]), self.counts[first : last + 1]

    def to_distribution(self) -> dict[str, Any]:
        """The workload document's length distribution: the histogram, the exact mean and max, and p50/p95
        read off the histogram (within about 19%: one bin), kept between the exact min and max."""
        edges, counts = self.trimmed()

        def clipped(q: float) -> float:
            return round(min(max(quantile(edges, counts, q), self.minimum), self.maximum), 1)

        return {
            "mean": round(self.token_sum / self.total, 1),
            "p50": clipped(0.5),
            "p95": clipped(0.95),
            "max": self.maximum,
            "histogram": {"edges": edges, "counts": counts},
        }
