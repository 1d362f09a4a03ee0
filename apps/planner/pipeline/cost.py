"""Stage 4, cost: replicas hour by hour for a capacity per replica, the monthly bill on every offer that can
host the replica (whole instances, ops hours, cold starts), and what a hosted API would charge for the same
tokens. Pure arithmetic on the previous stages' output; no Django.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apps.catalog.specs import ApiPriceSpec, CatalogSnapshot, ModelSpec
from apps.planner.perf.deployment import Deployment
from apps.planner.pipeline.candidates import Candidate, PricedOffer
from apps.planner.pipeline.capacity import Sized
from apps.planner.pipeline.workload import DAYS_PER_MONTH, HOURS_PER_DAY, TokenVolume, WorkloadSpec

# Cold start = weights pulled onto the node (network volume or object store, per replica) plus engine start
# (container, CUDA context, graph capture). Above the threshold a scheduled fleet starts replicas an hour early.
LOAD_BANDWIDTH_BYTES_PER_S = 1.0e9
ENGINE_START_S = 60.0
COLD_START_PRESCALE_S = 120.0


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


def fleet_instance_hours_per_day(
    replicas_by_hour: Sequence[int], replicas_per_instance: int, instances_per_replica: int = 1
) -> int:
    """Instances are whole: hour by hour, replicas round up to instances of `replicas_per_instance`; a replica
    spanning nodes takes `instances_per_replica` instances (and replicas_per_instance is then 1)."""
    if replicas_per_instance == 1:
        return sum(replicas_by_hour) * instances_per_replica
    return sum(-(-r // replicas_per_instance) for r in replicas_by_hour) * instances_per_replica


@dataclass(frozen=True)
class Fleet:
    """One way to run the family: an offer, the replicas each hour, and what a month costs."""

    offer: PricedOffer
    replicas_by_hour: tuple[int, ...]
    fixed_replicas: int  # a fleet sized for the peak hour, all day
    monthly_usd: float  # the fleet the workload asks for (scheduled or fixed), ops included
    fixed_monthly_usd: float
    scheduled_monthly_usd: float
    prescale: bool  # replicas start an hour early because a cold start is slow
    replicas_per_instance: int
    instances_per_replica: int = 1  # more than 1: the replica spans nodes
    replicas_by_hour_weekend: tuple[int, ...] | None = None  # when weekends follow their own curve


def cold_start_s(dep: Deployment, workload: WorkloadSpec) -> float:
    return workload.cold_start_s if workload.cold_start_s is not None else load_time_s(dep)


@dataclass(frozen=True)
class _Schedule:
    """The replicas a capacity per replica needs, hour by hour, for each day curve."""

    by_curve: dict[str, list[int]]
    fixed: int
    prescale: bool


def _schedule(dep: Deployment, rate_per_replica: float, workload: WorkloadSpec) -> _Schedule:
    c = workload.constraints
    prescale = workload.scheduled_scaling and cold_start_s(dep, workload) > COLD_START_PRESCALE_S
    curves = workload.day_curves
    by_curve = {
        name: hourly_replicas(rates, rate_per_replica, workload.headroom, c.min_replicas, prescale=prescale)
        for name, rates, _ in curves
    }
    # The peak hour is the same with or without the hour-early start (which only repeats each hour's need).
    fixed = max(max(need) for need in by_curve.values())
    return _Schedule(by_curve, fixed, prescale)


def _packing_hours(
    packing: tuple[int, int], schedule: _Schedule, workload: WorkloadSpec
) -> tuple[float, int]:
    """(scheduled, fixed-fleet) instance-hours per day of the fleet on offers of one packing."""
    per_instance, spans = packing
    scheduled = sum(
        share * fleet_instance_hours_per_day(schedule.by_curve[name], per_instance, spans)
        for name, _, share in workload.day_curves
    )
    return scheduled, fleet_instance_hours_per_day([schedule.fixed] * HOURS_PER_DAY, per_instance, spans)


def _monthly_usd(instance_hours_per_day: float, usd_per_instance_hour: float, ops_usd: float) -> float:
    return instance_hours_per_day * usd_per_instance_hour * DAYS_PER_MONTH + ops_usd


def _offer_costs(
    candidate: Candidate, schedule: _Schedule, workload: WorkloadSpec
) -> list[tuple[float, float, float, int, int, PricedOffer]]:
    """(monthly, fixed-fleet monthly, scheduled monthly, replicas per instance, instances per replica, offer)."""
    ops = workload.ops_hours_per_month * workload.ops_hourly_usd
    out = []
    for packing, offers in candidate.offers_by_packing.items():
        scheduled_hours, fixed_hours = _packing_hours(packing, schedule, workload)
        for priced in offers:
            scheduled_usd = _monthly_usd(scheduled_hours, priced.usd_per_hour, ops)
            fixed_usd = _monthly_usd(fixed_hours, priced.usd_per_hour, ops)
            monthly = scheduled_usd if workload.scheduled_scaling else fixed_usd
            out.append((monthly, fixed_usd, scheduled_usd, *packing, priced))
    return out


def fleets(
    candidate: Candidate, rate_per_replica: float, workload: WorkloadSpec, *, limit: int | None = None
) -> list[Fleet]:
    """The candidate's offers' fleets for this capacity per replica, cheapest first (the first `limit`).

    With weekday and weekend curves the fleet follows each on its days; `replicas_by_hour` is then the weekday
    schedule and `replicas_by_hour_weekend` the other.
    """
    schedule = _schedule(candidate.dep, rate_per_replica, workload)
    costs = _offer_costs(candidate, schedule, workload)
    costs.sort(
        key=lambda c: (c[0], c[5].listing_gap_usd_per_gpu_hour, c[5].offer.provider, c[5].offer.instance_type)
    )
    first = schedule.by_curve[workload.day_curves[0][0]]
    weekend = schedule.by_curve.get("weekend")
    scheduled = workload.scheduled_scaling
    return [
        Fleet(
            offer=priced,
            replicas_by_hour=tuple(first if scheduled else [schedule.fixed] * HOURS_PER_DAY),
            fixed_replicas=schedule.fixed,
            monthly_usd=monthly,
            fixed_monthly_usd=fixed_usd,
            scheduled_monthly_usd=scheduled_usd,
            prescale=schedule.prescale,
            replicas_per_instance=per_instance,
            instances_per_replica=spans,
            replicas_by_hour_weekend=tuple(weekend) if weekend and scheduled else None,
        )
        for monthly, fixed_usd, scheduled_usd, per_instance, spans, priced in costs[:limit]
    ]


def cheapest_monthly_usd(candidate: Candidate, rate_per_replica: float, workload: WorkloadSpec) -> float:
    """The month's bill on the candidate's cheapest offer: per packing, its lowest-priced offer."""
    schedule = _schedule(candidate.dep, rate_per_replica, workload)
    ops = workload.ops_hours_per_month * workload.ops_hourly_usd
    cheapest = math.inf
    for packing, offers in candidate.offers_by_packing.items():
        scheduled_hours, fixed_hours = _packing_hours(packing, schedule, workload)
        hours = scheduled_hours if workload.scheduled_scaling else fixed_hours
        cheapest = min(cheapest, _monthly_usd(hours, min(o.usd_per_hour for o in offers), ops))
    return cheapest


def api_monthly_cost_usd(api: ApiPriceSpec, volume: TokenVolume) -> float:
    return (
        volume.input_tokens_per_month / 1e6 * api.input_usd_per_mtok
        + volume.output_tokens_per_month / 1e6 * api.output_usd_per_mtok
    )


def blended_usd_per_million_tokens(api: ApiPriceSpec, volume: TokenVolume) -> float:
    """The API's price per million tokens at this workload's input/output mix."""
    if volume.total < 1.0:  # under one token a month: no per-token figure
        return (api.input_usd_per_mtok + api.output_usd_per_mtok) / 2.0
    return api_monthly_cost_usd(api, volume) / (volume.total / 1e6)


_SIZE = re.compile(r"(\d+(?:\.\d+)?(?:x\d+)?)b\b")


def model_family(model: ModelSpec) -> tuple[str, str]:
    """('llama', '70b') from a catalog slug like llama-3.1-70b."""
    family = re.split(r"[-\d.]", model.slug, maxsplit=1)[0]
    size = _SIZE.search(model.slug.lower())
    return family, (size.group(1) + "b") if size else ""


def api_matches(api: ApiPriceSpec, model: ModelSpec) -> tuple[bool, bool]:
    """(same model family, same model): exact when the price row names the catalog model it serves; judged
    from the API's model name otherwise (family and parameter count)."""
    family, size = model_family(model)
    name = api.model.lower().replace("-", " ")
    same_family = bool(family) and family in name
    if api.model_slug:
        return same_family or api.model_slug == model.slug, api.model_slug == model.slug
    same_size = same_family and bool(size) and re.search(rf"(?<![\d.]){re.escape(size)}\b", name) is not None
    return same_family, same_size


def api_alternatives(catalog: CatalogSnapshot, model: ModelSpec, volume: TokenVolume) -> list[dict[str, Any]]:
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


def break_even(
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
    floor_instances = math.ceil(floor_replicas / best["replicas_per_instance"]) * best.get(
        "instances_per_replica", 1
    )
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


@dataclass(frozen=True)
class Costed:
    """A sized family's fleets at its planned capacity, and the cost range its error band allows."""

    sized: Sized
    fleets: tuple[Fleet, ...]  # cheapest first, at the planned (conservative) capacity
    point_monthly_usd: float  # cheapest fleet at the capacity as predicted, with no error allowance
    pessimistic_monthly_usd: float  # ... if the prediction is high by its group's p90 error

    @property
    def best(self) -> Fleet:
        return self.fleets[0]

    @property
    def monthly_usd(self) -> float:
        return self.best.monthly_usd

    @property
    def replica_hour_usd(self) -> float:
        best = self.best
        return best.offer.usd_per_hour * best.instances_per_replica / best.replicas_per_instance


def cost_family(sized: Sized, workload: WorkloadSpec) -> Costed:
    candidate = sized.screened.candidate
    return Costed(
        sized=sized,
        fleets=tuple(fleets(candidate, sized.planned_rate_per_s, workload, limit=4)),
        point_monthly_usd=cheapest_monthly_usd(candidate, sized.capacity.max_rate_per_s, workload),
        pessimistic_monthly_usd=cheapest_monthly_usd(candidate, sized.pessimistic_rate_per_s, workload),
    )
