"""Stage 5, rank and explain: order the costed families by their monthly cost at the planned (conservative)
capacity, mark as ties the options whose cost ranges overlap within their error bands, find the Pareto front of
cost against latency margin, and say for each option why, with how much evidence stands behind it.

A difference in evidence must not become a difference in rank: two options whose cost ranges overlap share a
standing, and within a tie the order is by the cost the model predicts with no error allowance (which evidence
does not move), then by the price of a replica-hour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from apps.catalog.checkpoints import Checkpoint
from apps.planner.perf.batching import LoadSpec, RequestSet, simulate
from apps.planner.perf.calibration import Calibration
from apps.planner.perf.corpus import MeasuredPoint
from apps.planner.perf.deployment import Deployment
from apps.planner.perf.predict import predict
from apps.planner.pipeline.capacity import max_rate_analytic, requests_for_rate, simulation_horizon_s
from apps.planner.pipeline.cost import Costed, Fleet, cold_start_s
from apps.planner.pipeline.workload import LatencySlo, TokenVolume, WorkloadSpec

ENGINE_NAMES_SHOWN = {
    "vllm": "vLLM",
    "sglang": "SGLang",
    "trtllm": "TensorRT-LLM",
    "tgi": "TGI",
    "llamacpp": "llama.cpp",
    "transformers": "Transformers",
}


def order(costed: Sequence[Costed]) -> list[Costed]:
    """By cost at the planned capacity; ties (every fleet at its warm standby) go to the cheaper replica-hour,
    then the larger capacity."""
    return sorted(costed, key=lambda c: (c.monthly_usd, c.replica_hour_usd, -c.sized.capacity.max_rate_per_s))


def tie_groups(ranked: Sequence[Costed]) -> list[list[Costed]]:
    """Consecutive options whose cost ranges overlap the first one's, each group in evidence-free order.

    An option's cost range runs from its cost at the capacity as predicted to its cost if that prediction is
    high by its group's p90 error. Within a group the order is by the cost at the predicted capacity (which
    evidence does not move), then by the replica-hour price.
    """
    groups: list[list[Costed]] = []
    leader_hi = -math.inf
    for costed in ranked:
        lo = min(costed.point_monthly_usd, costed.monthly_usd)
        if groups and lo <= leader_hi:
            groups[-1].append(costed)
        else:
            groups.append([costed])
            leader_hi = max(costed.pessimistic_monthly_usd, costed.monthly_usd)
    return [
        sorted(
            group,
            key=lambda c: (
                c.point_monthly_usd,
                c.replica_hour_usd,
                -c.sized.capacity.max_rate_per_s,
                c.sized.screened.dep.engine,
            ),
        )
        for group in groups
    ]


def margin(ttft_ms: float, itl_ms: float, slo: LatencySlo) -> float:
    return min(1.0 - ttft_ms / slo.ttft_p95_ms, 1.0 - itl_ms / slo.itl_p95_ms)


def _finite(value: float, digits: int = 2) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def evidence_sentence(costed: Costed) -> str:
    """How much published and measured evidence stands behind this family's efficiencies and band."""
    screened = costed.sized.screened
    dep, band, evidence = screened.dep, screened.band, screened.efficiency.evidence
    engine = ENGINE_NAMES_SHOWN.get(dep.engine, dep.engine)
    on_arch = evidence.get("engine x architecture", 0)
    at_precision = evidence.get("engine x precision", 0)
    on_gpu = evidence.get("gpu", 0)
    rows = (
        f"{engine} has {evidence.get('engine', 0)} calibration rows, {on_arch} of them on "
        f"{dep.gpu.architecture.title()} and {at_precision} at {screened.levels.precision}; {on_gpu} rows "
        f"cover the {dep.gpu.name} itself"
    )
    return (
        f"{rows}. Cross-validated error of this group ({band.group}, {band.rows} rows left out by source): "
        f"±{band.median_ape * 100:.0f}% typical, {band.p90_ape * 100:.0f}% at p90"
    )


def measured_comparison(
    dep: Deployment, costed: Costed, points: Sequence[MeasuredPoint], calibration: Calibration
) -> list[dict[str, Any]]:
    """The team's measurements of this engine, model, GPU, quantization and TP, each beside the model's
    prediction for the same conditions (the fit already includes them)."""
    out = []
    for point in points:
        if (point.model_slug, point.gpu_slug, point.engine, point.quant, point.tp) != (
            dep.model.slug,
            dep.gpu.slug,
            dep.engine,
            dep.quant.slug,
            dep.tp,
        ):
            continue
        screened = costed.sized.screened
        predicted = predict(
            dep,
            screened.efficiency,
            {},
            isl=point.isl,
            osl=point.osl,
            concurrency=point.concurrency,
            gpu_count=point.gpu_count or dep.gpus,
        )
        out.append(
            {
                "source": point.source,
                "isl": point.isl,
                "osl": point.osl,
                "concurrency": point.concurrency,
                "measured_output_tokens_per_s": round(point.output_tokens_per_s, 2),
                "predicted_output_tokens_per_s": round(predicted.output_tokens_per_s, 2),
                "measured_ttft_p50_ms": point.ttft_p50_ms,
                "predicted_ttft_ms": _finite(predicted.ttft_ms),
                "measured_tpot_ms": point.tpot_ms,
                "predicted_tpot_ms": _finite(predicted.tpot_ms, 3),
            }
        )
    return out


def option(
    position: int,
    standing: int,
    tied_with: list[int],
    costed: Costed,
    workload: WorkloadSpec,
    volume: TokenVolume,
    requests: RequestSet,
    first: Costed,
    calibration: Calibration,
) -> dict[str, Any]:
    sized, best = costed.sized, costed.best
    screened = sized.screened
    dep, offer = screened.dep, best.offer.offer
    capacity = sized.capacity
    peak_rate = max(workload.hourly_requests_per_s)
    peak_replicas = max(best.replicas_by_hour)
    per_replica_rate = peak_rate / peak_replicas if peak_replicas else 0.0
    if per_replica_rate > 0:
        window = requests_for_rate(requests, per_replica_rate, simulation_horizon_s(workload.slo, 0.0))
        at_peak = simulate(screened.step, window, LoadSpec("poisson", rate_per_s=per_replica_rate))
        ttft95, itl95 = at_peak.ttft_ms["p95"], at_peak.itl_ms["p95"]
    else:
        ttft95, itl95 = capacity.idle_ttft_p95_ms, capacity.idle_itl_p95_ms
    band = screened.band
    # Per-token figures need tokens: none for a volume under one token a month (it would divide by nothing).
    cost_per_mtok = best.monthly_usd / (volume.total / 1e6) if volume.total >= 1.0 else None
    if position == 1:
        lead = "Cheapest option that holds the SLO"
    elif standing == 1:
        lead = "Tied with the cheapest within the error bands"
    elif first.monthly_usd:
        lead = f"{(best.monthly_usd / first.monthly_usd - 1) * 100:.0f}% above the cheapest"
    else:
        lead = f"Option {position}"
    limit = {
        "ttft": "before p95 TTFT breaks the target",
        "itl": "before p95 ITL breaks the target",
        "throughput": "before the replica runs out of throughput",
    }.get(capacity.limit, "within the latency targets")
    engine = ENGINE_NAMES_SHOWN.get(dep.engine, dep.engine)
    tie_text = (
        f" Tied with option(s) {', '.join(map(str, tied_with))}: their cost ranges overlap."
        if tied_with
        else ""
    )
    why = (
        f"{lead}: {dep.parallelism} on {dep.gpus}x {dep.gpu.name} with {engine} at {dep.quant.slug} is predicted "
        f"to hold {capacity.max_rate_per_s:.2f} req/s per replica {limit}; the "
        f"fleet is sized on {sized.planned_rate_per_s:.2f} req/s (the prediction less its group's typical "
        f"error), so {peak_replicas} replica(s) cover the peak on {offer.provider} {offer.instance_type} "
        f"(${best.offer.usd_per_hour:.2f}/h, {_packing(best)}).{tie_text}{_parallelism_note(costed)} "
        f"{evidence_sentence(costed)}."
    )
    return {
        "rank": position,
        "standing": standing,
        "tied_with": tied_with,
        "model": dep.model.slug,
        "engine": dep.engine,
        "quant": dep.quant.slug,
        "gpu": dep.gpu.slug,
        "gpus_per_replica": dep.gpus,
        "tp": dep.tp,
        "pp": dep.pp,
        "dp": dep.dp,
        "ep": dep.ep,
        "parallelism": dep.parallelism,
        "provider": offer.provider,
        "instance_type": offer.instance_type,
        "region": offer.region,
        "pricing": best.offer.pricing,
        "instance_usd_per_hour": round(best.offer.usd_per_hour, 4),
        "gpus_per_instance": offer.gpu_count,
        "replicas_per_instance": best.replicas_per_instance,
        "instances_per_replica": best.instances_per_replica,
        "nodes": dep.nodes,
        "replicas_by_hour": list(best.replicas_by_hour),
        "replicas_by_hour_weekend": list(best.replicas_by_hour_weekend)
        if best.replicas_by_hour_weekend
        else None,
        "monthly_cost_usd": round(best.monthly_usd, 2),
        "monthly_cost_range_usd": [
            round(min(costed.point_monthly_usd, best.monthly_usd), 2),
            round(max(costed.pessimistic_monthly_usd, best.monthly_usd), 2),
        ],
        "fixed_fleet_monthly_usd": round(best.fixed_monthly_usd, 2),
        "scheduled_fleet_monthly_usd": round(best.scheduled_monthly_usd, 2),
        "fleet": "scheduled" if workload.scheduled_scaling else "fixed",
        "prescale_one_hour_early": best.prescale,
        "ops_monthly_usd": round(workload.ops_hours_per_month * workload.ops_hourly_usd, 2),
        "cost_per_million_tokens_usd": round(cost_per_mtok, 4) if cost_per_mtok is not None else None,
        "max_requests_per_s_per_replica": round(capacity.max_rate_per_s, 4),
        "planned_requests_per_s_per_replica": round(sized.planned_rate_per_s, 4),
        "predicted": {
            "ttft_p95_ms": _finite(ttft95),
            "itl_p95_ms": _finite(itl95),
            "at_requests_per_s_per_replica": round(per_replica_rate, 4),
            "ttft_p95_ms_at_capacity": _finite(capacity.ttft_p95_ms),
            "itl_p95_ms_at_capacity": _finite(capacity.itl_p95_ms),
            "capacity_requests_per_s_per_replica": round(capacity.max_rate_per_s, 4),
            "itl_is": "time between consecutive output tokens of one request (per token), p95 over all tokens",
        },
        "latency_margin": round(margin(ttft95, itl95, workload.slo), 4),
        "source": "predicted",
        "error_band_rel": round(band.p90_ape, 3),
        "error_band": band.to_dict(),
        "evidence": dict(screened.efficiency.evidence),
        "calibration_key": screened.efficiency.calibration_key,
        "calibration_basis": screened.efficiency.basis,
        "capacity_method": capacity.method,
        "memory": screened.step.memory.to_dict() if screened.step.memory else {},
        "weights_gb": round(dep.model.params_total_b * dep.quant.weight_bytes_per_param, 2),
        "max_concurrent_sequences": int(screened.step.max_num_seqs),
        "serve": {
            "max_num_seqs": int(screened.step.max_num_seqs),
            "max_num_batched_tokens": int(screened.step.token_budget),
            "max_model_len": screened.step.memory.context_tokens if screened.step.memory else 0,
            "gpu_memory_fraction": dep.effective_memory_fraction,
            "prefix_caching": workload.prefix.active,
        },
        "cold_start_s": round(cold_start_s(dep, workload), 1),
        "other_offers": [
            {
                "provider": f.offer.offer.provider,
                "instance_type": f.offer.offer.instance_type,
                "monthly_cost_usd": round(f.monthly_usd, 2),
            }
            for f in costed.fleets[1:4]
        ],
        "measured": measured_comparison(dep, costed, calibration.points, calibration),
        "prefix_cache": prefix_saving(costed, workload),
        "checkpoint": _checkpoint(screened.candidate.checkpoint),
        "burstiness_cv": round(workload.planning_burstiness_cv, 3),
        "why": why,
    }


def prefix_saving(costed: Costed, workload: WorkloadSpec) -> dict[str, Any] | None:
    """What the engine's prefix cache saves this workload: the share of prompt tokens it does not prefill, and
    the capacity per replica the mean-field estimate gives with and without it."""
    prefix = workload.prefix
    if not prefix.active:
        return None
    screened = costed.sized.screened
    prompt = workload.prompt_tokens
    cv = workload.planning_burstiness_cv
    with_cache = max_rate_analytic(
        screened.step, prompt, workload.output_tokens, workload.slo, prefix=prefix, burstiness_cv=cv
    )
    without = max_rate_analytic(screened.step, prompt, workload.output_tokens, workload.slo, burstiness_cv=cv)
    return {
        "shared_prefix_tokens": prefix.shared_prefix_tokens,
        "multi_turn_reuse_fraction": prefix.multi_turn_reuse_fraction,
        "cached_share_of_prompt_tokens": round(float(prefix.cached_tokens(prompt.mean)) / prompt.mean, 4),
        "capacity_with_cache_requests_per_s": round(with_cache.max_rate_per_s, 4),
        "capacity_without_cache_requests_per_s": round(without.max_rate_per_s, 4),
        "method": "mean-field estimate with and without the cache, same deployment",
    }


def _checkpoint(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {
        "repo": checkpoint.repo,
        "file": checkpoint.file,
        "method": checkpoint.method,
        "runs_as": checkpoint.runs_as,
        "source": checkpoint.source_url,
    }


def _packing(fleet: Fleet) -> str:
    if fleet.instances_per_replica > 1:
        return f"each replica spans {fleet.instances_per_replica} instances"
    return f"{fleet.replicas_per_instance} replica(s) per instance"


def _parallelism_note(costed: Costed) -> str:
    dep = costed.sized.screened.dep
    if dep.ep > 1:
        return (
            f" Experts are split over {dep.ep} GPUs ({dep.model.num_experts // dep.ep} per GPU), so each GPU reads "
            "only the experts its tokens route to and the weights fit with room for the KV cache."
        )
    if dep.nodes > 1:
        return f" The replica spans {dep.nodes} nodes: {dep.model.slug} does not fit one node's GPUs at {dep.quant.slug}."
    return ""


def mark_pareto(options: list[dict[str, Any]]) -> None:
    """Pareto frontier of monthly cost (lower is better) against latency margin at peak (higher is better).

    Options tied within their error bands do not dominate one another: their costs are not told apart.
    """
    for o in options:
        cost, m = o["monthly_cost_usd"], o["latency_margin"]
        o["pareto_optimal"] = not any(
            other is not o
            and other["standing"] != o["standing"]
            and other["monthly_cost_usd"] <= cost
            and other["latency_margin"] >= m
            and (other["monthly_cost_usd"] < cost or other["latency_margin"] > m)
            for other in options
        )
