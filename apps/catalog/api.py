"""Read-only catalog endpoints. Lists filter with query parameters; detail views look up by slug."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers

from advisor.api import parse_query
from apps.catalog import selectors
from apps.catalog.models import MODEL_SLUG_PATTERN
from apps.catalog.serializers import (
    ApiPriceOut,
    CloudOfferOut,
    EngineOut,
    GpuTypeOut,
    ModelArchitectureOut,
    QuantizationOut,
)


class SearchQuery(serializers.Serializer[Any]):
    search = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Substring of the slug or name"
    )


class OfferQuery(serializers.Serializer[Any]):
    provider = serializers.CharField(required=False, allow_blank=True, max_length=60)
    gpu = serializers.SlugField(required=False, allow_blank=True, max_length=40, help_text="GPU slug")
    spot = serializers.BooleanField(default=False, help_text="Only offers with a spot price")
    max_usd_per_hour = serializers.FloatField(required=False, min_value=0, max_value=1_000_000)


class ProviderQuery(serializers.Serializer[Any]):
    provider = serializers.CharField(required=False, allow_blank=True, max_length=60)


def _slug_path(pattern: str) -> OpenApiParameter:
    return OpenApiParameter("slug", str, OpenApiParameter.PATH, pattern=pattern)


@extend_schema_view(get=extend_schema(parameters=[SearchQuery]))
class GpuListApi(generics.ListAPIView[Any]):
    serializer_class = GpuTypeOut

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.gpu_list(search=parse_query(SearchQuery, self.request).get("search", ""))


@extend_schema_view(get=extend_schema(parameters=[_slug_path(r"^[-a-zA-Z0-9_]+$")]))
class GpuDetailApi(generics.RetrieveAPIView[Any]):
    serializer_class = GpuTypeOut
    lookup_field = "slug"
    queryset = selectors.gpu_list()


@extend_schema_view(get=extend_schema(parameters=[SearchQuery]))
class ModelListApi(generics.ListAPIView[Any]):
    serializer_class = ModelArchitectureOut

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.model_list(search=parse_query(SearchQuery, self.request).get("search", ""))


@extend_schema_view(get=extend_schema(parameters=[_slug_path(MODEL_SLUG_PATTERN)]))
class ModelDetailApi(generics.RetrieveAPIView[Any]):
    serializer_class = ModelArchitectureOut
    lookup_field = "slug"
    queryset = selectors.model_list()


class EngineListApi(generics.ListAPIView[Any]):
    serializer_class = EngineOut
    queryset = selectors.engine_list()


class QuantizationListApi(generics.ListAPIView[Any]):
    serializer_class = QuantizationOut
    queryset = selectors.quantization_list()


@extend_schema_view(get=extend_schema(parameters=[OfferQuery]))
class OfferListApi(generics.ListAPIView[Any]):
    serializer_class = CloudOfferOut

    def get_queryset(self) -> QuerySet[Any]:
        query = parse_query(OfferQuery, self.request)
        return selectors.offer_list(
            provider=query.get("provider", ""),
            gpu=query.get("gpu", ""),
            spot_only=query["spot"],
            max_usd_per_hour=query.get("max_usd_per_hour"),
        )


@extend_schema_view(get=extend_schema(parameters=[ProviderQuery]))
class ApiPriceListApi(generics.ListAPIView[Any]):
    serializer_class = ApiPriceOut

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.api_price_list(provider=parse_query(ProviderQuery, self.request).get("provider", ""))
