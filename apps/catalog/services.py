from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from apps.catalog import specs
from apps.catalog.models import ApiPrice, CloudOffer, Engine, GpuType, ModelArchitecture, Quantization
from workers.engines import ENGINES


@dataclass(frozen=True)
class LoadCounts:
    gpus: int
    models: int
    engines: int
    quantizations: int
    offers: int
    api_prices: int


def _spec_fields(spec: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in exclude}


def _offer_defaults(offer: specs.OfferSpec, gpus: dict[str, GpuType]) -> dict[str, Any]:
    values = _spec_fields(offer, exclude=("provider", "instance_type", "region", "gpu_slug"))
    values["gpu"] = gpus.get(offer.gpu_slug or "")
    return values


@transaction.atomic
def catalog_load(*, data_dir: Path = specs.DATA_DIR) -> LoadCounts:
    """Upsert the shipped catalog. Idempotent: running it twice leaves the same rows."""
    for gpu in specs.load_gpus(data_dir):
        GpuType.objects.update_or_create(slug=gpu.slug, defaults=_spec_fields(gpu, exclude=("slug",)))
    for model in specs.load_models(data_dir):
        ModelArchitecture.objects.update_or_create(
            slug=model.slug, defaults=_spec_fields(model, exclude=("slug",))
        )
    for quant in specs.load_quantizations(data_dir):
        values = _spec_fields(quant, exclude=("slug",))
        values["engines"] = list(quant.engines)
        values["native_families"] = list(quant.native_families)
        Quantization.objects.update_or_create(slug=quant.slug, defaults=values)
    for definition in ENGINES.values():
        Engine.objects.update_or_create(
            slug=definition.name,
            defaults={
                "name": definition.display_name,
                "image": definition.image,
                "port": definition.port,
                "health_path": definition.health_path,
                "metrics_path": definition.metrics_path or "",
                "queue_metric": definition.queue_metric or "",
                "quantizations": list(definition.quantizations),
                "accelerators": list(definition.accelerators),
                "docs_url": definition.docs_url,
            },
        )
    _offers_upsert(specs.load_offers(data_dir))
    for price in specs.load_api_prices(data_dir):
        ApiPrice.objects.update_or_create(
            provider=price.provider,
            model=price.model,
            defaults=_spec_fields(price, exclude=("provider", "model")),
        )
    return LoadCounts(
        gpus=GpuType.objects.count(),
        models=ModelArchitecture.objects.count(),
        engines=Engine.objects.count(),
        quantizations=Quantization.objects.count(),
        offers=CloudOffer.objects.count(),
        api_prices=ApiPrice.objects.count(),
    )


def _offers_upsert(offers: list[specs.OfferSpec]) -> tuple[list[int], int]:
    """Insert new offers and update known ones in bulk; returns (ids of the given offers, created count)."""
    gpus = {gpu.slug: gpu for gpu in GpuType.objects.all()}
    existing = {(o.provider, o.instance_type, o.region): o for o in CloudOffer.objects.all()}
    to_create, to_update = [], []
    for offer in offers:
        values = _offer_defaults(offer, gpus)
        row = existing.get((offer.provider, offer.instance_type, offer.region))
        if row is None:
            row = CloudOffer(provider=offer.provider, instance_type=offer.instance_type, region=offer.region)
            to_create.append(row)
        else:
            to_update.append(row)
        for field, value in values.items():
            setattr(row, field, value)
    CloudOffer.objects.bulk_create(to_create)
    if to_update:
        CloudOffer.objects.bulk_update(to_update, [*_OFFER_FIELDS, "gpu"])
    return [row.pk for row in [*to_create, *to_update]], len(to_create)


_OFFER_FIELDS = [
    f.name
    for f in dataclasses.fields(specs.OfferSpec)
    if f.name not in ("provider", "instance_type", "region", "gpu_slug")
]


class PriceImportError(ValueError):
    pass


SKYPILOT_COLUMNS = {"InstanceType", "AcceleratorName", "AcceleratorCount", "Price", "Region"}


@dataclass(frozen=True)
class PriceImportResult:
    provider: str
    created: int
    updated: int
    removed: int
    skipped_without_gpu: int


def _read_skypilot_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = SKYPILOT_COLUMNS - set(reader.fieldnames or [])
            if missing:
                raise PriceImportError(
                    f"{path.name} is not a SkyPilot vms.csv: missing columns {', '.join(sorted(missing))}"
                )
            return list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceImportError(f"cannot read {path}: {exc}") from exc


def _cheapest_per_instance(rows: list[dict[str, str]], provider: str, source: str) -> list[specs.OfferSpec]:
    """SkyPilot lists an instance once per region (and zone): keep the cheapest on-demand region of each."""
    best: dict[str, specs.OfferSpec] = {}
    for row in rows:
        if not (row.get("AcceleratorName") or "").strip():
            continue  # CPU-only instance types are not GPU offers
        offer = specs.parse_offer_row(row, provider=provider, source=source)
        if offer.ondemand_usd_per_hour is None and offer.spot_usd_per_hour is None:
            continue
        if offer.gpu_count < 1:
            continue  # a fraction of a GPU (AWS g6f: 1/8 L4) cannot hold a replica the planner sizes
        current = best.get(offer.instance_type)
        price = offer.ondemand_usd_per_hour if offer.ondemand_usd_per_hour is not None else float("inf")
        current_price = (
            current.ondemand_usd_per_hour
            if current is not None and current.ondemand_usd_per_hour is not None
            else float("inf")
        )
        if current is None or price < current_price:
            best[offer.instance_type] = offer
    return list(best.values())


@transaction.atomic
def offers_import_skypilot(*, path: Path, provider: str) -> PriceImportResult:
    """Replace one provider's offers with those in a SkyPilot catalog vms.csv."""
    provider = provider.strip().lower()
    if not provider:
        raise PriceImportError("provider must not be empty")
    offers = _cheapest_per_instance(_read_skypilot_rows(path), provider, f"skypilot vms.csv: {path.name}")
    if not offers:
        raise PriceImportError(f"{path.name} holds no GPU instance with a price")
    kept_ids, created = _offers_upsert(offers)
    removed, _ = CloudOffer.objects.filter(provider=provider).exclude(pk__in=kept_ids).delete()
    return PriceImportResult(
        provider=provider,
        created=created,
        updated=len(offers) - created,
        removed=removed,
        skipped_without_gpu=sum(1 for offer in offers if offer.gpu_slug is None),
    )
