"""The planning pipeline end to end: candidates -> screen -> capacity -> cost -> rank and explain.

Capacity is estimated twice, coarse then fine, to stay fast: every screened family gets a mean-field estimate,
except those whose cost at their throughput ceiling already exceeds enough cheaper families (branch and bound);
the cheapest families by that estimate are then simulated, and the simulation decides the ranking.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from typing import Any

from apps.catalog.marketplaces import marketplace_of
from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.batching import RequestSet
from apps.planner.perf.calibration import Calibration, calibrate
from apps.planner.perf.corpus import MeasuredPoint
from apps.planner.pipeline.candidates import Rejection, enumerate_candidates, market_summary
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
from apps.planner.pipeline.mixed import MixedFleet, mixed_fleets
from apps.planner.pipeline.payment import ways_to_pay
from apps.planner.pipeline.rank import mark_pareto, option, order, tie_groups
from apps.planner.pipeline.screen import Screened, screen
from apps.planner.pipeline.sensitivity import sensitivity
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
# The stages a plan reports as it goes (on_stage), in order, with what each does in words a manager reads.
STAGES = (
    ("candidates", "listing every engine, precision, GPU and layout the workload allows"),
    ("screen", "checking memory and estimating each family's capacity"),
    ("simulate", "simulating the cheapest families under the traffic"),
    ("explain", "costing, ranking and explaining the options"),
)


PRICING_NOTES = {
    "cheapest_listing": "each instance is priced at its own listing, and the cheapest listing that hosts the "
    "fleet is picked (offer_pricing cheapest_listing); see each option's market for the median",
    "median_market": "each instance is priced at the median of the market's listings of its GPU per GPU-hour "
    "(offer_pricing median_market); the listing named is the one nearest that median",
    "named_providers": "only the listings of the providers in constraints.providers are priced "
    "(offer_pricing named_providers), each at its own price",
}


def _market(catalog: CatalogSnapshot, option: dict[str, Any], spot: bool) -> dict[str, Any]:
    """The GPU's market beside the option's price, and what it means when the listing is a marketplace's."""
    market = market_summary(catalog, option["gpu"], spot=spot)
    market["planned_usd_per_gpu_hour"] = round(
        option["instance_usd_per_hour"] / option["gpus_per_instance"], 4
    )
    place = marketplace_of(option["provider"])
    market["marketplace"] = (
        None
        if place is None
        else {"kind": place.kind, "availability": place.what_it_means, "source": place.source_url}
    )
    return market


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
        bound = cheapest_monthly_usd(s.candidate, optimistic, workload)
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


def _recommended(options: list[dict[str, Any]], mixes: list[MixedFleet]) -> dict[str, Any] | None:
    """The cheapest way found: the first option, or a mixed fleet that costs less."""
    if mixes and (not options or mixes[0].monthly_usd < options[0]["monthly_cost_usd"]):
        return {"kind": "mixed", "mixed_fleet": 0, "monthly_cost_usd": round(mixes[0].monthly_usd, 2)}
    if options:
        return {
            "kind": "option",
            "rank": options[0]["rank"],
            "monthly_cost_usd": options[0]["monthly_cost_usd"],
        }
    return None


def plan(
    workload: WorkloadSpec,
    catalog: CatalogSnapshot,
    measured: Iterable[MeasuredPoint] = (),
    *,
    calibration: Calibration | None = None,
    shortlist: int = SHORTLIST,
    max_options: int = MAX_OPTIONS,
    seed: int = 0,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ranked deployments for the workload, as the plan JSON of DESIGN.md (plus evidence keys). `on_stage` is
    called with each name of STAGES as that stage starts (progress for a page that is waiting)."""
    report = on_stage or (lambda _stage: None)
    started = time.perf_counter()
    report("candidates")
    cal = calibration or calibrate(catalog, tuple(measured))
    found = enumerate_candidates(workload, catalog)
    rejected = list(found.rejected)
    report("screen")
    screened, screen_rejections = screen(found.candidates, workload, cal, found.context_tokens)
    rejected += screen_rejections
    estimates = _bounded_sizes(screened, workload, 2 * shortlist, rejected)
    screened_at = time.perf_counter()

    # Walk down the estimate's order until `shortlist` families hold the SLO in simulation (bounded effort).
    report("simulate")
    requests = RequestSet.draw(
        workload.prompt_tokens,
        workload.output_tokens,
        SIM_MAX_REQUESTS,
        seed=seed,
        burstiness_cv=workload.planning_burstiness_cv,
        prefix=workload.prefix,
    )
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

    report("explain")
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
    ordered: list[Costed] = []
    for group in groups:
        standing = len(options) + 1
        positions = list(range(standing, standing + len(group)))
        for position, costed in zip(positions, group, strict=True):
            assert first is not None
            tied = [p for p in positions if p != position]
            options.append(option(position, standing, tied, costed, workload, volume, requests, first, cal))
            ordered.append(costed)
    mark_pareto(options)
    _compare_layouts(options, refined, rejected)

    mixes = mixed_fleets(ordered, workload)
    what_if = sensitivity(ordered, workload, cal)
    api_rows = api_alternatives(catalog, found.model, volume)
    same_model = [r["monthly_cost_usd"] for r in api_rows if r["same_model_size"]]
    api_monthly = min(same_model) if same_model else None
    for o, costed in zip(options, ordered, strict=True):
        o["payment"] = ways_to_pay(costed, workload, volume, api_monthly)
        o["market"] = _market(catalog, o, workload.constraints.spot)
    counts: dict[str, int] = {}
    for r in rejected:
        counts[r.reason_code] = counts.get(r.reason_code, 0) + 1
    return {
        "workload": workload_spec_to_dict(workload),
        "catalog_version": catalog.version,
        "options": options,
        "mixed_fleets": [m.to_dict() for m in mixes],
        "sensitivity": what_if,
        "recommended": _recommended(options, mixes),
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
        "notes": [*found.notes, PRICING_NOTES[workload.offer_pricing]],
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
