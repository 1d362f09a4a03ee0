"""The planning pipeline end to end: candidates -> screen -> capacity -> cost -> rank and explain.

Capacity is estimated twice, coarse then fine, to stay fast: every screened family gets a mean-field estimate,
except those whose cost at their throughput ceiling already exceeds enough cheaper families (branch and bound);
the cheapest families by that estimate are then simulated, and the simulation decides the ranking.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from typing import Any

from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.batching import RequestSet
from apps.planner.perf.calibration import Calibration, calibrate
from apps.planner.perf.corpus import MeasuredPoint
from apps.planner.pipeline.candidates import Rejection, enumerate_candidates
from apps.planner.pipeline.capacity import (
    CEILING_SLACK,
    MIN_SIM_REQUESTS,
    Sized,
    size_analytic,
    size_simulated,
    unreachable_reason,
)
from apps.planner.pipeline.cost import (
    COLD_START_PRESCALE_S,
    ENGINE_START_S,
    LOAD_BANDWIDTH_BYTES_PER_S,
    Costed,
    api_alternatives,
    break_even,
    cheapest_monthly_usd,
    cost_family,
)
from apps.planner.pipeline.rank import mark_pareto, option, order, tie_groups
from apps.planner.pipeline.screen import Screened, screen
from apps.planner.pipeline.workload import (
    DAYS_PER_MONTH,
    HOURS_PER_DAY,
    WorkloadSpec,
    monthly_tokens,
    workload_spec_to_dict,
)

SIM_MAX_REQUESTS = 1500  # drawn once per plan; each simulation uses the first 300+ (see requests_for_rate)
SHORTLIST = 12
MAX_OPTIONS = 10


def _bounded_sizes(
    screened: list[Screened], workload: WorkloadSpec, keep: int, rejected: list[Rejection]
) -> list[Sized]:
    """Mean-field capacity for the families that can still be among the `keep` cheapest.

    A replica never serves more than CEILING_SLACK x its throughput ceiling, so costing every family at that
    rate (less its typical error, as planning does) bounds its cost from below; once `keep` families cost less
    than a family's bound, it and every later one are reported as not competitive.
    """
    bounded = []
    for s in screened:
        optimistic = s.ceiling_rate_per_s * CEILING_SLACK / (1.0 + s.band.median_ape)
        bound = cheapest_monthly_usd(s.dep, s.candidate.offers, optimistic, workload)
        cheapest_hour = min(o.usd_per_gpu_hour for o in s.candidate.offers) * s.dep.gpus
        bounded.append((bound, cheapest_hour, s))
    bounded.sort(key=lambda item: (item[0], item[1]))
    costs: list[float] = []
    sized: list[Sized] = []
    for bound, _, s in bounded:
        if len(costs) >= keep and bound >= costs[keep - 1]:
            rejected.append(
                Rejection.of(
                    s.dep,
                    "not_competitive",
                    f"not competitive: even at its throughput ceiling ({s.ceiling_rate_per_s:.2f} req/s per "
                    f"replica) it costs at least ${bound:,.0f}/month, above {keep} cheaper candidates",
                )
            )
            continue
        estimate = size_analytic(s, workload)
        if estimate.capacity.max_rate_per_s <= 0:
            rejected.append(
                Rejection.of(s.dep, "slo_unreachable", unreachable_reason(estimate.capacity, workload.slo))
            )
            continue
        bisect.insort(costs, cost_family(estimate, workload).monthly_usd)
        sized.append(estimate)
    return sized


def _compare_layouts(options: list[dict[str, Any]], refined: list[Costed], rejected: list[Rejection]) -> None:
    """Tell each expert-parallel or multi-node option how the plain tensor-parallel layout of the same engine,
    precision and GPU fared: its capacity, or why it was left out."""
    capacity = {
        (c.sized.screened.dep.engine, c.sized.screened.dep.quant.slug, c.sized.screened.dep.gpu.slug,
         c.sized.screened.dep.parallelism): c.sized.capacity.max_rate_per_s
        for c in refined
    }  # fmt: skip
    reasons = {(r.engine, r.quant, r.gpu, r.parallelism): r.reason for r in rejected if r.parallelism}
    for o in options:
        if o["ep"] <= 1 and o["nodes"] <= 1:
            continue
        plain = f"TP{min(o['gpus_per_replica'], 8)}"
        key = (o["engine"], o["quant"], o["gpu"], plain)
        if key in capacity:
            ratio = capacity[key] / o["max_requests_per_s_per_replica"] - 1.0
            o["why"] += (
                f" Plain {plain} on the same GPUs holds {capacity[key]:.2f} req/s per replica "
                f"({abs(ratio) * 100:.0f}% {'more' if ratio > 0 else 'less'})."
            )
        elif key in reasons:
            o["why"] += f" Plain {plain} was left out: {reasons[key]}."


def plan(
    workload: WorkloadSpec,
    catalog: CatalogSnapshot,
    measured: Iterable[MeasuredPoint] = (),
    *,
    calibration: Calibration | None = None,
    shortlist: int = SHORTLIST,
    max_options: int = MAX_OPTIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """Ranked deployments for the workload, as the plan JSON of DESIGN.md (plus evidence keys)."""
    started = time.perf_counter()
    cal = calibration or calibrate(catalog, tuple(measured))
    found = enumerate_candidates(workload, catalog)
    rejected = list(found.rejected)
    screened, screen_rejections = screen(found.candidates, workload, cal, found.context_tokens)
    rejected += screen_rejections
    estimates = _bounded_sizes(screened, workload, 2 * shortlist, rejected)
    screened_at = time.perf_counter()

    # Walk down the estimate's order until `shortlist` families hold the SLO in simulation (bounded effort).
    requests = RequestSet.draw(workload.prompt_tokens, workload.output_tokens, SIM_MAX_REQUESTS, seed=seed)
    refined: list[Costed] = []
    for position, estimate in enumerate(order([cost_family(e, workload) for e in estimates])):
        dep = estimate.sized.screened.dep
        if len(refined) >= shortlist or position >= 2 * shortlist:
            rejected.append(
                Rejection.of(
                    dep,
                    "not_shortlisted",
                    f"screened at ${estimate.monthly_usd:,.0f}/month (mean-field capacity "
                    f"{estimate.sized.capacity.max_rate_per_s:.2f} req/s per replica); {len(refined)} cheaper "
                    "families were simulated",
                )
            )
            continue
        sized = size_simulated(estimate.sized, workload, requests)
        if sized.capacity.max_rate_per_s <= 0:
            rejected.append(
                Rejection.of(dep, "slo_unreachable", unreachable_reason(sized.capacity, workload.slo))
            )
            continue
        refined.append(cost_family(sized, workload))
    simulated_at = time.perf_counter()

    ranked = order(refined)
    for costed in ranked[max_options:]:
        rejected.append(
            Rejection.of(
                costed.sized.screened.dep,
                "not_shortlisted",
                f"holds the SLO at ${costed.monthly_usd:,.0f}/month, ranked after the {max_options} options listed",
            )
        )
    groups = tie_groups(ranked[:max_options])
    volume = monthly_tokens(workload)
    options: list[dict[str, Any]] = []
    first = groups[0][0] if groups else None
    for group in groups:
        standing = len(options) + 1
        positions = list(range(standing, standing + len(group)))
        for position, costed in zip(positions, group, strict=True):
            assert first is not None
            tied = [p for p in positions if p != position]
            options.append(option(position, standing, tied, costed, workload, volume, requests, first, cal))
    mark_pareto(options)
    _compare_layouts(options, refined, rejected)

    api_rows = api_alternatives(catalog, found.model, volume)
    counts: dict[str, int] = {}
    for r in rejected:
        counts[r.reason_code] = counts.get(r.reason_code, 0) + 1
    return {
        "workload": workload_spec_to_dict(workload),
        "catalog_version": catalog.version,
        "options": options,
        "api_alternatives": api_rows,
        "break_even": break_even(options, api_rows, volume, workload),
        "pareto": [
            {
                "rank": o["rank"],
                "monthly_cost_usd": o["monthly_cost_usd"],
                "latency_margin": o["latency_margin"],
            }
            for o in options
            if o["pareto_optimal"]
        ],
        "rejected": [r.to_dict() for r in rejected],
        "rejected_summary": counts,
        "notes": list(found.notes),
        "method": {
            "families_fitting": len(screened),
            "families_screened": len(estimates),
            "families_simulated": len(refined),
            "simulated_requests": f"{MIN_SIM_REQUESTS}..{SIM_MAX_REQUESTS} per evaluation (enough for "
            "20x the TTFT target of arrivals)",
            "seed": seed,
            "capacity": "highest Poisson rate whose simulated p95 TTFT and p95 ITL hold the SLO",
            "planned_capacity": "the predicted capacity divided by (1 + the typical cross-validated error of "
            "its group); ranking is by the monthly cost at that capacity, and options whose cost ranges "
            "(predicted capacity to p90 error) overlap are shown as tied",
            "hours_per_month": HOURS_PER_DAY * DAYS_PER_MONTH,
            "cold_start": f"weights / {LOAD_BANDWIDTH_BYTES_PER_S / 1e9:g} GB/s + {ENGINE_START_S:g} s; "
            f"scale up one hour early above {COLD_START_PRESCALE_S:g} s",
            "calibration": {
                "published_rows": cal.corpus_rows,
                "measured_rows": cal.measured_rows,
                "cross_validation": cal.cv,
                "basis": cal.model.basis,
            },
            "timing_s": {
                "screen": round(screened_at - started, 4),
                "simulate": round(simulated_at - screened_at, 4),
                "total": round(time.perf_counter() - started, 4),
            },
        },
        "inputs": {"measured_points": len(cal.points), "published_rows": cal.corpus_rows},
    }
