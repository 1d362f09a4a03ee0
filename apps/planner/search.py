"""The planner: from a workload to ranked deployments, their hourly fleets and costs, hosted-API alternatives,
and the reason every other family was rejected. Pure Python; no Django.

Search order keeps it fast: candidates are pruned by precision support and memory fit before any latency work;
each (engine, quantization, GPU, TP) family gets one analytic capacity estimate shared by all offers of its GPU;
only the cheapest families by that estimate are simulated, and the simulation decides the final ranking.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from apps.catalog.specs import ApiPriceSpec, CatalogSnapshot, GpuSpec, ModelSpec, OfferSpec, QuantSpec
from apps.planner.calc import (
    CEILING_SLACK,
    MIN_SIM_REQUESTS,
    TP_DEGREES,
    Deployment,
    Efficiency,
    LatencySlo,
    LengthStats,
    LoadSpec,
    PerfModel,
    Provenance,
    RateSearch,
    RequestSet,
    UnsupportedCombination,
    build_perf_model,
    check_supported,
    max_rate_analytic,
    max_rate_simulated,
    requests_for_rate,
    simulate,
    simulation_horizon_s,
    throughput_ceiling_rate,
)
from apps.planner.calibration import Calibration, MeasuredPoint, calibrate
from workers.engines import ENGINE_NAMES

HOURS_PER_DAY = 24
DAYS_PER_MONTH = 365.0 / 12.0  # 30.42: a month of 730 hours
SIM_MAX_REQUESTS = 1500  # drawn once per plan; each simulation uses the first 300+ (see requests_for_rate)
SHORTLIST = 12
MAX_OPTIONS = 10

# Cold start = weights pulled onto the node (network volume or object store, per replica) plus engine start
# (container, CUDA context, graph capture). Above the threshold a scheduled fleet starts replicas an hour early.
LOAD_BANDWIDTH_BYTES_PER_S = 1.0e9
ENGINE_START_S = 60.0
COLD_START_PRESCALE_S = 120.0


# ------------------------------------------------------------------------------------------------------------
# Workload


@dataclass(frozen=True)
class Constraints:
    gpus: tuple[str, ...] = ()  # empty: any
    providers: tuple[str, ...] = ()  # empty: any
    max_gpus_per_replica: int = 8
    spot: bool = False  # True: spot instances only, at spot prices
    min_replicas: int = 1  # warm standby kept in every hour
    engines: tuple[str, ...] = ENGINE_NAMES


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    model: str
    hourly_requests_per_s: tuple[float, ...]  # 24 values, hour 0..23 UTC
    prompt_tokens: LengthStats
    output_tokens: LengthStats
    slo: LatencySlo
    allowed_quantizations: tuple[str, ...]
    constraints: Constraints = field(default_factory=Constraints)
    headroom: float = 0.2  # spare capacity on top of each hour's rate
    ops_hours_per_month: float = 10.0
    ops_hourly_usd: float = 100.0
    scheduled_scaling: bool = True  # False: one fixed fleet sized for the peak hour
    cold_start_s: float | None = None  # None: derived from weight bytes


class WorkloadError(ValueError):
    """The workload description is incomplete or inconsistent; the message names the field."""


def _number(d: Mapping[str, Any], key: str, where: str) -> float:
    if key not in d:
        raise WorkloadError(f"{where}.{key} is required")
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WorkloadError(f"{where}.{key} must be a number, got {value!r}")
    return float(value)


def _lengths(d: Any, where: str) -> LengthStats:
    if not isinstance(d, Mapping):
        raise WorkloadError(f"{where} must be an object with mean, p50, p95, max")
    try:
        return LengthStats(
            mean=_number(d, "mean", where),
            p50=_number(d, "p50", where),
            p95=_number(d, "p95", where),
            max=int(_number(d, "max", where)),
        )
    except WorkloadError:
        raise
    except ValueError as exc:
        raise WorkloadError(f"{where}: {exc}") from exc


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise WorkloadError(f"{where} must be a list of strings")
    return tuple(value)


def workload_spec_from_dict(d: Mapping[str, Any]) -> WorkloadSpec:
    """Parse the workload JSON of DESIGN.md; optional keys: headroom, ops_hours_per_month, ops_hourly_usd,
    scheduled_scaling, cold_start_s, constraints.engines."""
    if not isinstance(d, Mapping):
        raise WorkloadError("workload must be a JSON object")
    for key in ("model", "traffic", "prompt_tokens", "output_tokens", "slo"):
        if key not in d:
            raise WorkloadError(f"{key} is required")
    traffic = d["traffic"]
    hourly = traffic.get("hourly_requests_per_s") if isinstance(traffic, Mapping) else None
    if not isinstance(hourly, list | tuple) or len(hourly) != HOURS_PER_DAY:
        raise WorkloadError("traffic.hourly_requests_per_s must list 24 rates (hour 0..23 UTC)")
    rates = []
    for i, value in enumerate(hourly):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
            raise WorkloadError(f"traffic.hourly_requests_per_s[{i}] must be a non-negative number")
        rates.append(float(value))
    slo = d["slo"]
    if not isinstance(slo, Mapping):
        raise WorkloadError("slo must be an object with ttft_p95_ms and itl_p95_ms")
    ttft, itl = _number(slo, "ttft_p95_ms", "slo"), _number(slo, "itl_p95_ms", "slo")
    if ttft <= 0 or itl <= 0:
        raise WorkloadError("slo targets must be positive")
    quality = d.get("quality") or {}
    allowed = _strings(quality.get("allowed_quantizations"), "quality.allowed_quantizations")
    if not allowed:
        raise WorkloadError("quality.allowed_quantizations must name at least one quantization")
    c = d.get("constraints") or {}
    engines = _strings(c.get("engines"), "constraints.engines") or ENGINE_NAMES
    unknown = [e for e in engines if e not in ENGINE_NAMES]
    if unknown:
        raise WorkloadError(
            f"constraints.engines: unknown {', '.join(unknown)}; known: {', '.join(ENGINE_NAMES)}"
        )
    constraints = Constraints(
        gpus=_strings(c.get("gpus"), "constraints.gpus"),
        providers=_strings(c.get("providers"), "constraints.providers"),
        max_gpus_per_replica=int(_optional(c, "max_gpus_per_replica", 8, "constraints")),
        spot=bool(c.get("spot") or False),
        min_replicas=int(_optional(c, "min_replicas", 1, "constraints")),
        engines=engines,
    )
    if constraints.max_gpus_per_replica < 1 or constraints.min_replicas < 0:
        raise WorkloadError("constraints.max_gpus_per_replica must be >= 1 and min_replicas >= 0")
    headroom = _optional(d, "headroom", 0.2, "workload")
    if headroom < 0:
        raise WorkloadError("headroom must be >= 0")
    cold_start = d.get("cold_start_s")
    scheduled = d.get("scheduled_scaling")
    return WorkloadSpec(
        name=str(d.get("name") or "workload"),
        model=str(d["model"]),
        hourly_requests_per_s=tuple(rates),
        prompt_tokens=_lengths(d["prompt_tokens"], "prompt_tokens"),
        output_tokens=_lengths(d["output_tokens"], "output_tokens"),
        slo=LatencySlo(ttft_p95_ms=ttft, itl_p95_ms=itl),
        allowed_quantizations=allowed,
        constraints=constraints,
        headroom=headroom,
        ops_hours_per_month=_optional(d, "ops_hours_per_month", 10.0, "workload"),
        ops_hourly_usd=_optional(d, "ops_hourly_usd", 100.0, "workload"),
        scheduled_scaling=True if scheduled is None else bool(scheduled),
        cold_start_s=None if cold_start is None else _number(d, "cold_start_s", "workload"),
    )


def _optional(d: Mapping[str, Any], key: str, default: float, where: str) -> float:
    return default if d.get(key) is None else _number(d, key, where)


def workload_spec_to_dict(workload: WorkloadSpec) -> dict[str, Any]:
    """The workload in DESIGN.md's JSON format, with the optional keys filled in (what the plan assumed)."""
    c = workload.constraints
    return {
        "name": workload.name,
        "model": workload.model,
        "traffic": {"hourly_requests_per_s": list(workload.hourly_requests_per_s)},
        "prompt_tokens": asdict(workload.prompt_tokens),
        "output_tokens": asdict(workload.output_tokens),
        "slo": asdict(workload.slo),
        "quality": {"allowed_quantizations": list(workload.allowed_quantizations)},
        "constraints": {
            "gpus": list(c.gpus),
            "providers": list(c.providers),
            "max_gpus_per_replica": c.max_gpus_per_replica,
            "spot": c.spot,
            "min_replicas": c.min_replicas,
            "engines": list(c.engines),
        },
        "headroom": workload.headroom,
        "ops_hours_per_month": workload.ops_hours_per_month,
        "ops_hourly_usd": workload.ops_hourly_usd,
        "scheduled_scaling": workload.scheduled_scaling,
        "cold_start_s": workload.cold_start_s,
    }


# ------------------------------------------------------------------------------------------------------------
# Fleet and cost arithmetic


def replicas_needed(
    rate_per_s: float, max_rate_per_replica: float, headroom: float, min_replicas: int
) -> int:
    """Replicas that hold `rate_per_s` with `headroom` spare; never below the warm standby, never none while
    there is traffic."""
    if rate_per_s <= 0:
        return min_replicas
    if max_rate_per_replica <= 0:
        raise ValueError("a replica with no capacity cannot serve traffic")
    # The small tolerance keeps exact multiples (2.0 req/s on 1.0 req/s replicas) from rounding up.
    return max(min_replicas, 1, math.ceil(rate_per_s * (1.0 + headroom) / max_rate_per_replica - 1e-9))


def hourly_replicas(
    hourly_rates: Sequence[float],
    max_rate_per_replica: float,
    headroom: float,
    min_replicas: int,
    *,
    prescale: bool,
) -> list[int]:
    """Scheduled fleet: each hour's need; with a slow cold start, each hour also covers the next one."""
    need = [replicas_needed(r, max_rate_per_replica, headroom, min_replicas) for r in hourly_rates]
    if not prescale:
        return need
    return [max(need[h], need[(h + 1) % len(need)]) for h in range(len(need))]


def load_time_s(dep: Deployment) -> float:
    weight_bytes = dep.model.params_total_b * 1e9 * dep.quant.weight_bytes_per_param
    return weight_bytes / LOAD_BANDWIDTH_BYTES_PER_S + ENGINE_START_S


@dataclass(frozen=True)
class PricedOffer:
    offer: OfferSpec
    usd_per_hour: float  # per instance
    pricing: str  # "spot" or "on-demand"


def fleet_instance_hours_per_day(replicas_by_hour: Sequence[int], replicas_per_instance: int) -> int:
    """Instances are whole: hour by hour, replicas round up to instances of `replicas_per_instance`."""
    return sum(math.ceil(r / replicas_per_instance) for r in replicas_by_hour)


@dataclass(frozen=True)
class TokenVolume:
    input_tokens_per_month: float
    output_tokens_per_month: float

    @property
    def total(self) -> float:
        return self.input_tokens_per_month + self.output_tokens_per_month


def monthly_tokens(workload: WorkloadSpec) -> TokenVolume:
    requests_per_day = sum(rate * 3600.0 for rate in workload.hourly_requests_per_s)
    per_month = requests_per_day * DAYS_PER_MONTH
    return TokenVolume(per_month * workload.prompt_tokens.mean, per_month * workload.output_tokens.mean)


def api_monthly_cost_usd(api: ApiPriceSpec, volume: TokenVolume) -> float:
    return (
        volume.input_tokens_per_month / 1e6 * api.input_usd_per_mtok
        + volume.output_tokens_per_month / 1e6 * api.output_usd_per_mtok
    )


def blended_usd_per_million_tokens(api: ApiPriceSpec, volume: TokenVolume) -> float:
    """The API's price per million tokens at this workload's input/output mix."""
    if volume.total <= 0:
        return (api.input_usd_per_mtok + api.output_usd_per_mtok) / 2.0
    return api_monthly_cost_usd(api, volume) / (volume.total / 1e6)


_SIZE = re.compile(r"(\d+(?:\.\d+)?(?:x\d+)?)b\b")


def model_family(model: ModelSpec) -> tuple[str, str]:
    """('llama', '70b') from a catalog slug like llama-3.1-70b."""
    family = re.split(r"[-\d.]", model.slug, maxsplit=1)[0]
    size = _SIZE.search(model.slug.lower())
    return family, (size.group(1) + "b") if size else ""


def api_matches(api: ApiPriceSpec, model: ModelSpec) -> tuple[bool, bool]:
    """(same model family, same size) judged from the API's model name."""
    family, size = model_family(model)
    name = api.model.lower().replace("-", " ")
    same_family = bool(family) and family in name
    same_size = same_family and bool(size) and re.search(rf"(?<![\d.]){re.escape(size)}\b", name) is not None
    return same_family, same_size


# ------------------------------------------------------------------------------------------------------------
# Search


@dataclass(frozen=True)
class _Candidate:
    """A deployment that is supported and fits, before any latency work."""

    dep: Deployment
    eff: Efficiency
    perf: PerfModel
    offers: list[PricedOffer]


@dataclass
class _Family:
    dep: Deployment
    eff: Efficiency
    perf: PerfModel
    offers: list[PricedOffer]
    capacity: RateSearch
    simulated: bool = False


@dataclass
class _Costed:
    family: _Family
    offer: PricedOffer
    replicas_by_hour: list[int]
    fixed_replicas: int
    monthly_usd: float
    fixed_monthly_usd: float
    scheduled_monthly_usd: float
    prescale: bool


def _reject(
    out: list[dict[str, Any]],
    code: str,
    reason: str,
    *,
    engine: str | None = None,
    quant: str | None = None,
    gpu: str | None = None,
    tp: int | None = None,
) -> None:
    out.append(
        {"engine": engine, "quant": quant, "gpu": gpu, "tp": tp, "reason_code": code, "reason": reason}
    )


def _priced_offers(
    catalog: CatalogSnapshot, constraints: Constraints
) -> tuple[dict[str, list[PricedOffer]], int]:
    by_gpu: dict[str, list[PricedOffer]] = {}
    unmodelled = 0
    providers = {p.lower() for p in constraints.providers}
    for offer in catalog.offers:
        if providers and offer.provider.lower() not in providers:
            continue
        price = offer.spot_usd_per_hour if constraints.spot else offer.ondemand_usd_per_hour
        if price is None or price <= 0 or offer.gpu_count < 1:
            continue
        if offer.gpu_slug is None:
            unmodelled += 1
            continue
        by_gpu.setdefault(offer.gpu_slug, []).append(
            PricedOffer(offer, price, "spot" if constraints.spot else "on-demand")
        )
    return by_gpu, unmodelled


def _cost_family(family: _Family, workload: WorkloadSpec) -> list[_Costed]:
    c = workload.constraints
    rate = family.capacity.max_rate_per_s
    cold_start = workload.cold_start_s if workload.cold_start_s is not None else load_time_s(family.dep)
    prescale = workload.scheduled_scaling and cold_start > COLD_START_PRESCALE_S
    scheduled = hourly_replicas(
        workload.hourly_requests_per_s, rate, workload.headroom, c.min_replicas, prescale=prescale
    )
    fixed = max(
        hourly_replicas(
            workload.hourly_requests_per_s, rate, workload.headroom, c.min_replicas, prescale=False
        )
    )
    ops = workload.ops_hours_per_month * workload.ops_hourly_usd
    costed = []
    # Instance-hours per day depend only on how many replicas one instance holds; offers share them.
    instance_hours: dict[int, tuple[int, int]] = {}
    for priced in family.offers:
        per_instance = priced.offer.gpu_count // family.dep.tp
        if per_instance not in instance_hours:
            instance_hours[per_instance] = (
                fleet_instance_hours_per_day(scheduled, per_instance),
                fleet_instance_hours_per_day([fixed] * HOURS_PER_DAY, per_instance),
            )
        sched_hours, fixed_hours = instance_hours[per_instance]
        sched_usd = sched_hours * priced.usd_per_hour * DAYS_PER_MONTH + ops
        fixed_usd = fixed_hours * priced.usd_per_hour * DAYS_PER_MONTH + ops
        chosen = sched_usd if workload.scheduled_scaling else fixed_usd
        costed.append(
            _Costed(
                family,
                priced,
                scheduled if workload.scheduled_scaling else [fixed] * HOURS_PER_DAY,
                fixed,
                chosen,
                fixed_usd,
                sched_usd,
                prescale,
            )
        )
    costed.sort(key=lambda x: (x.monthly_usd, x.offer.offer.provider, x.offer.offer.instance_type))
    return costed


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
    c = workload.constraints
    slo = workload.slo
    prompt, output = workload.prompt_tokens, workload.output_tokens
    rejected: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        model = catalog.model(workload.model)
    except KeyError as exc:
        raise WorkloadError(str(exc.args[0])) from exc
    context_tokens = prompt.max + output.max
    if context_tokens > model.max_context:
        notes.append(
            f"longest request ({prompt.max} + {output.max} tokens) exceeds {model.slug}'s context window "
            f"({model.max_context}); no deployment can serve it"
        )
        _reject(rejected, "context_exceeds_model", notes[-1])

    quants: list[QuantSpec] = []
    known_quants = {q.slug for q in catalog.quantizations}
    for q in catalog.quantizations:
        if q.slug in workload.allowed_quantizations:
            quants.append(q)
        else:
            _reject(
                rejected,
                "quality_bar",
                f"{q.slug} is not allowed by the quality bar (typical loss {q.typical_quality_loss_pct:g}%)",
                quant=q.slug,
            )
    for slug in workload.allowed_quantizations:
        if slug not in known_quants:
            notes.append(f"quantization {slug!r} is not in the catalog; ignored")

    offers_by_gpu, unmodelled = _priced_offers(catalog, c)
    if unmodelled:
        notes.append(f"{unmodelled} offers name accelerators outside the GPU catalog and were not modelled")
    gpus: list[GpuSpec] = []
    wanted = set(c.gpus)
    for gpu in catalog.gpus:
        if wanted and gpu.slug not in wanted:
            _reject(
                rejected, "excluded_by_constraints", f"{gpu.slug} is not in constraints.gpus", gpu=gpu.slug
            )
        elif gpu.slug not in offers_by_gpu:
            pricing = "spot" if c.spot else "on-demand"
            where = f" from {', '.join(c.providers)}" if c.providers else ""
            _reject(rejected, "no_offer", f"no {pricing} offer for {gpu.slug}{where}", gpu=gpu.slug)
        else:
            gpus.append(gpu)

    candidates: list[_Candidate] = []
    if context_tokens <= model.max_context:
        candidates = _screen(workload, model, quants, gpus, offers_by_gpu, cal, context_tokens, rejected)
    families = _rank_analytically(candidates, workload, 2 * shortlist, rejected)
    screened_at = time.perf_counter()

    # Rank families by their cheapest offer at the analytic capacity, then simulate the front-runners.
    cheapest = sorted(
        ((_cost_family(f, workload)[0], f) for f in families), key=lambda pair: _rank_key(pair[0])
    )
    requests = RequestSet.draw(prompt, output, SIM_MAX_REQUESTS, seed=seed)
    refined: list[_Family] = []
    # Walk down the screening order until `shortlist` families hold the SLO in simulation (bounded effort).
    for position, (costed, fam) in enumerate(cheapest):
        if len(refined) >= shortlist or position >= 2 * shortlist:
            _reject(
                rejected,
                "not_shortlisted",
                f"screened at ${costed.monthly_usd:,.0f}/month (analytic capacity "
                f"{fam.capacity.max_rate_per_s:.2f} req/s per replica); {len(refined)} cheaper families were "
                "simulated",
                engine=fam.dep.engine,
                quant=fam.dep.quant.slug,
                gpu=fam.dep.gpu.slug,
                tp=fam.dep.tp,
            )
            continue
        search = max_rate_simulated(fam.perf, requests, slo, start_rate_per_s=fam.capacity.max_rate_per_s)
        if search.max_rate_per_s <= 0:
            _reject(
                rejected,
                "slo_unreachable",
                _unreachable_reason(search, slo),
                engine=fam.dep.engine,
                quant=fam.dep.quant.slug,
                gpu=fam.dep.gpu.slug,
                tp=fam.dep.tp,
            )
            continue
        fam.capacity, fam.simulated = search, True
        refined.append(fam)
    simulated_at = time.perf_counter()

    ranked = sorted((_cost_family(f, workload) for f in refined), key=lambda costs: _rank_key(costs[0]))
    for costs in ranked[max_options:]:
        fam = costs[0].family
        _reject(
            rejected,
            "not_shortlisted",
            f"holds the SLO at ${costs[0].monthly_usd:,.0f}/month, ranked after the {max_options} options listed",
            engine=fam.dep.engine,
            quant=fam.dep.quant.slug,
            gpu=fam.dep.gpu.slug,
            tp=fam.dep.tp,
        )
    ranked = ranked[:max_options]
    volume = monthly_tokens(workload)
    peak_rate = max(workload.hourly_requests_per_s)
    options: list[dict[str, Any]] = []
    for rank, costs in enumerate(ranked, start=1):
        best = costs[0]
        options.append(_option(rank, best, costs[1:4], workload, volume, requests, peak_rate, options))
    _mark_pareto(options)

    api_rows = _api_alternatives(catalog, model, volume)
    return {
        "workload": workload_spec_to_dict(workload),
        "catalog_version": catalog.version,
        "options": options,
        "api_alternatives": api_rows,
        "break_even": _break_even(options, api_rows, volume, workload),
        "pareto": [
            {
                "rank": o["rank"],
                "monthly_cost_usd": o["monthly_cost_usd"],
                "latency_margin": o["latency_margin"],
            }
            for o in options
            if o["pareto_optimal"]
        ],
        "rejected": rejected,
        "rejected_summary": _summarise(rejected),
        "notes": notes,
        "method": {
            "families_fitting": len(candidates),
            "families_screened": len(families),
            "families_simulated": len(refined),
            "simulated_requests": f"{MIN_SIM_REQUESTS}..{SIM_MAX_REQUESTS} per evaluation (enough for "
            "20x the TTFT target of arrivals)",
            "seed": seed,
            "capacity": "highest Poisson rate whose simulated p95 TTFT and p95 ITL hold the SLO",
            "hours_per_month": HOURS_PER_DAY * DAYS_PER_MONTH,
            "cold_start": f"weights / {LOAD_BANDWIDTH_BYTES_PER_S / 1e9:g} GB/s + {ENGINE_START_S:g} s; "
            f"scale up one hour early above {COLD_START_PRESCALE_S:g} s",
            "calibration": {
                k: {
                    "n_points": v.fit.n_points,
                    "error_band_rel": round(v.error_band_rel, 3),
                    "loo_median_ape": round(v.leave_one_out["median_ape"], 4),
                }
                for k, v in cal.keys.items()
            },
            "timing_s": {
                "screen": round(screened_at - started, 4),
                "simulate": round(simulated_at - screened_at, 4),
                "total": round(time.perf_counter() - started, 4),
            },
        },
        "inputs": {"measured_points": len(cal.points), "calibration_keys": sorted(cal.keys)},
    }


def _screen(
    workload: WorkloadSpec,
    model: ModelSpec,
    quants: list[QuantSpec],
    gpus: list[GpuSpec],
    offers_by_gpu: dict[str, list[PricedOffer]],
    cal: Calibration,
    context_tokens: int,
    rejected: list[dict[str, Any]],
) -> list[_Candidate]:
    c = workload.constraints
    families = []
    for engine in c.engines:
        for quant in quants:
            for gpu in gpus:
                base = Deployment(model=model, gpu=gpu, quant=quant, engine=engine, tp=1)
                try:
                    check_supported(base)
                except UnsupportedCombination as exc:
                    if exc.reason != "invalid_parallelism":
                        _reject(rejected, exc.reason, str(exc), engine=engine, quant=quant.slug, gpu=gpu.slug)
                        continue
                eff = cal.efficiency(engine, gpu, quant)
                largest_instance = max(o.offer.gpu_count for o in offers_by_gpu[gpu.slug])
                for tp in TP_DEGREES:
                    if tp > c.max_gpus_per_replica:
                        break
                    if gpu.is_cpu and tp > 1:
                        break
                    labels: dict[str, Any] = {
                        "engine": engine,
                        "quant": quant.slug,
                        "gpu": gpu.slug,
                        "tp": tp,
                    }
                    if tp > largest_instance:
                        _reject(
                            rejected,
                            "no_offer",
                            f"no offer has {tp}x {gpu.slug} in one instance (largest: {largest_instance})",
                            **labels,
                        )
                        continue
                    dep = Deployment(model=model, gpu=gpu, quant=quant, engine=engine, tp=tp)
                    try:
                        perf = build_perf_model(dep, eff, context_tokens=context_tokens)
                    except UnsupportedCombination as exc:
                        _reject(rejected, exc.reason, str(exc), **labels)
                        continue
                    if not perf.memory.fits:
                        _reject(rejected, "does_not_fit", perf.memory.reason, **labels)
                        continue
                    offers = [o for o in offers_by_gpu[gpu.slug] if o.offer.gpu_count >= tp]
                    families.append(_Candidate(dep, eff, perf, offers))
    return families


def _rank_analytically(
    candidates: list[_Candidate], workload: WorkloadSpec, keep: int, rejected: list[dict[str, Any]]
) -> list[_Family]:
    """Analytic capacity for the candidates that can still be among the `keep` cheapest.

    Branch and bound: a replica never serves more than CEILING_SLACK x its throughput ceiling, so costing every
    candidate at that rate gives a lower bound; once `keep` candidates cost less than a candidate's bound, it and
    all after it cannot enter the shortlist and are reported as not competitive.
    """
    prompt, output, slo = workload.prompt_tokens, workload.output_tokens, workload.slo
    bounded = []
    for cand in candidates:
        ceiling = throughput_ceiling_rate(cand.perf, prompt, output)
        optimistic = _Family(
            cand.dep, cand.eff, cand.perf, cand.offers, _bound(ceiling * CEILING_SLACK, cand.perf)
        )
        best = _cost_family(optimistic, workload)[0]
        replica_hour_usd = best.offer.usd_per_hour / (best.offer.offer.gpu_count // cand.dep.tp)
        bounded.append((best.monthly_usd, replica_hour_usd, ceiling, cand))
    # Cheapest bound first; among equal bounds (a fleet at its warm standby) the cheaper replica-hour first,
    # which is also the final tie-break, so pruning ties cannot drop a winner.
    bounded.sort(key=lambda item: (item[0], item[1]))
    costs: list[float] = []
    families: list[_Family] = []
    for lower_bound, _, ceiling, cand in bounded:
        labels: dict[str, Any] = {
            "engine": cand.dep.engine, "quant": cand.dep.quant.slug, "gpu": cand.dep.gpu.slug, "tp": cand.dep.tp,
        }  # fmt: skip
        if len(costs) >= keep and lower_bound >= costs[keep - 1]:
            _reject(
                rejected,
                "not_competitive",
                f"not competitive: even at its throughput ceiling ({ceiling:.2f} req/s per replica) it costs at "
                f"least ${lower_bound:,.0f}/month, above {keep} cheaper candidates",
                **labels,
            )
            continue
        capacity = max_rate_analytic(cand.perf, prompt, output, slo, ceiling_rate_per_s=ceiling)
        if capacity.max_rate_per_s <= 0:
            _reject(rejected, "slo_unreachable", _unreachable_reason(capacity, slo), **labels)
            continue
        family = _Family(cand.dep, cand.eff, cand.perf, cand.offers, capacity)
        bisect.insort(costs, _cost_family(family, workload)[0].monthly_usd)
        families.append(family)
    return families


def _bound(rate_per_s: float, perf: PerfModel) -> RateSearch:
    return RateSearch(rate_per_s, 0.0, 0.0, 0, "bound", "", 0.0, 0.0, Provenance.of(perf.efficiency))


def _rank_key(costed: _Costed) -> tuple[float, float, float]:
    """Cheapest month first; ties (every fleet at its warm standby) go to the cheaper replica-hour, then the
    faster replica."""
    per_instance = costed.offer.offer.gpu_count // costed.family.dep.tp
    return (
        costed.monthly_usd,
        costed.offer.usd_per_hour / per_instance,
        -costed.family.capacity.max_rate_per_s,
    )


def _unreachable_reason(search: RateSearch, slo: LatencySlo) -> str:
    return (
        f"SLO unreachable: even with one request at a time p95 TTFT is {search.idle_ttft_p95_ms:.0f} ms "
        f"(target {slo.ttft_p95_ms:g}) and p95 ITL {search.idle_itl_p95_ms:.1f} ms (target {slo.itl_p95_ms:g})"
    )


def _margin(ttft_ms: float, itl_ms: float, slo: LatencySlo) -> float:
    return min(1.0 - ttft_ms / slo.ttft_p95_ms, 1.0 - itl_ms / slo.itl_p95_ms)


def _option(
    rank: int,
    best: _Costed,
    alternatives: list[_Costed],
    workload: WorkloadSpec,
    volume: TokenVolume,
    requests: RequestSet,
    peak_rate: float,
    previous: list[dict[str, Any]],
) -> dict[str, Any]:
    fam = best.family
    dep, offer = fam.dep, best.offer.offer
    peak_replicas = max(best.replicas_by_hour)
    per_replica_rate = peak_rate / peak_replicas if peak_replicas else 0.0
    if per_replica_rate > 0:
        window = requests_for_rate(requests, per_replica_rate, simulation_horizon_s(workload.slo, 0.0))
        at_peak = simulate(fam.perf, window, LoadSpec("poisson", rate_per_s=per_replica_rate))
        ttft95, itl95 = at_peak.ttft_ms["p95"], at_peak.itl_ms["p95"]
    else:
        ttft95, itl95 = fam.capacity.idle_ttft_p95_ms, fam.capacity.idle_itl_p95_ms
    margin = _margin(ttft95, itl95, workload.slo)
    per_instance = offer.gpu_count // dep.tp
    cost_per_mtok = best.monthly_usd / (volume.total / 1e6) if volume.total else None
    band = fam.eff.error_band_rel
    basis = fam.eff.basis
    lead = (
        "Cheapest option that holds the SLO"
        if rank == 1
        else (
            f"{(best.monthly_usd / previous[0]['monthly_cost_usd'] - 1) * 100:.0f}% above rank 1"
            if previous and previous[0]["monthly_cost_usd"]
            else f"Rank {rank}"
        )
    )
    limit = {"ttft": "TTFT", "itl": "ITL"}.get(fam.capacity.limit, "latency")
    why = (
        f"{lead}: {dep.tp}x {dep.gpu.name} with {dep.engine} at {dep.quant.slug} holds "
        f"{fam.capacity.max_rate_per_s:.2f} req/s per replica before p95 {limit} breaks the target, so "
        f"{peak_replicas} replica(s) cover the peak on {offer.provider} {offer.instance_type} "
        f"(${best.offer.usd_per_hour:.2f}/h, {per_instance} replica(s) per instance); predicted ±{band * 100:.0f}% "
        f"({basis})."
    )
    return {
        "rank": rank,
        "model": dep.model.slug,
        "engine": dep.engine,
        "quant": dep.quant.slug,
        "gpu": dep.gpu.slug,
        "gpus_per_replica": dep.tp,
        "tp": dep.tp,
        "provider": offer.provider,
        "instance_type": offer.instance_type,
        "region": offer.region,
        "pricing": best.offer.pricing,
        "instance_usd_per_hour": round(best.offer.usd_per_hour, 4),
        "gpus_per_instance": offer.gpu_count,
        "replicas_per_instance": per_instance,
        "replicas_by_hour": list(best.replicas_by_hour),
        "monthly_cost_usd": round(best.monthly_usd, 2),
        "fixed_fleet_monthly_usd": round(best.fixed_monthly_usd, 2),
        "scheduled_fleet_monthly_usd": round(best.scheduled_monthly_usd, 2),
        "fleet": "scheduled" if workload.scheduled_scaling else "fixed",
        "prescale_one_hour_early": best.prescale,
        "ops_monthly_usd": round(workload.ops_hours_per_month * workload.ops_hourly_usd, 2),
        "cost_per_million_tokens_usd": round(cost_per_mtok, 4) if cost_per_mtok is not None else None,
        "max_requests_per_s_per_replica": round(fam.capacity.max_rate_per_s, 4),
        "predicted": {
            "ttft_p95_ms": _finite(ttft95),
            "itl_p95_ms": _finite(itl95),
            "at_requests_per_s_per_replica": round(per_replica_rate, 4),
            "ttft_p95_ms_at_capacity": _finite(fam.capacity.ttft_p95_ms),
            "itl_p95_ms_at_capacity": _finite(fam.capacity.itl_p95_ms),
        },
        "latency_margin": round(margin, 4),
        "source": "predicted",
        "error_band_rel": round(band, 3),
        "calibration_key": fam.eff.calibration_key,
        "calibration_basis": basis,
        "capacity_method": fam.capacity.method,
        "memory": fam.perf.memory.to_dict(),
        "weights_gb": round(dep.model.params_total_b * dep.quant.weight_bytes_per_param, 2),
        "max_concurrent_sequences": fam.perf.max_num_seqs,
        "serve": {
            "max_num_seqs": fam.perf.max_num_seqs,
            "max_num_batched_tokens": fam.perf.token_budget,
            "max_model_len": fam.perf.memory.context_tokens,
            "gpu_memory_fraction": fam.dep.memory_fraction or fam.dep.profile.memory_fraction,
        },
        "cold_start_s": round(
            workload.cold_start_s if workload.cold_start_s is not None else load_time_s(dep), 1
        ),
        "other_offers": [
            {
                "provider": a.offer.offer.provider,
                "instance_type": a.offer.offer.instance_type,
                "monthly_cost_usd": round(a.monthly_usd, 2),
            }
            for a in alternatives
        ],
        "why": why,
    }


def _mark_pareto(options: list[dict[str, Any]]) -> None:
    """Pareto frontier of monthly cost (lower is better) against latency margin at peak (higher is better)."""
    for option in options:
        cost, margin = option["monthly_cost_usd"], option["latency_margin"]
        option["pareto_optimal"] = not any(
            other is not option
            and other["monthly_cost_usd"] <= cost
            and other["latency_margin"] >= margin
            and (other["monthly_cost_usd"] < cost or other["latency_margin"] > margin)
            for other in options
        )


def _api_alternatives(
    catalog: CatalogSnapshot, model: ModelSpec, volume: TokenVolume
) -> list[dict[str, Any]]:
    rows = []
    for api in catalog.api_prices:
        same_family, same_size = api_matches(api, model)
        rows.append(
            {
                "provider": api.provider,
                "model": api.model,
                "monthly_cost_usd": round(api_monthly_cost_usd(api, volume), 2),
                "input_usd_per_mtok": api.input_usd_per_mtok,
                "output_usd_per_mtok": api.output_usd_per_mtok,
                "blended_usd_per_mtok": round(blended_usd_per_million_tokens(api, volume), 4),
                "same_model_family": same_family,
                "same_model_size": same_size,
                "snapshot_date": api.snapshot_date,
                "source": "catalog price",
            }
        )
    rows.sort(key=lambda r: (not r["same_model_size"], not r["same_model_family"], r["monthly_cost_usd"]))
    return rows


def _break_even(
    options: list[dict[str, Any]], api_rows: list[dict[str, Any]], volume: TokenVolume, workload: WorkloadSpec
) -> dict[str, Any]:
    """Monthly token volume at which the reference API costs what the best self-hosted fleet costs.

    Self-hosted cost is taken as planned (it would shrink toward the warm-standby floor at lower volume, so the
    floor's break-even is given too); the API cost scales linearly at this workload's input/output mix.
    """
    tokens = {
        "input_million_per_month": round(volume.input_tokens_per_month / 1e6, 3),
        "output_million_per_month": round(volume.output_tokens_per_month / 1e6, 3),
        "total_million_per_month": round(volume.total / 1e6, 3),
    }
    if not options or not api_rows:
        return {
            "monthly_tokens": tokens,
            "reference_api": None,
            "note": "no self-hosted option or no API price",
        }
    best = options[0]
    candidates = [r for r in api_rows if r["same_model_size"]] or [
        r for r in api_rows if r["same_model_family"]
    ]
    reference = min(candidates or api_rows, key=lambda r: r["monthly_cost_usd"])
    blended = reference["blended_usd_per_mtok"]
    floor_replicas = workload.constraints.min_replicas
    floor_instances = math.ceil(floor_replicas / best["replicas_per_instance"])
    floor_usd = floor_instances * best["instance_usd_per_hour"] * HOURS_PER_DAY * DAYS_PER_MONTH
    floor_usd += workload.ops_hours_per_month * workload.ops_hourly_usd
    self_usd = best["monthly_cost_usd"]
    return {
        "monthly_tokens": tokens,
        "self_hosted_option_rank": best["rank"],
        "self_hosted_monthly_cost_usd": self_usd,
        "self_hosted_floor_monthly_cost_usd": round(floor_usd, 2),
        "reference_api": {
            "provider": reference["provider"],
            "model": reference["model"],
            "blended_usd_per_mtok": blended,
            "monthly_cost_usd": reference["monthly_cost_usd"],
            "why": "cheapest API of the same model and size"
            if reference["same_model_size"]
            else "cheapest API of the same model family"
            if reference["same_model_family"]
            else "cheapest API in the catalog (no same-family price)",
        },
        "break_even_million_tokens_per_month": round(self_usd / blended, 3) if blended else None,
        "floor_break_even_million_tokens_per_month": round(floor_usd / blended, 3) if blended else None,
        "cheaper_at_this_volume": "self-hosted" if self_usd < reference["monthly_cost_usd"] else "api",
        "note": "above break_even_million_tokens_per_month the API costs more than the planned fleet; below "
        "floor_break_even_million_tokens_per_month the API is cheaper than even the warm standby",
    }


def _summarise(rejected: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in rejected:
        counts[entry["reason_code"]] = counts.get(entry["reason_code"], 0) + 1
    return counts


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    """JSON-ready copy: tuples become lists, non-finite floats None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
