"""When no deployment holds the workload: why, and the nearest changes that make one hold it.

Each suggestion is a small change to the workload (looser latency targets, a GPU, a quantization, more GPUs per
replica, other providers or on-demand prices) that was planned and found to have an option, so "plan with this"
never leads to another empty plan. Verification plans the changed workload narrowed to the family that answers
it (one engine, precision and GPU), which takes a fraction of a full plan; the plan the team then asks for
covers everything the changed workload allows, so it finds that option or a cheaper one. Pure; no Django.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.batching import analytic_poisson
from apps.planner.perf.calibration import Calibration
from apps.planner.pipeline.candidates import enumerate_candidates
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.screen import screen
from apps.planner.pipeline.workload import LatencySlo, WorkloadSpec

# What each rejection reason means, in a sentence a manager reads ({n}: how many families or names).
REASON_SENTENCES = {
    "slo_unreachable": "{n} deployments fit in memory but miss the latency targets even with one request at a time",
    "does_not_fit": "{n} layouts cannot hold the model's weights and one longest request in GPU memory",
    "no_offer": "{n} GPUs or layouts have no priced offer that can host a replica",
    "excluded_by_constraints": "{n} GPUs are left out by the workload's GPU list",
    "quality_bar": "{n} quantizations are outside the workload's quality bar",
    "context_exceeds_model": "the longest request is longer than the model's context window",
    "no_checkpoint": "{n} engine and precision pairs have no published checkpoint to load",
    "no_image": "{n} engine and GPU pairs have no engine image to deploy",
    "precision_unsupported": "{n} GPU and precision pairs are not supported by the hardware",
    "engine_cannot_serve_quant": "{n} engine and quantization pairs are not served by that engine",
    "invalid_parallelism": "{n} layouts are not valid for the model's shape",
}
# Latency targets are offered as round numbers a person would write down.
_ROUND_STEPS = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
# Headroom over the latency a replica shows when idle: a target that tight would hold at no load at all.
SLO_MARGINS = (1.3, 1.6, 2.2, 3.0)
VERIFY_SHORTLIST = 3


@dataclass(frozen=True)
class Change:
    path: str  # dotted path in the workload document
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "from": self.before, "to": self.after}


def round_up(value: float) -> float:
    """The next 'round' number at or above value: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten."""
    if value <= 0:
        return 0.0
    scale = 10 ** math.floor(math.log10(value))
    for step in _ROUND_STEPS:
        if step * scale >= value * (1 - 1e-9):
            return float(f"{step * scale:.6g}")
    return float(10 * scale)


def why(result: Mapping[str, Any]) -> list[str]:
    """The reasons families were left out, most frequent first, as sentences."""
    counts: Mapping[str, int] = result.get("rejected_summary") or {}
    # What ruled out the families the workload allows first, then what the workload itself ruled out.
    first = ("slo_unreachable", "does_not_fit", "context_exceeds_model", "no_offer")
    lines = []
    for code, n in sorted(counts.items(), key=lambda item: (item[0] not in first, -item[1])):
        template = REASON_SENTENCES.get(code)
        if template is not None:
            lines.append(template.format(n=n))
    return lines


def _verified(
    workload: WorkloadSpec, catalog: CatalogSnapshot, calibration: Calibration
) -> dict[str, Any] | None:
    """The best option of a (narrowed) plan of `workload`, or None when it has none either."""
    result = plan(workload, catalog, calibration=calibration, shortlist=VERIFY_SHORTLIST, max_options=1)
    options = result["options"]
    if not options:
        return None
    best = options[0]
    keys = ("model", "engine", "quant", "gpu", "tp", "gpus_per_replica", "parallelism", "provider",
            "instance_type", "monthly_cost_usd")  # fmt: skip
    return {key: best[key] for key in keys}


def _narrowed(workload: WorkloadSpec, engine: str, quant: str, gpu: str) -> WorkloadSpec:
    return replace(
        workload,
        allowed_quantizations=(quant,),
        constraints=replace(workload.constraints, engines=(engine,), gpus=(gpu,)),
    )


def _slo_suggestion(
    workload: WorkloadSpec, catalog: CatalogSnapshot, calibration: Calibration
) -> dict[str, Any] | None:
    """The nearest latency targets some fitting deployment holds: the family whose latency with one request at
    a time is closest to the targets, with room for load on top, rounded up."""
    found = enumerate_candidates(workload, catalog)
    screened, _ = screen(found.candidates, workload, calibration, found.context_tokens)
    slo = workload.slo
    ranked = []
    for s in screened:
        idle = analytic_poisson(
            s.step,
            workload.prompt_tokens,
            workload.output_tokens,
            1e-6,
            prefix=workload.prefix,
            burstiness_cv=workload.planning_burstiness_cv,
        )
        if not (math.isfinite(idle.ttft_p95_ms) and math.isfinite(idle.itl_p95_ms)):
            continue
        stretch = max(idle.ttft_p95_ms / slo.ttft_p95_ms, idle.itl_p95_ms / slo.itl_p95_ms)
        ranked.append((stretch, idle.ttft_p95_ms, idle.itl_p95_ms, s))
    ranked.sort(key=lambda item: item[0])
    for _, ttft, itl, s in ranked[:3]:
        dep = s.dep
        for margin in SLO_MARGINS:
            target = LatencySlo(
                ttft_p95_ms=max(slo.ttft_p95_ms, round_up(ttft * margin)),
                itl_p95_ms=max(slo.itl_p95_ms, round_up(itl * margin)),
            )
            changed = replace(workload, slo=target)
            option = _verified(
                _narrowed(changed, dep.engine, dep.quant.slug, dep.gpu.slug), catalog, calibration
            )
            if option is None:
                continue
            changes = [
                Change(f"slo.{key}", getattr(slo, key), getattr(target, key))
                for key in ("ttft_p95_ms", "itl_p95_ms")
                if getattr(target, key) != getattr(slo, key)
            ]
            return {
                "kind": "slo",
                "title": "Loosen the latency targets to "
                f"p95 TTFT {target.ttft_p95_ms:g} ms and p95 ITL {target.itl_p95_ms:g} ms",
                "detail": f"The nearest targets a deployment holds: with one request at a time "
                f"{dep.engine} {dep.quant.slug} on {dep.gpus}x {dep.gpu.slug} answers in p95 TTFT {ttft:.0f} ms "
                f"and ITL {itl:.1f} ms per token; the targets leave room for load on top.",
                "changes": [c.to_dict() for c in changes],
                "option": option,
            }
    return None


def _widened(
    workload: WorkloadSpec,
    catalog: CatalogSnapshot,
    calibration: Calibration,
    *,
    kind: str,
    wider: WorkloadSpec,
    changes_for: Any,
    title_for: Any,
    detail: str,
) -> dict[str, Any] | None:
    """Plan the workload with one constraint lifted; if an option appears, suggest the smallest change that
    admits it (its GPU, its quantization, ...), verified on that change alone."""
    best = _verified(wider, catalog, calibration)
    if best is None:
        return None
    changes: list[Change] = changes_for(best)
    if not changes:
        return None
    return {
        "kind": kind,
        "title": title_for(best),
        "detail": detail,
        "changes": [c.to_dict() for c in changes],
        "option": best,
    }


def suggestions(
    workload: WorkloadSpec, catalog: CatalogSnapshot, calibration: Calibration, result: Mapping[str, Any]
) -> dict[str, Any]:
    """`{"why": [...], "suggestions": [...], "not_helping": [...]}` for a plan without options."""
    c = workload.constraints
    out: list[dict[str, Any]] = []
    counts: Mapping[str, int] = result.get("rejected_summary") or {}
    not_helping: list[str] = []
    if counts.get("context_exceeds_model"):
        not_helping.append(
            "No setting here helps while the longest request exceeds the model's context: lower "
            "prompt_tokens.max or output_tokens.max, or pick a model with a longer context."
        )
        return {"why": why(result), "suggestions": out, "not_helping": not_helping}

    if counts.get("slo_unreachable"):
        slo = _slo_suggestion(workload, catalog, calibration)
        if slo is not None:
            out.append(slo)
        not_helping.append(
            "Less traffic would not help: the deployments that fit miss the targets even with one request at a "
            "time, and more traffic only adds replicas."
        )

    if c.gpus:
        suggestion = _widened(
            workload, catalog, calibration,
            kind="gpus",
            wider=replace(workload, constraints=replace(c, gpus=())),
            changes_for=lambda best: [Change("constraints.gpus", list(c.gpus), [*c.gpus, best["gpu"]])],
            title_for=lambda best: f"Allow the {best['gpu']} GPU",
            detail="With every GPU allowed, this is the cheapest that holds the targets.",
        )  # fmt: skip
        if suggestion is not None:
            out.append(suggestion)
    all_quants = tuple(q.slug for q in catalog.quantizations)
    if counts.get("quality_bar") and set(all_quants) - set(workload.allowed_quantizations):
        quality = {q.slug: q.typical_quality_loss_pct for q in catalog.quantizations}
        suggestion = _widened(
            workload, catalog, calibration,
            kind="quantizations",
            wider=replace(workload, allowed_quantizations=all_quants),
            changes_for=lambda best: [] if best["quant"] in workload.allowed_quantizations else [
                Change("quality.allowed_quantizations", list(workload.allowed_quantizations),
                       [*workload.allowed_quantizations, best["quant"]])
            ],
            title_for=lambda best: f"Accept the {best['quant']} quantization "
            f"(typical quality loss {quality.get(best['quant'], 0):g}%)",
            detail="With every quantization allowed, this is the cheapest precision that holds the targets.",
        )  # fmt: skip
        if suggestion is not None:
            out.append(suggestion)
    if counts.get("does_not_fit") and c.max_gpus_per_replica < 8:
        suggestion = _widened(
            workload, catalog, calibration,
            kind="gpus_per_replica",
            wider=replace(workload, constraints=replace(c, max_gpus_per_replica=8)),
            changes_for=lambda best: [Change("constraints.max_gpus_per_replica", c.max_gpus_per_replica,
                                             max(best["gpus_per_replica"], c.max_gpus_per_replica))],
            title_for=lambda best: f"Allow {best['gpus_per_replica']} GPUs per replica",
            detail="The model needs more GPU memory per replica than the limit allows.",
        )  # fmt: skip
        if suggestion is not None:
            out.append(suggestion)
    if c.providers or c.spot:
        offers = _offers_suggestion(workload, catalog, calibration)
        if offers is not None:
            out.append(offers)
    return {"why": why(result), "suggestions": _distinct(out), "not_helping": not_helping}


def _offers_suggestion(
    workload: WorkloadSpec, catalog: CatalogSnapshot, calibration: Calibration
) -> dict[str, Any] | None:
    """The smallest lift of the offer constraints that finds an option: on-demand prices at the same
    providers, then any provider at the same kind of price, then both."""
    c = workload.constraints
    tries = []
    if c.spot:
        tries.append((replace(c, spot=False), [Change("constraints.spot", True, False)]))
    if c.providers:
        tries.append((replace(c, providers=()), []))
        if c.spot:
            tries.append((replace(c, providers=(), spot=False), [Change("constraints.spot", True, False)]))
    for constraints, changes in tries:
        pricing = "cheapest_listing" if not constraints.providers else workload.offer_pricing
        best = _verified(
            replace(workload, constraints=constraints, offer_pricing=pricing), catalog, calibration
        )
        if best is None:
            continue
        if not constraints.providers:
            changes = [
                Change("constraints.providers", list(c.providers), [*c.providers, best["provider"]]),
                *changes,
            ]
        title = (
            f"Also rent from {best['provider']}"
            if not constraints.providers
            else f"Rent from {best['provider']}"
        )
        if c.spot and not constraints.spot:
            title += " at on-demand prices"
        return {
            "kind": "offers",
            "title": title,
            "detail": "The providers or prices allowed have no instance whose replica holds the targets; with "
            "this change one does.",
            "changes": [ch.to_dict() for ch in changes],
            "option": best,
        }
    return None


def _distinct(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = repr(item["changes"])
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
