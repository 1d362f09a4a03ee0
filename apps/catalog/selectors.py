from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from django.db.models import QuerySet

from apps.catalog import specs
from apps.catalog.models import ApiPrice, CloudOffer, Engine, GpuType, ModelArchitecture, Quantization


def _to_spec(spec_type: Any, row: Any, **overrides: Any) -> Any:
    values = {f.name: getattr(row, f.name, None) for f in dataclasses.fields(spec_type)}
    values.update(overrides)
    return spec_type(**values)


def catalog_snapshot(*, with_prices: bool = True) -> specs.CatalogSnapshot:
    """The catalog as the planner sees it, with a version that changes whenever any row read changes.

    with_prices=False leaves out offers and API prices, for callers that need only hardware, models and
    quantizations (benchmark candidates).
    """
    gpus = tuple(_to_spec(specs.GpuSpec, row) for row in GpuType.objects.all())
    models = tuple(row.spec() for row in ModelArchitecture.objects.all())
    quants = tuple(
        _to_spec(specs.QuantSpec, row, engines=tuple(row.engines), native_families=tuple(row.native_families))
        for row in Quantization.objects.all()
    )
    offers: tuple[specs.OfferSpec, ...] = ()
    prices: tuple[specs.ApiPriceSpec, ...] = ()
    if with_prices:
        offers = tuple(
            _to_spec(specs.OfferSpec, row, gpu_slug=row.gpu.slug if row.gpu else None)
            for row in CloudOffer.objects.select_related("gpu").order_by(
                "provider", "instance_type", "region"
            )
        )
        prices = tuple(_to_spec(specs.ApiPriceSpec, row) for row in ApiPrice.objects.all())
    digest = hashlib.sha256(repr((gpus, models, quants, offers, prices)).encode()).hexdigest()[:12]
    return specs.CatalogSnapshot(
        version=f"catalog-{digest}",
        gpus=gpus,
        models=models,
        quantizations=quants,
        offers=offers,
        api_prices=prices,
    )


def gpu_list(*, search: str = "") -> QuerySet[GpuType]:
    qs = GpuType.objects.all()
    return qs.filter(name__icontains=search) | qs.filter(slug__icontains=search) if search else qs


def model_list(*, search: str = "") -> QuerySet[ModelArchitecture]:
    qs = ModelArchitecture.objects.all()
    return qs.filter(name__icontains=search) | qs.filter(slug__icontains=search) if search else qs


def engine_list() -> QuerySet[Engine]:
    return Engine.objects.all()


def quantization_list() -> QuerySet[Quantization]:
    return Quantization.objects.all()


def offer_list(
    *, provider: str = "", gpu: str = "", spot_only: bool = False, max_usd_per_hour: float | None = None
) -> QuerySet[CloudOffer]:
    qs = CloudOffer.objects.select_related("gpu")
    if provider:
        qs = qs.filter(provider__iexact=provider)
    if gpu:
        qs = qs.filter(gpu__slug=gpu)
    if spot_only:
        qs = qs.filter(spot_usd_per_hour__isnull=False)
    if max_usd_per_hour is not None:
        qs = qs.filter(ondemand_usd_per_hour__lte=max_usd_per_hour)
    return qs


def api_price_list(*, provider: str = "") -> QuerySet[ApiPrice]:
    qs = ApiPrice.objects.all()
    return qs.filter(provider__iexact=provider) if provider else qs


def model_slugs() -> set[str]:
    return set(ModelArchitecture.objects.values_list("slug", flat=True))


def gpu_slugs() -> set[str]:
    return set(GpuType.objects.values_list("slug", flat=True))


def quantization_slugs() -> set[str]:
    return set(Quantization.objects.values_list("slug", flat=True))


def offer_providers() -> set[str]:
    return set(CloudOffer.objects.values_list("provider", flat=True).distinct())
