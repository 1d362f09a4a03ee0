"""Capacity: the highest request rate one replica holds while p95 TTFT and p95 ITL stay within the workload's
targets. A mean-field estimate screens every deployment quickly; the continuous-batching simulation decides for
the shortlist. Pure; no Django.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from apps.planner.perf.batching import (
    NO_PREFIX,
    LengthStats,
    LoadSpec,
    PrefixCache,
    RequestSet,
    SimResult,
    analytic_poisson,
    simulate,
)
from apps.planner.perf.steady import offline_tokens_per_s
from apps.planner.perf.step import StepModel
from apps.planner.pipeline.screen import Screened
from apps.planner.pipeline.workload import LatencySlo, WorkloadSpec


@dataclass(frozen=True)
class RateSearch:
    max_rate_per_s: float  # highest Poisson rate found to hold the SLO (0: unreachable even when idle)
    ttft_p95_ms: float  # at that rate
    itl_p95_ms: float
    evaluations: int
    method: str  # "simulation" or "analytic"
    limit: str  # what fails first above max_rate: "ttft", "itl", or "" when unreachable
    idle_ttft_p95_ms: float
    idle_itl_p95_ms: float


def _holds(result: SimResult, slo: LatencySlo) -> bool:
    return result.ttft_ms["p95"] <= slo.ttft_p95_ms and result.itl_ms["p95"] <= slo.itl_p95_ms


MIN_SIM_REQUESTS = 300


def requests_for_rate(requests: RequestSet, rate_per_s: float, horizon_s: float) -> RequestSet:
    """The first requests of the set, enough to cover `horizon_s` of arrivals at this rate (at least
    MIN_SIM_REQUESTS, at most all). A short run from an empty system flatters an overloaded replica: the queue
    needs time to build."""
    n = min(len(requests), max(MIN_SIM_REQUESTS, math.ceil(rate_per_s * horizon_s)))
    return requests if n >= len(requests) else requests.head(n)


def simulation_horizon_s(slo: LatencySlo, idle_e2e_s: float) -> float:
    """Long enough for a 10% overload to push p95 TTFT past its target, and for several request lifetimes."""
    return max(20.0 * slo.ttft_p95_ms / 1e3, 10.0 * idle_e2e_s)


def max_rate_simulated(
    step: StepModel,
    requests: RequestSet,
    slo: LatencySlo,
    *,
    start_rate_per_s: float | None = None,
    tolerance: float = 0.04,
    max_evaluations: int = 8,
) -> RateSearch:
    """Bisection (on log rate) for the highest Poisson rate whose simulated p95 TTFT and ITL hold the SLO.

    Rates above the replica's throughput ceiling (steady state at mean lengths, flat out) count as failing
    whatever a finite simulation shows: the queue there grows without bound.
    """
    mean_isl, mean_osl = float(requests.isl.mean()), float(requests.osl.mean())
    # "Idle": requests far enough apart that each runs alone; if that misses the SLO no rate holds it. Requests
    # do not interact when idle, so a few dozen give the same percentiles.
    idle_rate = 1e-3 / max(1.0, (mean_isl + mean_osl) / 1000.0)
    idle = simulate(step, requests.head(100), LoadSpec("poisson", rate_per_s=idle_rate))
    if not _holds(idle, slo):
        return RateSearch(
            0.0, idle.ttft_ms["p95"], idle.itl_ms["p95"], 1, "simulation", "", idle.ttft_ms["p95"],
            idle.itl_ms["p95"],
        )  # fmt: skip
    mean_cached = float(requests.cached.mean()) if requests.cached is not None else 0.0
    ceiling = offline_tokens_per_s(step, mean_isl, mean_osl, mean_cached) / mean_osl
    horizon_s = simulation_horizon_s(slo, (idle.ttft_ms["p50"] + idle.tpot_ms["p50"] * mean_osl) / 1e3)
    cache: dict[float, SimResult | None] = {}

    def run(rate: float) -> SimResult | None:
        """None: above the throughput ceiling."""
        if rate not in cache:
            cache[rate] = (
                None
                if rate > ceiling
                else simulate(
                    step, requests_for_rate(requests, rate, horizon_s), LoadSpec("poisson", rate_per_s=rate)
                )
            )
        return cache[rate]

    # Start from the estimate and walk by `factor` until the SLO flips, then bisect on log rate.
    if start_rate_per_s:
        rate, factor = min(start_rate_per_s, ceiling), 1.25
    else:
        rate, factor = max(ceiling, idle_rate * 2), 2.0
    lo, hi = 0.0, math.inf  # highest rate seen to hold, lowest seen to fail
    while len(cache) < max_evaluations:
        result = run(rate)
        if result is not None and _holds(result, slo):
            lo = rate
        else:
            hi = rate
        if hi == math.inf:
            rate *= factor
        elif lo == 0.0:
            rate /= factor
        elif hi / lo <= 1.0 + tolerance:
            break
        else:
            rate = math.sqrt(lo * hi)
    limit = ""
    if hi != math.inf:
        above = cache[hi]
        limit = "throughput" if above is None else "ttft" if above.ttft_ms["p95"] > slo.ttft_p95_ms else "itl"
    best = cache[lo] if lo else None
    best = best or idle
    return RateSearch(
        max_rate_per_s=lo,
        ttft_p95_ms=best.ttft_ms["p95"],
        itl_p95_ms=best.itl_ms["p95"],
        evaluations=len(cache) + 1,
        method="simulation",
        limit=limit,
        idle_ttft_p95_ms=idle.ttft_ms["p95"],
        idle_itl_p95_ms=idle.itl_ms["p95"],
    )


CEILING_SLACK = 1.2  # the analytic search never reports more than this times the throughput ceiling


def throughput_ceiling_rate(
    step: StepModel, prompt: LengthStats, output: LengthStats, prefix: PrefixCache = NO_PREFIX
) -> float:
    """Requests/s one replica completes flat out at mean lengths: no latency target holds above it."""
    cached = float(prefix.cached_tokens(prompt.mean))
    return offline_tokens_per_s(step, prompt.mean, output.mean, cached) / output.mean


def max_rate_analytic(
    step: StepModel,
    prompt: LengthStats,
    output: LengthStats,
    slo: LatencySlo,
    *,
    tolerance: float = 0.04,
    ceiling_rate_per_s: float | None = None,
    prefix: PrefixCache = NO_PREFIX,
    burstiness_cv: float = 1.0,
) -> RateSearch:
    idle = analytic_poisson(step, prompt, output, 1e-6, prefix=prefix, burstiness_cv=burstiness_cv)
    if not (idle.ttft_p95_ms <= slo.ttft_p95_ms and idle.itl_p95_ms <= slo.itl_p95_ms):
        return RateSearch(
            0.0,
            idle.ttft_p95_ms,
            idle.itl_p95_ms,
            1,
            "analytic",
            "",
            idle.ttft_p95_ms,
            idle.itl_p95_ms,
        )
    ceiling = ceiling_rate_per_s or throughput_ceiling_rate(step, prompt, output, prefix)
    # Bisection on log rate between a rate far below the throughput ceiling and just above it.
    lo, hi = max(ceiling, 1e-6) * 1e-4, max(ceiling * CEILING_SLACK, 1e-3)
    best, failing = idle, None
    evaluations = 1
    # Most replicas hold a good share of their ceiling: try a tenth of it first, which usually removes the
    # lower four decades of the bracket in one evaluation.
    first = True
    while hi / lo > 1.0 + tolerance:
        mid = max(lo, ceiling * 0.1) if first and ceiling * 0.1 < hi else math.sqrt(lo * hi)
        first = False
        result = analytic_poisson(step, prompt, output, mid, prefix=prefix, burstiness_cv=burstiness_cv)
        evaluations += 1
        if result.stable and result.ttft_p95_ms <= slo.ttft_p95_ms and result.itl_p95_ms <= slo.itl_p95_ms:
            lo, best = mid, result
        else:
            hi, failing = mid, result
    if failing is None:  # every rate tried held: what fails is the top of the bracket
        failing = analytic_poisson(step, prompt, output, hi, prefix=prefix, burstiness_cv=burstiness_cv)
        evaluations += 1
    limit = "ttft" if failing.ttft_p95_ms > slo.ttft_p95_ms else "itl"
    return RateSearch(
        lo,
        best.ttft_p95_ms,
        best.itl_p95_ms,
        evaluations,
        "analytic",
        limit,
        idle.ttft_p95_ms,
        idle.itl_p95_ms,
    )


# --------------------------------------------------------------------------------------------------------------
# One prediction, as `manage.py predict` prints it


# --------------------------------------------------------------------------------------------------------------
# The stage


@dataclass(frozen=True)
class Sized:
    """A screened family with its capacity per replica: as predicted, and as planned.

    The planned capacity is the prediction reduced by the typical (median) cross-validated error of its group,
    so a fleet is sized on what the evidence supports; families with little evidence are not favoured by it.
    """

    screened: Screened
    capacity: RateSearch
    simulated: bool

    @property
    def planned_rate_per_s(self) -> float:
        return self.capacity.max_rate_per_s / (1.0 + self.screened.band.median_ape)

    @property
    def optimistic_rate_per_s(self) -> float:
        """The capacity if the prediction errs low by its group's p90 error (bounds the cost range)."""
        return self.capacity.max_rate_per_s * (1.0 + self.screened.band.p90_ape)

    @property
    def pessimistic_rate_per_s(self) -> float:
        return self.capacity.max_rate_per_s / (1.0 + self.screened.band.p90_ape)


def size_analytic(screened: Screened, workload: WorkloadSpec) -> Sized:
    capacity = max_rate_analytic(
        screened.step,
        workload.prompt_tokens,
        workload.output_tokens,
        workload.slo,
        ceiling_rate_per_s=screened.ceiling_rate_per_s,
        prefix=workload.prefix,
        burstiness_cv=workload.planning_burstiness_cv,
    )
    return Sized(screened, capacity, simulated=False)


def size_simulated(sized: Sized, workload: WorkloadSpec, requests: RequestSet) -> Sized:
    capacity = max_rate_simulated(
        sized.screened.step, requests, workload.slo, start_rate_per_s=sized.capacity.max_rate_per_s
    )
    return Sized(sized.screened, capacity, simulated=True)


def unreachable_reason(search: RateSearch, slo: LatencySlo) -> str:
    return (
        f"SLO unreachable: even with one request at a time p95 TTFT is {search.idle_ttft_p95_ms:.0f} ms "
        f"(target {slo.ttft_p95_ms:g}) and p95 ITL {search.idle_itl_p95_ms:.1f} ms (target {slo.itl_p95_ms:g})"
    )
