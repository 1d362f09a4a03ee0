"""Read-only catalog endpoints. Lists filter with query parameters; detail views look up by slug."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics

from advisor.api import validation_error
from apps.catalog import selectors
from apps.catalog.serializers import (
    ApiPriceOut,
    CloudOfferOut,
    EngineOut,
    GpuTypeOut,
    ModelArchitectureOut,
    QuantizationOut,
)

SEARCH = OpenApiParameter("search", OpenApiTypes.STR, description="Substring of the slug or name")


@extend_schema_view(get=extend_schema(parameters=[SEARCH]))
class GpuListApi(generics.ListAPIView[Any]):
    serializer_class = GpuTypeOut

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.gpu_list(search=self.request.query_params.get("search", ""))


class GpuDetailApi(generics.RetrieveAPIView[Any]):
    serializer_class = GpuTypeOut
    lookup_field = "slug"
    queryset = selectors.gpu_list()


@extend_schema_view(get=extend_schema(parameters=[SEARCH]))
class ModelListApi(generics.ListAPIView[Any]):
    serializer_class = ModelArchitectureOut

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.model_list(search=self.request.query_params.get("search", ""))


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


@extend_schema_view(
    get=extend_schema(
        parameters=[
            OpenApiParameter("provider", OpenApiTypes.STR),
            OpenApiParameter("gpu", OpenApiTypes.STR, description="GPU slug"),
            OpenApiParameter("spot", OpenApiTypes.BOOL, description="Only offers with a spot price"),
            OpenApiParameter("max_usd_per_hour", OpenApiTypes.NUMBER),
        ]
    )
)
class OfferListApi(generics.ListAPIView[Any]):
    serializer_class = CloudOfferOut

    def get_queryset(self) -> QuerySet[Any]:
        params = self.request.query_params
        max_price = params.get("max_usd_per_hour")
        try:
            max_usd = float(max_price) if max_price else None
        except ValueError as exc:
            raise validation_error("max_usd_per_hour", "Must be a number.") from exc
        return selectors.offer_list(
            provider=params.get("provider", ""),
            gpu=params.get("gpu", ""),
            spot_only=params.get("spot", "").lower() in {"1", "true", "yes"},
            max_usd_per_hour=max_usd,
        )


@extend_schema_view(get=extend_schema(parameters=[OpenApiParameter("provider", OpenApiTypes.STR)]))
class ApiPriceListApi(generics.ListAPIView[Any]):
    serializer_class = ApiPriceOut

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.api_price_list(provider=self.request.query_params.get("provider", ""))
