"""Sensitivity: how the choice changes if traffic grows 1.5x or 2x, prices move by 20% either way, or prompts
double. Traffic and prices re-cost the families already sized (a replica's capacity does not depend on them);
doubled prompts are sized again (the mean-field estimate, as the first pass of planning is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from apps.planner.perf.batching import LengthStats
from apps.planner.perf.calibration import Calibration
from apps.planner.pipeline.candidates import PricedOffer
from apps.planner.pipeline.capacity import Sized, size_analytic
from apps.planner.pipeline.cost import Costed, cost_family
from apps.planner.pipeline.rank import order
from apps.planner.pipeline.screen import Screened, screen
from apps.planner.pipeline.workload import WorkloadSpec

SCENARIOS = (
    ("traffic x1.5", {"traffic": 1.5}),
    ("traffic x2", {"traffic": 2.0}),
    ("prices +20%", {"prices": 1.2}),
    ("prices -20%", {"prices": 0.8}),
    ("prompts x2", {"prompts": 2.0}),
)


def _label(costed: Costed) -> str:
    dep = costed.sized.screened.dep
    return f"{dep.engine} {dep.quant.slug} {dep.parallelism} on {dep.gpus}x {dep.gpu.slug}"


def _with_prices(costed: Costed, factor: float) -> Costed:
    screened = costed.sized.screened
    offers = tuple(replace(o, usd_per_hour=o.usd_per_hour * factor) for o in screened.candidate.offers)
    return replace(costed, sized=replace(costed.sized, screened=_with_offers(screened, offers)))


def _with_offers(screened: Screened, offers: tuple[PricedOffer, ...]) -> Screened:
    return replace(screened, candidate=replace(screened.candidate, offers=offers))


def _scaled_lengths(stats: LengthStats, factor: float, cap: int) -> LengthStats:
    return LengthStats(
        mean=min(stats.mean * factor, cap),
        p50=min(stats.p50 * factor, cap),
        p95=min(stats.p95 * factor, cap),
        max=min(round(stats.max * factor), cap),
    )


def sensitivity(
    ranked: Sequence[Costed], workload: WorkloadSpec, calibration: Calibration, *, families: int = 8
) -> list[dict[str, Any]]:
    """Per scenario: the cheapest family then, its monthly cost, and whether it is still the plan's choice."""
    if not ranked:
        return []
    base = ranked[0]
    pool = list(ranked[:families])
    rows: list[dict[str, Any]] = []
    for name, change in SCENARIOS:
        scenario = workload
        costed: list[Costed]
        if "traffic" in change:
            k = change["traffic"]
            scenario = replace(
                workload,
                hourly_requests_per_s=tuple(r * k for r in workload.hourly_requests_per_s),
                weekday_hourly_requests_per_s=_scale(workload.weekday_hourly_requests_per_s, k),
                weekend_hourly_requests_per_s=_scale(workload.weekend_hourly_requests_per_s, k),
            )
            costed = [cost_family(c.sized, scenario) for c in pool]
        elif "prices" in change:
            costed = [cost_family(_with_prices(c, change["prices"]).sized, scenario) for c in pool]
        else:
            cap = max(c.sized.screened.dep.model.max_context for c in pool)
            prompt = _scaled_lengths(
                workload.prompt_tokens, change["prompts"], cap - workload.output_tokens.max
            )
            scenario = replace(workload, prompt_tokens=prompt)
            context = prompt.max + workload.output_tokens.max
            survivors, _ = screen(
                tuple(c.sized.screened.candidate for c in pool), scenario, calibration, context
            )
            sized: list[Sized] = [size_analytic(s, scenario) for s in survivors]
            costed = [cost_family(s, scenario) for s in sized if s.capacity.max_rate_per_s > 0]
        if not costed:
            rows.append({"scenario": name, "best": None, "note": "no option holds the SLO"})
            continue
        best = order(costed)[0]
        same = _label(best) == _label(base)
        rows.append(
            {
                "scenario": name,
                "best": _label(best),
                "monthly_cost_usd": round(best.monthly_usd, 2),
                "change_vs_plan": round(best.monthly_usd / base.monthly_usd - 1.0, 4),
                "same_choice": same,
                "peak_replicas": max(best.best.replicas_by_hour),
            }
        )
    return rows


def _scale(rates: tuple[float, ...] | None, k: float) -> tuple[float, ...] | None:
    return None if rates is None else tuple(r * k for r in rates)
