"""Ways of paying for a costed fleet: renting on demand (the plan's own figure), spot, reserved or committed
cloud capacity, buying the servers, or buying the tokens from a hosted API; with the month in which buying
breaks even against renting and against the API, and tokens per kWh. Pure arithmetic; no Django.

Buying: enough servers for the peak hour's GPUs, paid off over the amortisation years; power is each server's
non-GPU draw plus the GPUs' TDP for the GPU-hours the schedule actually serves, times the PUE, at the
electricity price; colocation is charged on each server's maximum power (the capacity a site reserves); ops hours
as for the rented fleet. Defaults come from apps/catalog/data/onprem_costs.csv with their sources; a workload's
`costing` block overrides them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from apps.catalog.ownership import ReservedPrice, cost_defaults, reserved_prices, server_for
from apps.planner.pipeline.cost import Costed
from apps.planner.pipeline.workload import DAYS_PER_MONTH, HOURS_PER_DAY, TokenVolume, WorkloadSpec

HOURS_PER_MONTH = HOURS_PER_DAY * DAYS_PER_MONTH


@dataclass(frozen=True)
class Costing:
    amortisation_years: float
    pue: float
    usd_per_kwh: float
    colocation_usd_per_kw_month: float
    sources: dict[str, str]


def costing_for(workload: WorkloadSpec) -> Costing:
    defaults = cost_defaults()
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    for name in ("amortisation_years", "pue", "usd_per_kwh", "colocation_usd_per_kw_month"):
        if name in workload.costing:
            values[name] = workload.costing[name]
            sources[name] = "the workload's costing"
        else:
            default = defaults[name]
            values[name] = default.value
            sources[name] = f"{default.scope} ({default.date}): {default.source}"
    return Costing(sources=sources, **values)


def _per_million(monthly_usd: float, volume: TokenVolume) -> float | None:
    return round(monthly_usd / (volume.total / 1e6), 4) if volume.total >= 1.0 else None


def _way(name: str, monthly_usd: float, volume: TokenVolume, **extra: Any) -> dict[str, Any]:
    return {
        "way": name,
        "monthly_cost_usd": round(monthly_usd, 2),
        "cost_per_million_tokens_usd": _per_million(monthly_usd, volume),
        **extra,
    }


def _reserved(costed: Costed) -> list[ReservedPrice]:
    dep = costed.sized.screened.dep
    return [
        r
        for r in reserved_prices()
        if r.gpu_slug == dep.gpu.slug and (r.gpu_count >= dep.gpus or dep.gpus % r.gpu_count == 0)
    ]


def ways_to_pay(
    costed: Costed, workload: WorkloadSpec, volume: TokenVolume, api_monthly_usd: float | None
) -> dict[str, Any]:
    dep = costed.sized.screened.dep
    best = costed.best
    ops = workload.ops_hours_per_month * workload.ops_hourly_usd
    peak = max(best.replicas_by_hour)
    mean_replicas = sum(best.replicas_by_hour) / len(best.replicas_by_hour)
    ways = [_way("rent on demand", best.monthly_usd, volume, provider=best.offer.offer.provider,
                 instance_type=best.offer.offer.instance_type, pricing=best.offer.pricing)]  # fmt: skip
    spot = best.offer.offer.spot_usd_per_hour
    if spot and best.offer.pricing != "spot":
        spot_usd = best.monthly_usd - ops
        spot_usd = spot_usd * spot / best.offer.usd_per_hour + ops
        ways.append(
            _way("rent spot", spot_usd, volume, note="can be reclaimed by the provider at short notice")
        )
    for term in ("1y", "3y"):
        options = [r for r in _reserved(costed) if r.term == term]
        if not options:
            continue
        # Reserved capacity is paid whether used or not: the peak fleet, all month, on whole instances.
        gpus = peak * dep.gpus
        cheapest = min(options, key=lambda r: math.ceil(gpus / r.gpu_count) * r.usd_per_hour)
        instances = math.ceil(gpus / cheapest.gpu_count)
        monthly = instances * cheapest.usd_per_hour * HOURS_PER_MONTH + ops
        ways.append(
            _way(
                f"reserve {term}",
                monthly,
                volume,
                provider=cheapest.provider,
                instance_type=cheapest.instance_type,
                payment=cheapest.payment,
                instances=instances,
                source=f"{cheapest.source} ({cheapest.date})",
            )
        )
    buy = _buy(costed, workload, volume, peak, mean_replicas, ops, api_monthly_usd, best.monthly_usd)
    if buy:
        ways.append(buy)
    if api_monthly_usd is not None:
        ways.append(_way("hosted API", api_monthly_usd, volume))
    return {"ways": ways, "costing": costing_for(workload).sources if buy else {}}


def _buy(
    costed: Costed,
    workload: WorkloadSpec,
    volume: TokenVolume,
    peak_replicas: int,
    mean_replicas: float,
    ops: float,
    api_monthly_usd: float | None,
    rent_monthly_usd: float,
) -> dict[str, Any] | None:
    dep = costed.sized.screened.dep
    server = server_for(dep.gpu.slug)
    tdp = dep.gpu.tdp_w
    if server is None or tdp is None or server.server_power_w is None:
        return None
    costing = costing_for(workload)
    servers = math.ceil(peak_replicas * dep.gpus / server.gpu_count)
    capex = servers * server.price_usd
    amortisation = capex / (costing.amortisation_years * 12.0)
    non_gpu_w = (
        server.non_gpu_power_w
        if server.non_gpu_power_w is not None
        else server.server_power_w - server.gpu_count * tdp
    )
    it_kw = (servers * max(non_gpu_w, 0.0) + mean_replicas * dep.gpus * tdp) / 1e3
    kwh = it_kw * costing.pue * HOURS_PER_MONTH
    energy = kwh * costing.usd_per_kwh
    colocation = servers * server.server_power_w / 1e3 * costing.colocation_usd_per_kw_month
    running = energy + colocation + ops
    monthly = amortisation + running

    def break_even(other_monthly: float | None) -> float | None:
        if other_monthly is None or other_monthly <= running:
            return None  # never: owning costs more to run than the alternative costs in all
        return round(capex / (other_monthly - running), 1)

    return _way(
        "buy",
        monthly,
        volume,
        servers=servers,
        server=server.system,
        server_price_usd=server.price_usd,
        server_price_kind=server.price_kind,
        server_price_date=server.date,
        server_price_source=server.source,
        capex_usd=round(capex, 2),
        amortisation_monthly_usd=round(amortisation, 2),
        energy_monthly_usd=round(energy, 2),
        colocation_monthly_usd=round(colocation, 2),
        ops_monthly_usd=round(ops, 2),
        energy_kwh_per_month=round(kwh, 1),
        tokens_per_kwh=round(volume.total / kwh, 1) if kwh > 0 else None,
        break_even_months_vs_renting=break_even(rent_monthly_usd),
        break_even_months_vs_api=break_even(api_monthly_usd),
        assumptions={
            "amortisation_years": costing.amortisation_years,
            "pue": costing.pue,
            "usd_per_kwh": costing.usd_per_kwh,
            "colocation_usd_per_kw_month": costing.colocation_usd_per_kw_month,
            "gpu_power": f"{tdp:g} W TDP per GPU for the GPU-hours served ({mean_replicas * dep.gpus:.2f} GPUs on "
            f"average), plus {non_gpu_w:g} W per server for the rest of the system",
        },
    )
