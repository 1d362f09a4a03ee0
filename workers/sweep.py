"""Find the highest request rate that holds the SLO: ramp the rate up until the SLO breaks or the engine
saturates, then bisect between the last passing and the first failing rate, all within a time budget.

Pure search logic over a `measure(rate) -> level` coroutine, so it is tested without an engine and the
runner supplies real levels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from workers.loadgen import Slo

Measure = Callable[[float], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class SweepPolicy:
    start_rate_per_s: float = 1.0
    growth: float = 2.0
    min_rate_per_s: float = 0.05
    max_rate_per_s: float = 10_000.0
    # Saturated: the engine completes under this share of the offered rate, so its queue only grows.
    saturation_share: float = 0.9
    max_failed_fraction: float = 0.01
    # Bisection stops when the bracket is this tight relative to the passing rate.
    tolerance: float = 0.1
    max_levels: int = 16
    time_budget_s: float = 1800.0


def level_verdict(level: dict[str, Any], slo: Slo, policy: SweepPolicy) -> tuple[bool, str]:
    """(holds, reason). The SLO is on p95 TTFT and p95 ITL (the workload's targets), plus p95 E2E if set."""
    sent = level["requests_ok"] + level["requests_failed"]
    if level.get("client", {}).get("fell_behind"):
        return False, "client fell behind the schedule: the offered rate was not the requested one"
    if sent == 0 or level["requests_failed"] / sent > policy.max_failed_fraction:
        return False, f"{level['requests_failed']} of {sent} requests failed"
    checks = (("ttft_ms", slo.ttft_ms), ("itl_ms", slo.itl_ms), ("e2e_ms", slo.e2e_ms))
    for metric, limit_ms in checks:
        p95 = level[metric]["p95"]
        if limit_ms is not None and (p95 is None or p95 > limit_ms):
            return (
                False,
                f"p95 {metric[:-3]} {p95:.1f} ms > {limit_ms:g} ms" if p95 else f"no {metric} measured",
            )
    # Completions against sends, both measured: a short Poisson schedule strays from its nominal rate.
    sent_rate = level.get("client", {}).get("achieved_send_rate_per_s") or level.get("rate")
    completed_rate = level.get("completion_rate_per_s") or level["requests_per_s"]
    if sent_rate and completed_rate < policy.saturation_share * sent_rate:
        return False, f"saturated: completed {completed_rate:.2f}/s of {sent_rate:.2f}/s sent"
    return True, "holds"


@dataclass
class _Search:
    measure: Measure
    slo: Slo
    policy: SweepPolicy
    estimate_s: Callable[[float], float]
    levels: list[dict[str, Any]]
    started: float

    def budget_allows(self, rate: float) -> bool:
        spent = time.monotonic() - self.started
        return (
            len(self.levels) < self.policy.max_levels
            and spent + self.estimate_s(rate) <= self.policy.time_budget_s
        )

    async def try_rate(self, rate: float) -> bool:
        level = await self.measure(rate)
        holds, reason = level_verdict(level, self.slo, self.policy)
        level["slo_holds"] = holds
        level["slo_verdict"] = reason
        self.levels.append(level)
        return holds


async def sweep(
    measure: Measure,
    slo: Slo,
    policy: SweepPolicy,
    *,
    estimate_s: Callable[[float], float] | None = None,
) -> dict[str, Any]:
    """Run the search; returns {"levels", "max_rate_holding_slo", "first_failing_rate", "stopped_because"}.

    `estimate_s(rate)` predicts a level's wall time so no level starts that would overrun the budget.
    """
    search = _Search(measure, slo, policy, estimate_s or (lambda _rate: 0.0), [], time.monotonic())
    passing: float | None = None
    failing: float | None = None
    rate = policy.start_rate_per_s
    stopped = "bracket narrowed to the tolerance"

    # Ramp: geometric steps up from the start while the SLO holds, or down while it does not.
    while True:
        if not search.budget_allows(rate):
            stopped = "time budget or level count reached while ramping"
            break
        if await search.try_rate(rate):
            passing = rate
            if failing is not None:
                break
            if rate * policy.growth > policy.max_rate_per_s:
                stopped = "maximum rate reached with the SLO still holding"
                break
            rate *= policy.growth
        else:
            failing = rate
            if passing is not None:
                break
            if rate / policy.growth < policy.min_rate_per_s:
                stopped = "the SLO fails even at the minimum rate"
                break
            rate /= policy.growth

    # Bisect geometrically: rates span orders of magnitude, so the midpoint is taken on a log scale.
    while passing is not None and failing is not None and failing / passing - 1 > policy.tolerance:
        middle = math.sqrt(passing * failing)
        if not search.budget_allows(middle):
            stopped = "time budget or level count reached while bisecting"
            break
        if await search.try_rate(middle):
            passing = middle
        else:
            failing = middle
    return {
        "levels": search.levels,
        "max_rate_holding_slo": passing,
        "first_failing_rate": failing,
        "stopped_because": stopped,
    }
