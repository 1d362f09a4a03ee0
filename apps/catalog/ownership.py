"""What owning or committing to hardware costs, from the shipped data files (each row with its source and date):
GPU server purchase prices (onprem_servers.csv), data-centre cost defaults (onprem_costs.csv: PUE, electricity,
colocation, amortisation) and reserved or committed-use cloud prices (reserved_prices.csv). Pure; no Django.

These are a dated snapshot, like the offers: a plan says which rows it used, and a workload may override the
defaults (its `costing` block).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from apps.catalog.specs import DATA_DIR, first_number


@dataclass(frozen=True)
class ServerPrice:
    system: str
    gpu_slug: str
    gpu_count: int
    price_usd: float
    price_kind: str  # list, quote, reported street
    server_power_w: float | None  # maximum input power of the whole system, where the vendor states it
    non_gpu_power_w: float | None  # server power besides the GPUs (maximum less GPU TDPs)
    date: str
    source: str


@dataclass(frozen=True)
class ReservedPrice:
    provider: str
    instance_type: str
    gpu_slug: str
    gpu_count: int
    term: str  # 1y, 3y
    payment: str
    usd_per_hour: float  # effective, upfront amortised
    date: str
    source: str


@dataclass(frozen=True)
class CostDefault:
    parameter: str
    value: float
    scope: str
    date: str
    source: str


def _rows(name: str) -> list[dict[str, str]]:
    path: Path = DATA_DIR / name
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@lru_cache(maxsize=1)
def server_prices() -> tuple[ServerPrice, ...]:
    """Whole servers with a price; baseboard-only listings and power-only rows are left out (they price only
    part of a server)."""
    out = []
    for row in _rows("onprem_servers.csv"):
        price = first_number(row["price_usd"])
        if price is None or not row["scope"].startswith("full server"):
            continue
        out.append(
            ServerPrice(
                system=row["system"],
                gpu_slug=row["gpu_slug"],
                gpu_count=int(first_number(row["gpu_count"]) or 0),
                price_usd=price,
                price_kind=row["price_kind"],
                server_power_w=first_number(row["server_power_w"]),
                non_gpu_power_w=first_number(row["non_gpu_power_w"]),
                date=row["date"],
                source=row["source_url"],
            )
        )
    return tuple(out)


def server_for(gpu_slug: str) -> ServerPrice | None:
    """The priced full server of this GPU to plan with: a published list price or quote before a reported
    street price, then the most recent (dates are ISO, so they sort as text)."""
    candidates = [s for s in server_prices() if s.gpu_slug == gpu_slug and s.gpu_count > 0]
    return max(candidates, key=lambda s: (s.price_kind in ("list", "quote"), s.date)) if candidates else None


@lru_cache(maxsize=1)
def reserved_prices() -> tuple[ReservedPrice, ...]:
    out = []
    for row in _rows("reserved_prices.csv"):
        price = first_number(row["usd_per_hour"])
        count = int(first_number(row["gpu_count"]) or 0)
        if price is None or count < 1:
            continue
        out.append(
            ReservedPrice(
                provider=row["provider"],
                instance_type=row["instance_type"],
                gpu_slug=row["gpu_slug"],
                gpu_count=count,
                term=row["term"],
                payment=row["payment"],
                usd_per_hour=price,
                date=row["date"],
                source=row["source_url"],
            )
        )
    return tuple(out)


# The defaults a plan uses unless the workload overrides them: which row of onprem_costs.csv each comes from.
_DEFAULT_ROWS = {
    "pue": ("industry_average_pue", "global, Uptime Institute Global Data Center Survey 2024"),
    "usd_per_kwh": ("avg_retail_price_industrial", None),
    "colocation_usd_per_kw_month": ("colo_asking_rate_250_500kw", None),
    "amortisation_years": ("model_server_lifetime", None),
}


@lru_cache(maxsize=1)
def cost_defaults() -> dict[str, CostDefault]:
    """PUE (Uptime's 2024 global average), electricity (the latest US industrial average in the file),
    colocation (CBRE's latest North America 250-500 kW asking rate) and amortisation years (five: Amazon's
    and Meta's server lives and Epoch AI's cost model), each with its row's source."""
    rows = _rows("onprem_costs.csv")
    out: dict[str, CostDefault] = {}
    for name, (parameter, scope) in _DEFAULT_ROWS.items():
        matches = [
            r
            for r in rows
            if r["parameter"] == parameter
            and first_number(r["value"]) is not None
            and (scope is None or r["scope"] == scope)
            and "LOW RELIABILITY" not in r["notes"]
        ]
        if not matches:
            continue
        row = max(matches, key=lambda r: r["date"])
        out[name] = CostDefault(
            name, float(first_number(row["value"]) or 0.0), row["scope"], row["date"], row["source_url"]
        )
    return out
