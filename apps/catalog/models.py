"""The catalog in the database: loaded from apps/catalog/data by `manage.py load_catalog`, refreshed by imports.

Field names match the dataclasses in apps/catalog/specs.py, so a row converts to a spec by name.
Every table keeps where its numbers came from.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models


class GpuType(models.Model):
    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    vendor = models.CharField(max_length=60)
    architecture = models.CharField(max_length=30, help_text="Family: hopper, blackwell, ampere, ada, …, cpu")
    compute_capability = models.FloatField()
    memory_gb = models.FloatField()
    memory_bandwidth_tbps = models.FloatField()
    bf16_tflops = models.FloatField(null=True, blank=True)
    fp16_tflops = models.FloatField(null=True, blank=True)
    fp8_tflops = models.FloatField(null=True, blank=True)
    int8_tops = models.FloatField(null=True, blank=True)
    fp4_tflops = models.FloatField(null=True, blank=True)
    interconnect = models.CharField(max_length=120)
    interconnect_gbps = models.FloatField(help_text="Bidirectional GB/s per GPU")
    fp8_native = models.BooleanField()
    fp4_native = models.BooleanField()
    source = models.TextField()
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = "GPU type"

    def __str__(self) -> str:
        return self.name


# Model slugs keep the vendor's version dots (llama-3.1-8b), which Django's slug pattern would refuse.
MODEL_SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
MODEL_SLUG_VALIDATOR = RegexValidator(
    MODEL_SLUG_PATTERN, "Lowercase letters, digits, dots, dashes and underscores (e.g. llama-3.1-8b)."
)


class ModelArchitecture(models.Model):
    slug = models.CharField(max_length=80, unique=True, validators=[MODEL_SLUG_VALIDATOR])
    name = models.CharField(max_length=120)
    hf_repo = models.CharField(max_length=200, blank=True)
    params_total_b = models.FloatField()
    params_active_b = models.FloatField()
    layers = models.PositiveIntegerField()
    hidden = models.PositiveIntegerField()
    attention_heads = models.PositiveIntegerField()
    kv_heads = models.PositiveIntegerField()
    head_dim = models.PositiveIntegerField()
    intermediate = models.PositiveIntegerField()
    vocab = models.PositiveIntegerField()
    max_context = models.PositiveIntegerField()
    architecture_type = models.CharField(max_length=10, default="dense")
    num_experts = models.PositiveIntegerField(default=0)
    experts_per_token = models.PositiveIntegerField(default=0)
    source = models.TextField()
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    @property
    def kv_bytes_per_token_bf16(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


class Engine(models.Model):
    slug = models.SlugField(max_length=20, unique=True)
    name = models.CharField(max_length=60)
    image = models.CharField(max_length=200)
    port = models.PositiveIntegerField()
    health_path = models.CharField(max_length=60)
    metrics_path = models.CharField(max_length=60, blank=True)
    queue_metric = models.CharField(max_length=80, blank=True)
    quantizations = models.JSONField(default=list)
    accelerators = models.JSONField(default=list)
    docs_url = models.URLField(max_length=300)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Quantization(models.Model):
    slug = models.SlugField(max_length=20, unique=True)
    name = models.CharField(max_length=60)
    weight_bytes_per_param = models.FloatField()
    kv_bytes_per_element = models.FloatField()
    compute_dtype = models.CharField(max_length=10)
    min_compute_capability = models.FloatField()
    requires = models.CharField(max_length=200)
    engines = models.JSONField(default=list)
    typical_quality_loss_pct = models.FloatField()
    quality_source = models.TextField()
    size_source = models.TextField()

    class Meta:
        ordering = ["weight_bytes_per_param", "slug"]

    def __str__(self) -> str:
        return self.name


class CloudOffer(models.Model):
    provider = models.CharField(max_length=60)
    instance_type = models.CharField(max_length=120)
    region = models.CharField(max_length=60)
    accelerator = models.CharField(max_length=60, help_text="As the provider names it")
    gpu = models.ForeignKey(GpuType, null=True, blank=True, on_delete=models.SET_NULL, related_name="offers")
    gpu_count = models.PositiveIntegerField()
    gpu_memory_gib = models.FloatField(null=True, blank=True)
    vcpus = models.FloatField(null=True, blank=True)
    memory_gib = models.FloatField(null=True, blank=True)
    ondemand_usd_per_hour = models.FloatField(null=True, blank=True)
    spot_usd_per_hour = models.FloatField(null=True, blank=True)
    source = models.TextField()
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "instance_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "instance_type", "region"], name="one_offer_per_region"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.instance_type} ({self.gpu_count}× {self.accelerator})"


class ApiPrice(models.Model):
    provider = models.CharField(max_length=60)
    model = models.CharField(max_length=120)
    input_usd_per_mtok = models.FloatField()
    output_usd_per_mtok = models.FloatField()
    snapshot_date = models.CharField(max_length=60)
    source = models.TextField()
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["provider", "model"]
        constraints = [models.UniqueConstraint(fields=["provider", "model"], name="one_price_per_api_model")]

    def __str__(self) -> str:
        return f"{self.provider} {self.model}"
