from __future__ import annotations

import dataclasses
import hashlib
import statistics
from collections import defaultdict
from typing import Any

from django.db.models import F, FloatField, QuerySet
from django.db.models.functions import Cast

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
    qs = CloudOffer.objects.select_related("gpu").annotate(
        usd_per_gpu_hour=F("ondemand_usd_per_hour") / Cast("gpu_count", FloatField()),
        spot_usd_per_gpu_hour=F("spot_usd_per_hour") / Cast("gpu_count", FloatField()),
    )
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


def offer_market(*, provider: str = "", gpu: str = "") -> list[dict[str, Any]]:
    """Per GPU, what the listings (on demand) say per GPU-hour: how many, from how many providers, the
    cheapest (and whose, and whether a marketplace's) and the median."""
    from apps.catalog.marketplaces import marketplace_of

    rows = offer_list(provider=provider, gpu=gpu).filter(gpu__isnull=False, ondemand_usd_per_hour__gt=0)
    by_gpu: dict[str, list[tuple[float, str]]] = defaultdict(list)
    names: dict[str, str] = {}
    for slug, name, price, count, who in rows.values_list(
        "gpu__slug", "gpu__name", "ondemand_usd_per_hour", "gpu_count", "provider"
    ):
        if price is None or slug is None:  # excluded by the filter; the check is for the type checker
            continue
        by_gpu[slug].append((price / count, who))
        names[slug] = name
    market = []
    for slug, listed in sorted(by_gpu.items(), key=lambda item: names[item[0]]):
        cheapest = min(listed)
        market.append(
            {
                "slug": slug,
                "name": names[slug],
                "listings": len(listed),
                "providers": len({who for _, who in listed}),
                "cheapest_usd_per_gpu_hour": cheapest[0],
                "cheapest_provider": cheapest[1],
                "cheapest_marketplace": marketplace_of(cheapest[1]),
                "median_usd_per_gpu_hour": statistics.median(p for p, _ in listed),
            }
        )
    return market
