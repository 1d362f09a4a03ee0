"""The workload a plan is for, as the planner reads it: the JSON of DESIGN.md parsed into typed values, and
the token volume it implies. Pure; no Django.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from apps.planner.perf.batching import LengthStats
from workers.engines import ENGINE_NAMES

HOURS_PER_DAY = 24
DAYS_PER_MONTH = 365.0 / 12.0  # 30.42: a month of 730 hours


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
