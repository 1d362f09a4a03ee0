from django.contrib import admin

from apps.catalog.models import ApiPrice, CloudOffer, Engine, GpuType, ModelArchitecture, Quantization


@admin.register(GpuType)
class GpuTypeAdmin(admin.ModelAdmin[GpuType]):
    list_display = ["slug", "name", "architecture", "memory_gb", "memory_bandwidth_tbps", "bf16_tflops"]
    search_fields = ["slug", "name"]


@admin.register(ModelArchitecture)
class ModelArchitectureAdmin(admin.ModelAdmin[ModelArchitecture]):
    list_display = ["slug", "name", "params_total_b", "params_active_b", "layers", "max_context"]
    search_fields = ["slug", "name", "hf_repo"]


@admin.register(Engine)
class EngineAdmin(admin.ModelAdmin[Engine]):
    list_display = ["slug", "name", "image", "port"]


@admin.register(Quantization)
class QuantizationAdmin(admin.ModelAdmin[Quantization]):
    list_display = ["slug", "name", "weight_bytes_per_param", "typical_quality_loss_pct"]


@admin.register(CloudOffer)
class CloudOfferAdmin(admin.ModelAdmin[CloudOffer]):
    list_display = ["provider", "instance_type", "gpu", "gpu_count", "region", "ondemand_usd_per_hour"]
    list_filter = ["provider", "gpu"]
    search_fields = ["instance_type", "accelerator"]


@admin.register(ApiPrice)
class ApiPriceAdmin(admin.ModelAdmin[ApiPrice]):
    list_display = ["provider", "model", "input_usd_per_mtok", "output_usd_per_mtok", "snapshot_date"]
    list_filter = ["provider"]
