from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.catalog import selectors
from apps.catalog.specs import shown_sources


@require_GET
@login_required
def catalog_index(request: HttpRequest) -> HttpResponse:
    return render(request, "catalog/index.html", {"section": "index"})


@require_GET
@login_required
def gpu_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "")
    gpus = list(selectors.gpu_list(search=q))
    dittos = shown_sources()["gpus"]
    for gpu in gpus:
        gpu.shown_source = dittos.get(gpu.slug, gpu.source)  # type: ignore[attr-defined]
    return render(request, "catalog/gpus.html", {"gpus": gpus, "q": q, "section": "gpus"})


@require_GET
@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "")
    context = {"models": selectors.model_list(search=q), "q": q, "section": "models"}
    return render(request, "catalog/models.html", context)


@require_GET
@login_required
def engine_list(request: HttpRequest) -> HttpResponse:
    context = {
        "engines": selectors.engine_list(),
        "quantizations": selectors.quantization_list(),
        "section": "engines",
    }
    return render(request, "catalog/engines.html", context)


OFFERS_PER_PAGE = 50


@require_GET
@login_required
def offer_list(request: HttpRequest) -> HttpResponse:
    provider = request.GET.get("provider", "")
    gpu = request.GET.get("gpu", "")
    spot = request.GET.get("spot", "") == "on"
    offers = selectors.offer_list(provider=provider, gpu=gpu, spot_only=spot)
    # A page at a time: the whole snapshot is 500+ rows; the market summary above the table covers them all.
    page = Paginator(offers, OFFERS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "offers": page.object_list,
        "offer_count": page.paginator.count,
        "market": selectors.offer_market(provider=provider, gpu=gpu),
        "query": query.urlencode(),
        "providers": sorted(selectors.offer_providers()),
        "gpus": selectors.gpu_list(),
        "provider": provider,
        "gpu": gpu,
        "spot": spot,
        "section": "offers",
    }
    return render(request, "catalog/offers.html", context)


@require_GET
@login_required
def api_price_list(request: HttpRequest) -> HttpResponse:
    provider = request.GET.get("provider", "")
    prices = list(selectors.api_price_list(provider=provider))
    dittos = shown_sources()["api_prices"]
    for price in prices:
        price.shown_source = dittos.get((price.provider, price.model), price.source)  # type: ignore[attr-defined]
    context = {
        "prices": prices,
        "providers": sorted({p.provider for p in selectors.api_price_list()}),
        "provider": provider,
        "section": "api-prices",
    }
    return render(request, "catalog/api_prices.html", context)
