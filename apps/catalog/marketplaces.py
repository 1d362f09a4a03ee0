"""Providers in the price snapshot that are marketplaces or aggregators (apps/catalog/data/marketplaces.csv, each
row with the page that says so): their listings resell someone else's capacity, which may be gone when a team
tries to rent it, so a plan that picks one says so beside the price. Pure; no Django."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MARKETPLACES_CSV = Path(__file__).resolve().parent / "data" / "marketplaces.csv"


@dataclass(frozen=True)
class Marketplace:
    provider: str
    kind: str  # "marketplace" or "aggregator"
    what_it_means: str
    source_url: str
    read_on: str


@cache
def marketplaces() -> dict[str, Marketplace]:
    with MARKETPLACES_CSV.open(newline="") as handle:
        return {row["provider"]: Marketplace(**row) for row in csv.DictReader(handle)}


def marketplace_of(provider: str) -> Marketplace | None:
    return marketplaces().get(provider.lower())
