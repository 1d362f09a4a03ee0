"""The workload a plan is for, as the planner reads it: the JSON of DESIGN.md parsed into typed values, and
the token volume it implies. Pure; no Django.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from apps.planner.perf.batching import NO_PREFIX, LengthStats, PrefixCache
from workers.engines import ENGINE_NAMES

HOURS_PER_DAY = 24
# Below this a rate is noise, not traffic: its monthly tokens round to nothing and every per-token figure and
# simulated arrival overflows. The workload validator (apps/workloads/serializers.py) refuses it too.
MIN_NONZERO_RATE_PER_S = 1e-4
DAYS_PER_MONTH = 365.0 / 12.0  # 30.42: a month of 730 hours

# How an instance-hour is priced: the single cheapest listing of each instance (the planner's first behaviour,
# and the default), the median of the market's listings of that GPU per GPU-hour (a price one can expect to
# find, not the one lucky listing), or the cheapest listing of the providers named in constraints.providers.
OFFER_PRICING = ("cheapest_listing", "median_market", "named_providers")


@dataclass(frozen=True)
class LatencySlo:
    ttft_p95_ms: float
    itl_p95_ms: float


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
    # From a request log: arrival burstiness per hour (coefficient of variation of the gaps; 1 is Poisson), and
    # the curves of weekdays (Mon-Fri UTC) and weekends when they differ.
    burstiness_cv: tuple[float, ...] = (1.0,) * HOURS_PER_DAY
    weekday_hourly_requests_per_s: tuple[float, ...] | None = None
    weekend_hourly_requests_per_s: tuple[float, ...] | None = None
    prefix: PrefixCache = NO_PREFIX
    # Overrides of the ownership cost defaults (amortisation_years, pue, usd_per_kwh,
    # colocation_usd_per_kw_month); see apps/planner/pipeline/payment.py.
    costing: Mapping[str, float] = field(default_factory=dict)
    offer_pricing: str = "cheapest_listing"  # one of OFFER_PRICING

    @property
    def planning_burstiness_cv(self) -> float:
        """The burstiest hour that has traffic: capacity is sized for it (per-replica arrivals keep the
        aggregate's burstiness, a conservative reading of how a load balancer splits a bursty stream)."""
        busy = [
            cv for cv, rate in zip(self.burstiness_cv, self.hourly_requests_per_s, strict=True) if rate > 0
        ]
        return max(busy or [1.0])

    @property
    def day_curves(self) -> tuple[tuple[str, tuple[float, ...], float], ...]:
        """(name, hourly rates, share of the week's days): one curve, or weekdays and weekends apart."""
        if self.weekday_hourly_requests_per_s and self.weekend_hourly_requests_per_s:
            return (
                ("weekday", self.weekday_hourly_requests_per_s, 5.0 / 7.0),
                ("weekend", self.weekend_hourly_requests_per_s, 2.0 / 7.0),
            )
        return (("every day", self.hourly_requests_per_s, 1.0),)


COSTING_KEYS = ("amortisation_years", "pue", "usd_per_kwh", "colocation_usd_per_kw_month")


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
    histogram = d.get("histogram") or {}
    if not isinstance(histogram, Mapping):
        raise WorkloadError(f"{where}.histogram must be an object with edges and counts")
    edges = _numbers(histogram.get("edges"), f"{where}.histogram.edges") if histogram else ()
    counts = _numbers(histogram.get("counts"), f"{where}.histogram.counts") if histogram else ()
    if histogram and (len(edges) != len(counts) + 1 or any(b <= a for a, b in itertools.pairwise(edges))):
        raise WorkloadError(f"{where}.histogram needs increasing edges, one more than counts")
    try:
        return LengthStats(
            mean=_number(d, "mean", where),
            p50=_number(d, "p50", where),
            p95=_number(d, "p95", where),
            max=int(_number(d, "max", where)),
            histogram_edges=tuple(edges),
            histogram_counts=tuple(int(c) for c in counts),
        )
    except WorkloadError:
        raise
    except ValueError as exc:
        raise WorkloadError(f"{where}: {exc}") from exc


def _numbers(value: Any, where: str, *, length: int | None = None) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or (length is not None and len(value) != length):
        raise WorkloadError(f"{where} must be a list of {length or 'some'} numbers")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float) or not 0 <= item < math.inf:
            raise WorkloadError(f"{where}[{i}] must be a non-negative number")
        out.append(float(item))
    return tuple(out)


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
        if 0 < value < MIN_NONZERO_RATE_PER_S:
            raise WorkloadError(
                f"traffic.hourly_requests_per_s[{i}] is {value!r}: an hour has no traffic (0) or at least "
                f"{MIN_NONZERO_RATE_PER_S:g} requests/s"
            )
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
    cv = traffic.get("burstiness_cv", 1.0)
    burstiness = (
        _numbers(cv, "traffic.burstiness_cv", length=HOURS_PER_DAY)
        if isinstance(cv, list | tuple)
        else _numbers([cv], "traffic.burstiness_cv") * HOURS_PER_DAY
    )
    weekday, weekend = (
        traffic.get("weekday_hourly_requests_per_s"),
        traffic.get("weekend_hourly_requests_per_s"),
    )
    if (weekday is None) != (weekend is None):
        raise WorkloadError(
            "traffic: give both weekday_hourly_requests_per_s and weekend_hourly_requests_per_s, or neither"
        )
    prefix_doc = d.get("prefix") or {}
    if not isinstance(prefix_doc, Mapping):
        raise WorkloadError(
            "prefix must be an object with shared_prefix_tokens and multi_turn_reuse_fraction"
        )
    shared = _optional(prefix_doc, "shared_prefix_tokens", 0, "prefix")
    reuse = _optional(prefix_doc, "multi_turn_reuse_fraction", 0.0, "prefix")
    if shared < 0 or not 0 <= reuse <= 1:
        raise WorkloadError(
            "prefix.shared_prefix_tokens must be >= 0 and multi_turn_reuse_fraction within 0..1"
        )
    costing_doc = d.get("costing") or {}
    if not isinstance(costing_doc, Mapping):
        raise WorkloadError("costing must be an object")
    costing = {}
    for key in COSTING_KEYS:
        if costing_doc.get(key) is not None:
            value = _number(costing_doc, key, "costing")
            if value <= 0:
                raise WorkloadError(f"costing.{key} must be positive")
            costing[key] = value
    offer_pricing = d.get("offer_pricing") or "cheapest_listing"
    if offer_pricing not in OFFER_PRICING:
        raise WorkloadError(f"offer_pricing must be one of {', '.join(OFFER_PRICING)}, got {offer_pricing!r}")
    if offer_pricing == "named_providers" and not constraints.providers:
        raise WorkloadError("offer_pricing named_providers needs constraints.providers to name at least one")
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
        burstiness_cv=burstiness,
        weekday_hourly_requests_per_s=None
        if weekday is None
        else _numbers(weekday, "traffic.weekday_hourly_requests_per_s", length=HOURS_PER_DAY),
        weekend_hourly_requests_per_s=None
        if weekend is None
        else _numbers(weekend, "traffic.weekend_hourly_requests_per_s", length=HOURS_PER_DAY),
        prefix=PrefixCache(int(shared), reuse),
        costing=costing,
        offer_pricing=str(offer_pricing),
    )


def document_with(document: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the workload document with each dotted path (`slo.ttft_p95_ms`) set to its new value."""
    out: dict[str, Any] = copy.deepcopy(dict(document))
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[leaf] = copy.deepcopy(value)
    return out


def _optional(d: Mapping[str, Any], key: str, default: float, where: str) -> float:
    return default if d.get(key) is None else _number(d, key, where)


def workload_spec_to_dict(workload: WorkloadSpec) -> dict[str, Any]:
    """The workload in DESIGN.md's JSON format, with the optional keys filled in (what the plan assumed)."""
    c = workload.constraints
    return {
        "name": workload.name,
        "model": workload.model,
        "traffic": _traffic_dict(workload),
        "prompt_tokens": _lengths_dict(workload.prompt_tokens),
        "output_tokens": _lengths_dict(workload.output_tokens),
        "prefix": asdict(workload.prefix),
        "costing": dict(workload.costing),
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
        "offer_pricing": workload.offer_pricing,
    }


def _traffic_dict(workload: WorkloadSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hourly_requests_per_s": list(workload.hourly_requests_per_s),
        "burstiness_cv": list(workload.burstiness_cv),
    }
    if workload.weekday_hourly_requests_per_s and workload.weekend_hourly_requests_per_s:
        out["weekday_hourly_requests_per_s"] = list(workload.weekday_hourly_requests_per_s)
        out["weekend_hourly_requests_per_s"] = list(workload.weekend_hourly_requests_per_s)
    return out


def _lengths_dict(stats: LengthStats) -> dict[str, Any]:
    out: dict[str, Any] = {"mean": stats.mean, "p50": stats.p50, "p95": stats.p95, "max": stats.max}
    if stats.has_histogram:
        out["histogram"] = {"edges": list(stats.histogram_edges), "counts": list(stats.histogram_counts)}
    return out


@dataclass(frozen=True)
class TokenVolume:
    input_tokens_per_month: float
    output_tokens_per_month: float

    @property
    def total(self) -> float:
        return self.input_tokens_per_month + self.output_tokens_per_month


def monthly_tokens(workload: WorkloadSpec) -> TokenVolume:
    requests_per_day = sum(
        share * sum(rate * 3600.0 for rate in rates) for _, rates, share in workload.day_curves
    )
    per_month = requests_per_day * DAYS_PER_MONTH
    return TokenVolume(per_month * workload.prompt_tokens.mean, per_month * workload.output_tokens.mean)
