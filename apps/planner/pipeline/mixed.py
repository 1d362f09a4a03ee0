"""Mixed-GPU fleets: two of the ranked families serving one workload together when that costs less than either
alone, in the two ways Mélange (Griggs et al., arXiv:2404.14527) found savings:

- by hour of day: each hour is served by whichever family is cheaper for that hour's traffic (a cheap GPU at
  night, a large one at the peak);
- by request length: prompts up to a threshold go to one family and longer ones to the other, each sized for
  its share of the traffic and its part of the length distribution (the router sends each request by its prompt
  length).

Capacities for a length bucket are the mean-field estimate on that bucket's lengths, less the family's typical
cross-validated error (as planning does); the chosen split is reported with the sizes it was planned on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from apps.planner.perf.batching import LengthStats, quantiles
from apps.planner.pipeline.capacity import max_rate_analytic
from apps.planner.pipeline.cost import Costed, Fleet, fleets
from apps.planner.pipeline.workload import DAYS_PER_MONTH, WorkloadSpec

SPLIT_QUANTILES = (0.5, 0.8)
MAX_FAMILIES = 4  # pairs are formed among the cheapest families of different GPUs
MIN_SAVING = 0.01  # a mix must save at least 1% of the best single family to be worth two deployments


@dataclass(frozen=True)
class MixedFleet:
    kind: str  # "by_hour" or "by_length"
    monthly_usd: float
    parts: tuple[dict[str, Any], ...]
    saving_vs_best_single: float  # fraction of the best single family's monthly cost
    threshold_prompt_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "monthly_cost_usd": round(self.monthly_usd, 2),
            "saving_vs_best_single": round(self.saving_vs_best_single, 4),
            "threshold_prompt_tokens": self.threshold_prompt_tokens,
            "parts": list(self.parts),
        }


def _label(costed: Costed, fleet: Fleet) -> dict[str, Any]:
    """What a part runs and on which offer: the fleet it was priced on (a length bucket's own cheapest offer
    can differ from the family's)."""
    dep = costed.sized.screened.dep
    return {
        "engine": dep.engine,
        "quant": dep.quant.slug,
        "gpu": dep.gpu.slug,
        "parallelism": dep.parallelism,
        "provider": fleet.offer.offer.provider,
        "instance_type": fleet.offer.offer.instance_type,
        "instance_usd_per_hour": round(fleet.offer.usd_per_hour, 4),
    }


def _hourly_usd(fleet: Fleet) -> list[float]:
    """What each hour of the fleet costs (instances are whole)."""
    price = fleet.offer.usd_per_hour
    return [
        math.ceil(r / fleet.replicas_per_instance) * fleet.instances_per_replica * price
        for r in fleet.replicas_by_hour
    ]


def by_hour(a: Costed, b: Costed, workload: WorkloadSpec) -> MixedFleet | None:
    if workload.day_curves[0][2] != 1.0:
        return None  # weekday/weekend schedules: kept to single families
    ops = workload.ops_hours_per_month * workload.ops_hourly_usd
    cost_a, cost_b = _hourly_usd(a.best), _hourly_usd(b.best)
    chosen = ["a" if x <= y else "b" for x, y in zip(cost_a, cost_b, strict=True)]
    if len(set(chosen)) < 2:
        return None
    # Both deployments are operated: ops hours for each.
    monthly = sum(min(x, y) for x, y in zip(cost_a, cost_b, strict=True)) * DAYS_PER_MONTH + 2 * ops
    best_single = min(a.monthly_usd, b.monthly_usd)
    parts = []
    for key, costed in (("a", a), ("b", b)):
        hours = [h for h, c in enumerate(chosen) if c == key]
        replicas = [r if h in hours else 0 for h, r in enumerate(costed.best.replicas_by_hour)]
        parts.append({**_label(costed, costed.best), "hours": hours, "replicas_by_hour": replicas})
    return MixedFleet("by_hour", monthly, tuple(parts), 1.0 - monthly / best_single)


@lru_cache(maxsize=64)
def _bucket(stats: LengthStats, low_q: float, high_q: float, cap: int) -> LengthStats:
    """The part of a length distribution between two quantiles, as a histogram of 32 bins."""
    grid = quantiles(stats, np.linspace(low_q, high_q, 33))
    edges = np.maximum.accumulate(grid + np.arange(33) * 1e-6)
    values = quantiles(stats, np.linspace(low_q, high_q, 200))
    mean = float(values.mean())
    top = max(math.ceil(edges[-1]), 1)
    return LengthStats(
        mean=min(max(mean, 1.0), top),
        p50=float(np.clip(np.percentile(values, 50), 1.0, top)),
        p95=float(np.clip(np.percentile(values, 95), 1.0, top)),
        max=min(top, cap),
        histogram_edges=tuple(float(e) for e in edges),
        histogram_counts=(1,) * 32,
    )


def by_length(
    a: Costed, b: Costed, workload: WorkloadSpec, capacities: dict[tuple[int, LengthStats], float]
) -> MixedFleet | None:
    """Short prompts to `a`, long ones to `b`, at the threshold (a quantile of prompt length) that costs least.
    `capacities` keeps each family's planned capacity per prompt bucket (by the family's identity) for the next
    pair that asks."""
    best: MixedFleet | None = None
    best_single = min(a.monthly_usd, b.monthly_usd)
    prompt = workload.prompt_tokens
    for q in SPLIT_QUANTILES:
        threshold = int(quantiles(prompt, [q])[0])
        parts: list[dict[str, Any]] = []
        monthly = 0.0  # each part's fleet carries its own ops hours
        for costed, (low, high), share in ((a, (0.0, q), q), (b, (q, 1.0), 1.0 - q)):
            try:
                bucket = _bucket(prompt, low, high, prompt.max)
            except ValueError:  # a degenerate part (every prompt the same length): no split to make
                parts = []
                break
            part_workload = replace(
                workload,
                prompt_tokens=bucket,
                hourly_requests_per_s=tuple(r * share for r in workload.hourly_requests_per_s),
            )
            screened = costed.sized.screened
            if bucket.max + workload.output_tokens.max > (
                screened.step.memory.context_tokens if screened.step.memory else 0
            ):
                parts = []
                break
            key = (id(screened), bucket)
            if key not in capacities:
                capacities[key] = max_rate_analytic(
                    screened.step,
                    bucket,
                    workload.output_tokens,
                    workload.slo,
                    prefix=workload.prefix,
                    burstiness_cv=workload.planning_burstiness_cv,
                ).max_rate_per_s / (1.0 + screened.band.median_ape)
            capacity = capacities[key]
            if capacity <= 0:
                parts = []
                break
            fleet = fleets(screened.candidate, capacity, part_workload, limit=1)[0]
            monthly += fleet.monthly_usd
            parts.append(
                {
                    **_label(costed, fleet),
                    "prompt_tokens": {
                        "from": 0 if low == 0 else threshold + 1,
                        "to": threshold if high < 1 else prompt.max,
                    },
                    "share_of_requests": round(share, 4),
                    "planned_requests_per_s_per_replica": round(capacity, 4),
                    "replicas_by_hour": list(fleet.replicas_by_hour),
                    "monthly_cost_usd": round(fleet.monthly_usd, 2),
                }
            )
        if len(parts) == 2 and (best is None or monthly < best.monthly_usd):
            best = MixedFleet("by_length", monthly, tuple(parts), 1.0 - monthly / best_single, threshold)
    return best


def mixed_fleets(ranked: Sequence[Costed], workload: WorkloadSpec) -> list[MixedFleet]:
    """Mixes of two families on different GPUs that cost at least MIN_SAVING less than the best single one,
    cheapest first."""
    if not ranked:
        return []
    best_single = min(c.monthly_usd for c in ranked)
    by_gpu: dict[str, Costed] = {}
    for costed in ranked:
        by_gpu.setdefault(costed.sized.screened.dep.gpu.slug, costed)
    families = list(by_gpu.values())[:MAX_FAMILIES]
    found: list[MixedFleet] = []
    capacities: dict[tuple[int, LengthStats], float] = {}
    for i, a in enumerate(families):
        for b in families[i + 1 :]:
            for first, second in ((a, b), (b, a)):
                mix = by_length(first, second, workload, capacities)
                if mix and mix.monthly_usd < best_single * (1.0 - MIN_SAVING):
                    found.append(replace(mix, saving_vs_best_single=1.0 - mix.monthly_usd / best_single))
            mix = by_hour(a, b, workload)
            if mix and mix.monthly_usd < best_single * (1.0 - MIN_SAVING):
                found.append(replace(mix, saving_vs_best_single=1.0 - mix.monthly_usd / best_single))
    found.sort(key=lambda m: m.monthly_usd)
    return found[:5]
