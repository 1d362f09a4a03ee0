"""The catalog in the database: loaded from apps/catalog/data by `manage.py load_catalog`, refreshed by imports.

Field names match the dataclasses in apps/catalog/specs.py, so a row converts to a spec by name.
Every table keeps where its numbers came from.
"""

from __future__ import annotations

import dataclasses

from django.core.validators import RegexValidator
from django.db import models

from apps.catalog import specs


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
    fp6_tflops = models.FloatField(null=True, blank=True)
    tdp_w = models.FloatField(null=True, blank=True)
    scale_up_domain_gpus = models.PositiveIntegerField(
        default=1, help_text="GPUs one NVLink/Infinity Fabric domain joins: 8 HGX, 72 NVL72, 1 PCIe card"
    )
    scale_out_gbit_per_gpu = models.FloatField(
        null=True, blank=True, help_text="Scale-out NIC Gbit/s per GPU in the vendor reference system"
    )
    pcie_only = models.BooleanField(default=False)

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
    # See specs.ModelSpec for the meaning of each field below.
    attention = models.CharField(max_length=10, default="gqa", help_text="gqa (incl. MHA/MQA) or mla")
    v_head_dim = models.PositiveIntegerField(default=0)
    q_lora_rank = models.PositiveIntegerField(default=0)
    kv_lora_rank = models.PositiveIntegerField(default=0)
    qk_rope_head_dim = models.PositiveIntegerField(default=0)
    local_attention = models.CharField(max_length=10, blank=True, help_text="sliding, chunked or empty")
    local_window = models.PositiveIntegerField(default=0)
    local_layers = models.PositiveIntegerField(default=0)
    attention_sinks = models.BooleanField(default=False)
    moe_layers = models.PositiveIntegerField(default=0)
    moe_intermediate = models.PositiveIntegerField(default=0)
    dense_intermediate = models.PositiveIntegerField(default=0)
    shared_experts = models.PositiveIntegerField(default=0)
    expert_params = models.PositiveBigIntegerField(default=0)
    shared_expert_params = models.PositiveBigIntegerField(default=0)
    native_quant = models.CharField(max_length=20, blank=True)
    native_quant_scope = models.CharField(max_length=20, blank=True)
    params_card_total_b = models.FloatField(null=True, blank=True)
    params_card_active_b = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    def spec(self) -> specs.ModelSpec:
        return specs.ModelSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(specs.ModelSpec)})

    @property
    def kv_bytes_per_token_bf16(self) -> int:
        """Every layer counted: the cost of a token while the context is shorter than every window."""
        return round(self.spec().kv_bytes_per_token())

    @property
    def kv_bytes_per_token_bf16_8k(self) -> int:
        """Average over an 8k-token context, sliding/chunked layers holding only their window."""
        return round(self.spec().kv_bytes_per_token(context_tokens=8192))


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
    native_families = models.JSONField(
        default=list, help_text="GPU families whose tensor cores compute in this format"
    )
    notes = models.TextField(blank=True)

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
    model_slug = models.CharField(
        max_length=80, blank=True, help_text="Catalog model this API serves exactly, if any"
    )

    class Meta:
        ordering = ["provider", "model"]
        constraints = [models.UniqueConstraint(fields=["provider", "model"], name="one_price_per_api_model")]

    def __str__(self) -> str:
        return f"{self.provider} {self.model}"
