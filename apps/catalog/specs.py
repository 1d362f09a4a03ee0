"""The catalog as plain dataclasses, parsed from the CSV files shipped in apps/catalog/data.

No Django here: the performance model, the planner benchmark script and `load_catalog` all read the same specs.
Numbers in the researched CSVs sometimes carry words ("~364 (derived)", "n/p (~70 reported, unverified)"):
the first number is taken and the raw text stays in the notes.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

DATA_DIR = Path(__file__).resolve().parent / "data"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def first_number(raw: str | None) -> float | None:
    if raw is None:
        return None
    text = raw.replace(",", "").strip()
    if not text or text.lower().startswith(("not supported", "n/a")):
        return None
    match = _NUMBER.search(text)
    return float(match.group()) if match else None


@dataclass(frozen=True)
class GpuSpec:
    slug: str
    name: str
    vendor: str
    architecture: str  # family: hopper, blackwell, ampere, ada, turing, cdna3, cpu
    compute_capability: float
    memory_gb: float
    memory_bandwidth_tbps: float
    bf16_tflops: float | None
    fp16_tflops: float | None
    fp8_tflops: float | None
    int8_tops: float | None
    fp4_tflops: float | None
    interconnect: str
    interconnect_gbps: float  # bidirectional GB/s per GPU
    fp8_native: bool
    fp4_native: bool
    source: str
    notes: str
    fp6_tflops: float | None = None
    tdp_w: float | None = None
    # GPUs one scale-up fabric (NVLink/NVSwitch, Infinity Fabric) joins: 8 on an HGX/OAM board, 72 in an NVL72
    # rack, 1 for a PCIe card without a bridge. Traffic beyond the domain goes over the scale-out NICs.
    scale_up_domain_gpus: int = 1
    scale_out_gbit_per_gpu: float | None = (
        None  # NIC line rate per GPU in the vendor's reference system, Gbit/s
    )
    pcie_only: bool = False

    @property
    def is_cpu(self) -> bool:
        return self.architecture == "cpu"

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9


@dataclass(frozen=True)
class ModelSpec:
    slug: str
    name: str
    hf_repo: str
    params_total_b: float
    params_active_b: float
    layers: int
    hidden: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_context: int
    architecture_type: str  # "dense" or "moe"
    num_experts: int
    experts_per_token: int
    source: str
    notes: str
    # Attention beyond plain multi/grouped-query attention. For "mla" (DeepSeek multi-head latent attention) the
    # cache holds one compressed latent of kv_lora_rank plus one rope key of qk_rope_head_dim per token and layer,
    # shared by all heads; kv_heads and head_dim keep the config's meaning (query/key heads of width
    # qk_nope_head_dim + qk_rope_head_dim).
    attention: str = "gqa"  # "gqa" (includes MHA and MQA) | "mla"
    v_head_dim: int = 0  # 0: same as head_dim
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    # Layers that attend only to the last `local_window` tokens ("sliding": Gemma, gpt-oss) or only within their
    # own chunk of `local_window` tokens ("chunked": Llama 4). Their cache never needs more than the window.
    local_attention: str = ""  # "" | "sliding" | "chunked"
    local_window: int = 0
    local_layers: int = 0
    attention_sinks: bool = False  # learned per-head sink logits (gpt-oss)
    # Mixture of experts, per layer. `intermediate` stays the routed expert width for MoE models.
    moe_layers: int = 0
    moe_intermediate: int = 0
    dense_intermediate: int = 0  # MLP width of the dense (non-MoE) layers of a MoE model
    shared_experts: int = 0
    expert_params: int = 0  # one routed expert of one MoE layer, biases included
    shared_expert_params: int = 0  # all shared experts of one MoE layer
    # The precision the published checkpoint ships in: "" (16-bit) or a quantization slug, and which weights it
    # covers ("experts": routed experts only, attention and embeddings stay 16-bit; "linear": every linear layer).
    native_quant: str = ""
    native_quant_scope: str = ""
    params_card_total_b: float | None = None
    params_card_active_b: float | None = None

    @property
    def is_mla(self) -> bool:
        return self.attention == "mla"

    @property
    def full_attention_layers(self) -> int:
        return self.layers - self.local_layers

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    @property
    def routed_expert_params_total(self) -> int:
        """Every routed expert of every MoE layer: what expert parallelism spreads across GPUs."""
        return self.moe_layers * self.num_experts * self.expert_params

    @property
    def expert_params_per_token(self) -> int:
        """Expert weights one token reads: its routed experts plus the shared ones, over all MoE layers."""
        return self.moe_layers * (self.experts_per_token * self.expert_params + self.shared_expert_params)

    def kv_bytes_per_token_per_layer(self, kv_bytes_per_element: float = 2.0) -> float:
        if self.is_mla:
            return (self.kv_lora_rank + self.qk_rope_head_dim) * kv_bytes_per_element
        v_dim = self.v_head_dim or self.head_dim
        return self.kv_heads * (self.head_dim + v_dim) * kv_bytes_per_element

    def kv_cache_bytes(self, context_tokens: int, kv_bytes_per_element: float = 2.0) -> float:
        """Cache of one sequence holding `context_tokens`, local layers capped at their window.

        This is what an engine holds when it frees blocks that left the window; one that keeps every token for
        every layer holds kv_bytes_per_token() · context_tokens instead.
        """
        if context_tokens < 0:
            raise ValueError("context_tokens must not be negative")
        local_tokens = min(context_tokens, self.local_window) if self.local_layers else 0
        token_layers = self.full_attention_layers * context_tokens + self.local_layers * local_tokens
        return token_layers * self.kv_bytes_per_token_per_layer(kv_bytes_per_element)

    def kv_bytes_per_token(
        self, kv_bytes_per_element: float = 2.0, context_tokens: int | None = None
    ) -> float:
        """Cache bytes per token of context. Without a context length every layer counts (the cost of a token
        while the context is shorter than every window); with one, the average over that context."""
        if context_tokens is None or not self.local_layers:
            return self.layers * self.kv_bytes_per_token_per_layer(kv_bytes_per_element)
        if context_tokens <= 0:
            raise ValueError("context_tokens must be positive")
        return self.kv_cache_bytes(context_tokens, kv_bytes_per_element) / context_tokens

    def kv_bytes_per_token_gpu(
        self, tp: int, kv_bytes_per_element: float = 2.0, context_tokens: int | None = None
    ) -> float:
        """Per GPU under tensor parallelism: KV heads split across ranks (and repeat once tp exceeds them); the
        MLA latent has no head dimension, so every rank holds all of it."""
        whole = self.kv_bytes_per_token(kv_bytes_per_element, context_tokens)
        if self.is_mla or tp <= 1:
            return whole
        return whole * math.ceil(self.kv_heads / tp) / self.kv_heads


@dataclass(frozen=True)
class QuantSpec:
    slug: str
    name: str
    weight_bytes_per_param: float
    kv_bytes_per_element: float
    compute_dtype: str  # bf16, fp16, fp8, int8, fp4
    min_compute_capability: float
    requires: str
    engines: tuple[str, ...]
    typical_quality_loss_pct: float
    quality_source: str
    size_source: str
    # Architecture families whose tensor cores compute in this format; elsewhere an engine dequantizes the
    # weights and computes in `compute_dtype` (weight-only).
    native_families: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class OfferSpec:
    provider: str
    instance_type: str
    accelerator: str  # as the provider names it
    gpu_slug: str | None  # None when the accelerator is not in the GPU catalog
    gpu_count: int
    gpu_memory_gib: float | None
    vcpus: float | None
    memory_gib: float | None
    region: str
    ondemand_usd_per_hour: float | None
    spot_usd_per_hour: float | None
    source: str


@dataclass(frozen=True)
class ApiPriceSpec:
    provider: str
    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    snapshot_date: str
    source: str
    notes: str
    model_slug: str = ""  # catalog model the API serves, when it serves one of them exactly


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def _ditto(text: str) -> bool:
    """A source cell that points at the row above ("same", "A100 datasheet (as above)")."""
    return text.strip().lower() == "same" or "(as above)" in text.lower()


def _dittos_resolved(rows: Iterator[dict[str, str]], column: str) -> Iterator[dict[str, str]]:
    """The rows with ditto sources replaced by the source of the row above."""
    previous = ""
    for row in rows:
        if _ditto(row[column]) and previous:
            row = {**row, column: previous}
        previous = row[column]
        yield row


@cache
def shown_sources(data_dir: Path = DATA_DIR) -> dict[str, dict[Any, str]]:
    """What each ditto source cell ("same", "(as above)") stands for, read in the files' own order: on a page
    the rows are filtered and sorted, and "same" would point at whatever row happens to be above it there. The
    catalog keeps the cells as written (the shipped calibration fit is keyed on them)."""
    gpus: dict[Any, str] = {}
    for path in (data_dir / "gpus.csv", data_dir / "accelerators_extra.csv"):
        for raw, row in zip(_rows(path), _dittos_resolved(_rows(path), "spec_source_primary"), strict=True):
            if raw["spec_source_primary"] != row["spec_source_primary"]:
                gpus[row["slug"]] = row["spec_source_primary"]
    prices: dict[Any, str] = {}
    rows = _rows(data_dir / "api_prices.csv")
    for raw, row in zip(
        _rows(data_dir / "api_prices.csv"), _dittos_resolved(rows, "source_url"), strict=True
    ):
        if raw["source_url"] != row["source_url"]:
            prices[(row["provider"], row["model"])] = row["source_url"]
    return {"gpus": gpus, "api_prices": prices}


_FAMILIES = (
    "hopper",
    "blackwell",
    "ampere",
    "ada",
    "turing",
    "cdna 3",
    "cdna3",
    "cdna 4",
    "cdna4",
    "volta",
    "cpu",
)
# AMD lists gfx942/gfx950; the CUDA-style number is kept only for NVIDIA. CDNA3 and CDNA4 are treated as
# Hopper-class for the compute-capability checks (FP8 and BF16 tensor cores); CDNA4's FP4/FP6 shows in fp4_native.
_AMD_FAMILIES = frozenset({"cdna3", "cdna4"})
_FP4_FAMILIES = frozenset({"blackwell", "cdna4"})


def _family(architecture: str) -> str:
    lowered = architecture.lower()
    for family in _FAMILIES:
        if family in lowered:
            return family.replace(" ", "")
    return lowered.split()[0] if lowered else "unknown"


def load_gpus(data_dir: Path = DATA_DIR) -> list[GpuSpec]:
    specs = []
    for path in (data_dir / "gpus.csv", data_dir / "accelerators_extra.csv"):
        for row in _rows(path):
            family = _family(row["architecture"])
            specs.append(
                GpuSpec(
                    slug=row["slug"],
                    name=row["gpu"],
                    vendor=row["vendor"],
                    architecture=family,
                    compute_capability=9.0
                    if family in _AMD_FAMILIES
                    else first_number(row["compute_capability"]) or 0.0,
                    memory_gb=first_number(row["memory_gb"]) or 0.0,
                    memory_bandwidth_tbps=first_number(row["mem_bw_TBps"]) or 0.0,
                    bf16_tflops=first_number(row["bf16_dense_TFLOPS"]),
                    fp16_tflops=first_number(row["fp16_dense_TFLOPS"]),
                    fp8_tflops=first_number(row["fp8_dense_TFLOPS"]),
                    int8_tops=first_number(row["int8_dense_TOPS"]),
                    fp4_tflops=first_number(row["fp4_dense_TFLOPS"]),
                    interconnect=row["interconnect"],
                    interconnect_gbps=first_number(row["interconnect_GBps_bidir"]) or 0.0,
                    fp8_native=row["fp8_native"].strip().lower().startswith("yes")
                    or family in {"hopper", "ada", "blackwell", "cdna3", "cdna4"},
                    fp4_native=family in _FP4_FAMILIES,
                    source=row["spec_source_primary"],
                    notes=row["notes_uncertainty"],
                    fp6_tflops=first_number(row.get("fp6_dense_TFLOPS")),
                    tdp_w=first_number(row.get("tdp_W")),
                    scale_up_domain_gpus=int(first_number(row.get("scale_up_domain_gpus")) or 1),
                    scale_out_gbit_per_gpu=first_number(row.get("scale_out_Gbps_per_gpu")),
                    pcie_only=(row.get("pcie_only") or "").strip().lower() == "yes",
                )
            )
    return specs


def _moe_shape(row: dict[str, str]) -> tuple[int, int]:
    match = re.search(r"(\d+)\s*experts.*?top-?(\d+)", row["type"] + " " + row["notes"], re.IGNORECASE)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _count(row: dict[str, str], key: str) -> int:
    return int(first_number(row.get(key)) or 0)


def load_models(data_dir: Path = DATA_DIR) -> list[ModelSpec]:
    specs = []
    for row in _rows(data_dir / "models.csv"):
        num_experts, experts_per_token = _count(row, "num_experts"), _count(row, "experts_per_token")
        if not num_experts:
            num_experts, experts_per_token = _moe_shape(row)
        specs.append(
            ModelSpec(
                slug=row["slug"],
                name=row["model"],
                hf_repo=row["hf_repo"],
                params_total_b=float(row["params_total_B"]),
                params_active_b=float(row["params_active_B"]),
                layers=int(row["layers"]),
                hidden=int(row["hidden"]),
                attention_heads=int(row["attn_heads"]),
                kv_heads=int(row["kv_heads"]),
                head_dim=int(row["head_dim"]),
                intermediate=int(row["intermediate"]),
                vocab=int(row["vocab"]),
                max_context=int(row["max_position_embeddings"]),
                architecture_type="moe" if num_experts else "dense",
                num_experts=num_experts,
                experts_per_token=experts_per_token,
                source=row["config_source_retrieved"],
                notes="; ".join(filter(None, [row["context_notes"], row["type"], row["notes"]])),
                attention=row.get("attention") or "gqa",
                v_head_dim=_count(row, "v_head_dim"),
                q_lora_rank=_count(row, "q_lora_rank"),
                kv_lora_rank=_count(row, "kv_lora_rank"),
                qk_rope_head_dim=_count(row, "qk_rope_head_dim"),
                local_attention=row.get("local_attention") or "",
                local_window=_count(row, "local_window"),
                local_layers=_count(row, "local_layers"),
                attention_sinks=(row.get("attention_sinks") or "").strip().lower() == "yes",
                moe_layers=_count(row, "moe_layers") or (int(row["layers"]) if num_experts else 0),
                moe_intermediate=_count(row, "moe_intermediate")
                or (int(row["intermediate"]) if num_experts else 0),
                dense_intermediate=_count(row, "dense_intermediate"),
                shared_experts=_count(row, "shared_experts"),
                expert_params=_count(row, "expert_params"),
                shared_expert_params=_count(row, "shared_expert_params"),
                native_quant=row.get("native_quant") or "",
                native_quant_scope=row.get("native_quant_scope") or "",
                params_card_total_b=first_number(row.get("params_card_total_B")),
                params_card_active_b=first_number(row.get("params_card_active_B")),
            )
        )
    return specs


def load_quantizations(data_dir: Path = DATA_DIR) -> list[QuantSpec]:
    return [
        QuantSpec(
            slug=row["slug"],
            name=row["name"],
            weight_bytes_per_param=float(row["weight_bytes_per_param"]),
            kv_bytes_per_element=float(row["kv_bytes_per_element"]),
            compute_dtype=row["compute_dtype"],
            min_compute_capability=float(row["min_compute_capability"]),
            requires=row["requires"],
            engines=tuple(row["engines"].split(",")),
            typical_quality_loss_pct=float(row["typical_quality_loss_pct"]),
            quality_source=row["quality_source"],
            size_source=row["size_source"],
            native_families=tuple(f for f in (row.get("native_families") or "").split(";") if f),
            notes=row.get("notes") or "",
        )
        for row in _rows(data_dir / "quantizations.csv")
    ]


# SkyPilot names accelerators per provider; this maps them onto catalog slugs. Unlisted names (V100, A40,
# A5000, …) stay as offers without a GPU spec, which the planner cannot model and skips.
_ACCELERATOR_SLUGS = {
    "h100": "h100-sxm",
    "h100-sxm": "h100-sxm",
    "h100-80g-sxm5": "h100-sxm",
    "h100-80g-pcie": "h100-pcie",
    "h100-80g-pcie-nvlink": "h100-pcie",
    "h100-nvl": "h100-nvl",
    "h100-mega": "h100-sxm",  # Google Cloud a3-megagpu: H100 SXM with more NICs
    "h200": "h200",
    "h20": "h20",
    "gh200": "gh200",
    "b200": "b200",
    "b300": "b300",
    "gb200": "gb200",
    "gb300": "gb300",
    "a100-80gb": "a100-80gb",
    "a100-80g-pcie": "a100-80gb-pcie",
    "a100-80g-pcie-nvlink": "a100-80gb-pcie",  # PCIe cards joined in pairs by NVLink bridges
    "a100-80gb-160gb": "a100-80gb",
    "a100-80gb-320gb": "a100-80gb",
    "a100-80gb-640gb": "a100-80gb",
    "a100": "a100-40gb",
    "a100-40gb": "a100-40gb",
    "a100-40gb-320gb": "a100-40gb",
    "l40s": "l40s",
    "l40": "l40",
    "l4": "l4",
    "a10g": "a10g",
    "a10": "a10",
    "t4": "t4",
    "a6000": "rtx-a6000",  # SkyPilot's A6000 is the 48 GB RTX A6000; "RTX6000" is the Turing Quadro RTX 6000
    "rtxa6000": "rtx-a6000",
    "rtx-a6000": "rtx-a6000",
    "rtx3090": "rtx-3090",
    "rtx-3090": "rtx-3090",
    "rtx4090": "rtx-4090",
    "rtx-4090": "rtx-4090",
    "rtx5090": "rtx-5090",
    "rtx-5090": "rtx-5090",
    "rtx6000ada": "rtx-6000-ada",
    "rtx-6000-ada": "rtx-6000-ada",
    "rtxpro6000": "rtx-pro-6000",
    "rtx-pro-6000": "rtx-pro-6000",
    "mi300x": "mi300x",
    "mi325x": "mi325x",
    "mi350x": "mi350x",
    "mi355x": "mi355x",
}
# Azure names the H100 NVL of its NCads H100 v5 series plain "H100" (see gpu_prices.README.md).
_AZURE_H100_NVL = re.compile(r"^Standard_NC\d+a\w*_H100_v5$")


def accelerator_slug(accelerator: str, instance_type: str = "") -> str | None:
    slug = _ACCELERATOR_SLUGS.get(accelerator.strip().lower())
    if slug == "h100-sxm" and "pcie" in instance_type.lower():
        return "h100-pcie"
    if slug == "h100-sxm" and _AZURE_H100_NVL.match(instance_type):
        return "h100-nvl"
    return slug


def parse_offer_row(row: dict[str, str], *, provider: str | None = None, source: str = "") -> OfferSpec:
    """One offer from our gpu_prices.csv or a SkyPilot vms.csv row (InstanceType, AcceleratorName, …)."""
    instance_type = row.get("instance_type") or row.get("InstanceType") or ""
    accelerator = row.get("accelerator") or row.get("AcceleratorName") or ""
    count = first_number(row.get("accelerator_count") or row.get("AcceleratorCount")) or 0
    return OfferSpec(
        provider=provider or row["provider"],
        instance_type=instance_type,
        accelerator=accelerator,
        gpu_slug=accelerator_slug(accelerator, instance_type),
        gpu_count=int(count),
        gpu_memory_gib=first_number(row.get("gpu_memory_gib")),
        vcpus=first_number(row.get("vcpus") or row.get("vCPUs")),
        memory_gib=first_number(row.get("memory_gib") or row.get("MemoryGiB")),
        region=row.get("region") or row.get("Region") or "",
        ondemand_usd_per_hour=first_number(row.get("ondemand_usd_per_hour") or row.get("Price")),
        spot_usd_per_hour=first_number(row.get("spot_usd_per_hour") or row.get("SpotPrice")),
        source=source or f"{row.get('source_path', '')}@{row.get('source_commit', '')}",
    )


def load_offers(data_dir: Path = DATA_DIR) -> list[OfferSpec]:
    return [parse_offer_row(row) for row in _rows(data_dir / "gpu_prices.csv")]


def load_api_prices(data_dir: Path = DATA_DIR) -> list[ApiPriceSpec]:
    specs = []
    for row in _rows(data_dir / "api_prices.csv"):
        input_price = first_number(row["input_usd_per_Mtok"])
        output_price = first_number(row["output_usd_per_Mtok"])
        if input_price is None or output_price is None:
            continue
        specs.append(
            ApiPriceSpec(
                provider=row["provider"],
                model=row["model"],
                input_usd_per_mtok=input_price,
                output_usd_per_mtok=output_price,
                snapshot_date=row["snapshot_date"],
                source=row["source_url"],
                notes=" ".join(
                    filter(None, [row["notes"], row["input_usd_per_Mtok"], row["output_usd_per_Mtok"]])
                ),
                model_slug=row.get("model_slug") or "",
            )
        )
    return specs


@dataclass(frozen=True)
class CatalogSnapshot:
    """Everything the planner reads from the catalog, with a version string that recommendations record."""

    version: str
    gpus: tuple[GpuSpec, ...]
    models: tuple[ModelSpec, ...]
    quantizations: tuple[QuantSpec, ...]
    offers: tuple[OfferSpec, ...]
    api_prices: tuple[ApiPriceSpec, ...]

    def gpu(self, slug: str) -> GpuSpec:
        return _by_slug(self.gpus, slug, "GPU")

    def model(self, slug: str) -> ModelSpec:
        return _by_slug(self.models, slug, "model")

    def quantization(self, slug: str) -> QuantSpec:
        return _by_slug(self.quantizations, slug, "quantization")


_Spec = TypeVar("_Spec", GpuSpec, ModelSpec, QuantSpec)


def _by_slug(items: tuple[_Spec, ...], slug: str, kind: str) -> _Spec:
    for item in items:
        if item.slug == slug:
            return item
    known = ", ".join(sorted(item.slug for item in items))
    raise KeyError(f"unknown {kind} {slug!r}; known: {known}")


def load_snapshot(data_dir: Path = DATA_DIR) -> CatalogSnapshot:
    """The shipped catalog straight from the CSV files (the database copy is built from the same rows)."""
    return CatalogSnapshot(
        version="shipped",
        gpus=tuple(load_gpus(data_dir)),
        models=tuple(load_models(data_dir)),
        quantizations=tuple(load_quantizations(data_dir)),
        offers=tuple(load_offers(data_dir)),
        api_prices=tuple(load_api_prices(data_dir)),
    )
