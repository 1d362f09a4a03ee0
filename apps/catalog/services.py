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
    gpus = {gpu.slug: gpu for gpu in GpuType.objects.all()}
    for offer in specs.load_offers(data_dir):
        CloudOffer.objects.update_or_create(
            provider=offer.provider,
            instance_type=offer.instance_type,
            region=offer.region,
            defaults=_offer_defaults(offer, gpus),
        )
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
    gpus = {gpu.slug: gpu for gpu in GpuType.objects.all()}
    created = updated = 0
    kept_ids = []
    for offer in offers:
        row, was_created = CloudOffer.objects.update_or_create(
            provider=offer.provider,
            instance_type=offer.instance_type,
            region=offer.region,
            defaults=_offer_defaults(offer, gpus),
        )
        kept_ids.append(row.pk)
        created += was_created
        updated += not was_created
    removed, _ = CloudOffer.objects.filter(provider=provider).exclude(pk__in=kept_ids).delete()
    return PriceImportResult(
        provider=provider,
        created=created,
        updated=updated,
        removed=removed,
        skipped_without_gpu=sum(1 for offer in offers if offer.gpu_slug is None),
    )
