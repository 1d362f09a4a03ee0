from __future__ import annotations

from rest_framework import serializers

from apps.catalog.models import ApiPrice, CloudOffer, Engine, GpuType, ModelArchitecture, Quantization


class GpuTypeOut(serializers.ModelSerializer[GpuType]):
    class Meta:
        model = GpuType
        exclude = ["id"]


class ModelArchitectureOut(serializers.ModelSerializer[ModelArchitecture]):
    kv_bytes_per_token_bf16 = serializers.IntegerField(read_only=True)
    kv_bytes_per_token_bf16_8k = serializers.IntegerField(read_only=True)

    class Meta:
        model = ModelArchitecture
        exclude = ["id"]


class EngineOut(serializers.ModelSerializer[Engine]):
    class Meta:
        model = Engine
        exclude = ["id"]


class QuantizationOut(serializers.ModelSerializer[Quantization]):
    class Meta:
        model = Quantization
        exclude = ["id"]


class CloudOfferOut(serializers.ModelSerializer[CloudOffer]):
    gpu: serializers.SlugRelatedField[GpuType] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )

    class Meta:
        model = CloudOffer
        exclude = ["id"]


class ApiPriceOut(serializers.ModelSerializer[ApiPrice]):
    class Meta:
        model = ApiPrice
        exclude = ["id"]
