"""The performance model: memory fit, roofline step times, steady-state throughput and a continuous-batching
simulation. Pure Python and NumPy; no Django.

Units: bytes, seconds and FLOPs inside; names say when something is in GB, GiB, ms or per second. A "replica" is
one engine instance spread over `tp` GPUs; every per-GPU figure assumes tensor parallelism splits weights, KV
heads and FLOPs evenly.

Every figure this module returns is a prediction: it carries `source="predicted"`, the calibration key of the
efficiencies it used and their relative error band (see apps/planner/calibration.py for where they come from).
"""

from __future__ import annotations

import copy
import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from apps.catalog.specs import GpuSpec, ModelSpec, QuantSpec
from workers.engines import ENGINE_NAMES, ENGINES

GIB = 1024**3
Source = Literal["predicted", "measured"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TP_DEGREES = (1, 2, 4, 8)
_ACTIVATION_BYTES = 2.0  # activations and all-reduce payloads travel in 16-bit


class UnsupportedCombination(ValueError):
    """A deployment that cannot run at all; `reason` is a stable code the planner groups rejections by."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class EngineProfile:
    """Runtime traits of an engine that are configuration, not efficiency (those are calibrated).

    `max_num_seqs` is the batch limit the project deploys with (workers.engines.ServeConfig passes 256 to the
    engines that take one); `offline_max_num_seqs` is the engine's own default, which offline benchmarks run
    with. `token_budget` is the per-step token limit that chunked prefill shares with decodes (see
    default_token_budget for engines that size it by GPU).
    """

    name: str
    memory_fraction: float
    # TRT-LLM's kv_cache_free_gpu_memory_fraction counts the memory left after weights, not the total.
    memory_fraction_of_free: bool
    max_num_seqs: int
    offline_max_num_seqs: int
    token_budget: int
    runtime_overhead_gib: float  # CUDA context, CUDA graphs, allocator slack, per GPU


ENGINE_PROFILES: dict[str, EngineProfile] = {
    "vllm": EngineProfile("vllm", 0.90, False, 256, 1024, 8192, 1.5),
    "sglang": EngineProfile("sglang", 0.90, False, 256, 1024, 8192, 1.5),
    "trtllm": EngineProfile("trtllm", 0.90, True, 256, 2048, 8192, 1.5),
    "tgi": EngineProfile("tgi", 0.90, False, 256, 256, 4096, 1.5),
    # llama.cpp allocates exactly the context it is given (-c); one slot per parallel sequence.
    "llamacpp": EngineProfile("llamacpp", 0.95, False, 16, 16, 2048, 0.5),
    "transformers": EngineProfile("transformers", 0.85, False, 32, 32, 2048, 1.0),
}
assert set(ENGINE_PROFILES) == set(ENGINE_NAMES)


@dataclass(frozen=True)
class Efficiency:
    """Calibrated (or prior) efficiencies for one (engine, GPU architecture, quantization).

    mbu: achieved fraction of peak memory bandwidth when the linear layers stream weights.
    mfu: achieved fraction of peak dense tensor throughput for matmuls and prefill attention.
    step_overhead_ms: fixed scheduler, sampling and launch cost per engine step.
    attention_mbu: fraction of peak bandwidth decode attention reaches streaming the KV cache (long contiguous
        reads, so usually above mbu).
    error_band_rel: relative (±) error of output throughput predicted with these values.
    basis: "fitted" (least squares on this key's data), "transferred" (fitted on a neighbouring key), "prior".
    """

    mbu: float
    mfu: float
    step_overhead_ms: float
    attention_mbu: float
    calibration_key: str
    basis: str
    error_band_rel: float
    n_points: int = 0


@dataclass(frozen=True)
class Provenance:
    """Where a figure comes from: every result of this module carries one."""

    source: Source
    calibration_key: str
    error_band_rel: float
    basis: str

    @classmethod
    def of(cls, eff: Efficiency) -> Provenance:
        return cls("predicted", eff.calibration_key, eff.error_band_rel, eff.basis)


@dataclass(frozen=True)
class Deployment:
    """One replica: a model on `tp` GPUs of one type with one engine and quantization."""

    model: ModelSpec
    gpu: GpuSpec
    quant: QuantSpec
    engine: str
    tp: int = 1
    max_num_seqs: int | None = None  # None: the engine profile's serving default
    token_budget: int | None = None
    kv_bytes_per_element: float | None = None  # None: the engine's default for this quantization
    memory_fraction: float | None = None

    @property
    def profile(self) -> EngineProfile:
        return ENGINE_PROFILES[self.engine]


def default_token_budget(engine: str, gpu: GpuSpec) -> int:
    """Per-step token budget the engine picks itself (the project does not override it).

    vLLM's OpenAI server takes 8192 on GPUs with at least 70 GiB that are not A100s and 2048 elsewhere
    (vllm/engine/arg_utils.py, default_max_num_batched_tokens); SGLang sizes chunked_prefill_size by GPU memory
    (approximated here: 2048 below 35 GB, 4096 below 60 GB, else 8192).
    """
    if engine == "vllm":
        large = gpu.memory_gb * 1e9 >= 70 * GIB and "a100" not in gpu.slug
        return 8192 if large else 2048
    if engine == "sglang":
        return 2048 if gpu.memory_gb < 35 else 4096 if gpu.memory_gb < 60 else 8192
    return ENGINE_PROFILES[engine].token_budget if engine in ENGINE_PROFILES else 2048


def accelerator_kind(gpu: GpuSpec) -> str:
    if gpu.is_cpu:
        return "cpu"
    if gpu.architecture == "cdna3" or gpu.vendor.upper().startswith("AMD"):
        return "rocm"
    return "cuda"


def calibration_key(engine: str, gpu: GpuSpec, quant: QuantSpec) -> str:
    return f"{engine}/{gpu.architecture}/{quant.slug}"


def compute_tflops(gpu: GpuSpec, quant: QuantSpec) -> float | None:
    """Dense tensor TFLOPS at the precision the quantization computes in (weight-only int4 computes in fp16)."""
    by_dtype = {
        "bf16": gpu.bf16_tflops,
        "fp16": gpu.fp16_tflops,
        "fp8": gpu.fp8_tflops,
        "int8": gpu.int8_tops,
        "fp4": gpu.fp4_tflops,
    }
    return by_dtype.get(quant.compute_dtype)


_FP8_FAMILIES = frozenset({"hopper", "ada", "blackwell", "cdna3"})


def check_supported(dep: Deployment) -> None:
    """Raise UnsupportedCombination naming why this deployment cannot run; return quietly when it can."""
    engine, gpu, quant, model = dep.engine, dep.gpu, dep.quant, dep.model
    if engine not in ENGINES:
        raise UnsupportedCombination(
            "unknown_engine", f"unknown engine {engine!r}; known: {', '.join(ENGINE_NAMES)}"
        )
    definition = ENGINES[engine]
    if quant.slug not in definition.quantizations or engine not in quant.engines:
        raise UnsupportedCombination(
            "engine_cannot_serve_quant",
            f"{definition.display_name} cannot serve {quant.slug}; it serves {', '.join(definition.quantizations)}",
        )
    accelerator = accelerator_kind(gpu)
    if accelerator not in definition.accelerators:
        raise UnsupportedCombination(
            "engine_cannot_run_on_accelerator",
            f"{definition.display_name} does not run on {accelerator} ({gpu.slug}); "
            f"it runs on {', '.join(definition.accelerators)}",
        )
    family = gpu.architecture
    if quant.compute_dtype == "fp8" and family not in _FP8_FAMILIES:
        raise UnsupportedCombination(
            "precision_unsupported",
            f"{quant.slug} needs FP8 tensor cores (Hopper, Ada, Blackwell, CDNA3); {gpu.slug} is {family}",
        )
    if quant.compute_dtype == "fp4" and family != "blackwell":
        raise UnsupportedCombination(
            "precision_unsupported",
            f"{quant.slug} needs FP4 tensor cores (Blackwell); {gpu.slug} is {family}",
        )
    if quant.compute_dtype == "bf16" and (family == "turing" or gpu.bf16_tflops is None):
        raise UnsupportedCombination("precision_unsupported", f"{gpu.slug} ({family}) has no BF16 support")
    if accelerator == "cuda" and gpu.compute_capability < quant.min_compute_capability:
        raise UnsupportedCombination(
            "precision_unsupported",
            f"{quant.slug} needs compute capability {quant.min_compute_capability}; "
            f"{gpu.slug} has {gpu.compute_capability}",
        )
    if compute_tflops(gpu, quant) is None:
        raise UnsupportedCombination(
            "precision_unsupported", f"{gpu.slug} lists no {quant.compute_dtype} throughput for {quant.slug}"
        )
    if dep.tp < 1 or dep.tp > 8:
        raise UnsupportedCombination("invalid_parallelism", f"tensor parallelism {dep.tp} outside 1..8")
    if gpu.is_cpu and dep.tp != 1:
        raise UnsupportedCombination(
            "invalid_parallelism", "the cpu accelerator runs one replica per host (tp 1)"
        )
    if engine != "llamacpp" and model.attention_heads % dep.tp:
        raise UnsupportedCombination(
            "invalid_parallelism",
            f"{model.slug} has {model.attention_heads} attention heads, not divisible by tp {dep.tp}",
        )


def default_kv_bytes_per_element(engine: str, quant: QuantSpec) -> float:
    """KV cache element size an engine uses by default with this quantization.

    TRT-LLM follows the checkpoint's kv_cache_quant_algo, and NVIDIA's ModelOpt FP8/FP4 checkpoints ship an FP8
    KV cache; the published NIM Llama-3.3-70B point at concurrency 250 sustains ~86 sequences on 2x H100, which
    only an FP8 cache leaves room for. vLLM, SGLang and TGI default to the model dtype ("auto").
    """
    if engine == "trtllm" and quant.compute_dtype in {"fp8", "fp4"}:
        return 1.0
    return quant.kv_bytes_per_element


@dataclass(frozen=True)
class MemoryFit:
    fits: bool
    tp: int
    memory_per_gpu_gb: float
    usable_per_gpu_gb: float  # after the engine's memory fraction
    weights_per_gpu_gb: float
    runtime_per_gpu_gb: float  # activations, CUDA graphs, context
    kv_cache_per_gpu_gb: float
    kv_bytes_per_token: float  # whole replica, all layers, K and V
    kv_capacity_tokens: int
    context_tokens: int
    max_concurrent_sequences: int
    need_gb: float  # whole replica, to hold one sequence of context_tokens
    have_gb: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "need_gb": round(self.need_gb, 2),
            "have_gb": round(self.have_gb, 2),
            "weights_per_gpu_gb": round(self.weights_per_gpu_gb, 2),
            "runtime_per_gpu_gb": round(self.runtime_per_gpu_gb, 2),
            "kv_cache_per_gpu_gb": round(self.kv_cache_per_gpu_gb, 2),
            "kv_capacity_tokens": self.kv_capacity_tokens,
            "context_tokens": self.context_tokens,
            "max_concurrent_sequences": self.max_concurrent_sequences,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Interconnect:
    latency_s: float  # fixed cost of one all-reduce
    bus_bytes_per_s: float  # achievable one-way bandwidth per GPU


def interconnect_for(gpu: GpuSpec, tp: int) -> Interconnect:
    """All-reduce cost model per interconnect class (priors, not fitted: the calibration set has one class).

    interconnect_gbps is bidirectional per GPU; a ring all-reduce moves data one way at ~75% of that half.
    NVLink bridges join pairs only, so tp > 2 on bridged PCIe cards falls back to PCIe.
    """
    text = gpu.interconnect.lower()
    one_way = gpu.interconnect_gbps * 1e9 / 2
    if "nvlink" in text and ("bridge" not in text or tp <= 2):
        return Interconnect(latency_s=10e-6, bus_bytes_per_s=0.75 * one_way)
    if "infinity fabric" in text:
        return Interconnect(latency_s=15e-6, bus_bytes_per_s=0.75 * one_way)
    pcie_one_way = (64e9 if "gen5" in text else 32e9) / 2 if "bridge" in text else one_way
    return Interconnect(latency_s=25e-6, bus_bytes_per_s=0.75 * max(pcie_one_way, 8e9))


@dataclass(frozen=True)
class PerfModel:
    """Precomputed per-GPU coefficients of one deployment with one set of efficiencies.

    step_s() is the only place step time is defined; the steady-state formulas and the simulation both use it,
    so calibrated efficiencies mean the same thing everywhere.
    """

    deployment: Deployment
    efficiency: Efficiency
    memory: MemoryFit
    max_num_seqs: int
    token_budget: int
    shared_weight_bytes: float  # per GPU, read every step
    expert_weight_bytes: float  # per GPU per expert (MoE only)
    num_experts: int
    experts_per_token: int
    linear_flops_per_token: float  # per GPU
    attn_flops_per_pair: float  # per GPU, per (query token, context token) pair
    kv_bytes_per_token_gpu: float
    bandwidth_bytes_per_s: float  # effective for weights: peak x MBU
    kv_bandwidth_bytes_per_s: float  # effective for KV reads: peak x attention MBU
    compute_flops_per_s: float  # effective: peak x MFU
    comm_fixed_s: float  # per step, all layers
    comm_per_token_s: float
    overhead_s: float

    def weight_bytes_read(self, n_tokens: int) -> float:
        if not self.num_experts:
            return self.shared_weight_bytes
        # Each token routes to k of E experts; a step touches E·(1 - (1 - k/E)^n) of them in expectation.
        untouched = (1.0 - self.experts_per_token / self.num_experts) ** max(n_tokens, 1)
        return self.shared_weight_bytes + self.expert_weight_bytes * self.num_experts * (1.0 - untouched)

    def step_s(
        self, n_decode: int, decode_context_tokens: float, n_prefill: int, prefill_attn_pairs: float
    ) -> float:
        """Duration of one engine step: decodes of n_decode sequences (holding decode_context_tokens of KV in
        total) plus n_prefill prompt tokens whose attention spans prefill_attn_pairs (query, key) pairs."""
        n_tokens = n_decode + n_prefill
        if n_tokens <= 0:
            return 0.0
        weights = self.weight_bytes_read(n_tokens) if self.num_experts else self.shared_weight_bytes
        # Linear layers stream the weights once per step and turn compute-bound when the batch is large. Near
        # the ridge point a GEMM reaches neither roof; the quadratic blend of the two times models that knee.
        linear_s = math.hypot(
            weights / self.bandwidth_bytes_per_s,
            self.linear_flops_per_token * n_tokens / self.compute_flops_per_s,
        )
        return (
            self.overhead_s
            + linear_s
            + decode_context_tokens * self.kv_bytes_per_token_gpu / self.kv_bandwidth_bytes_per_s
            + prefill_attn_pairs * self.attn_flops_per_pair / self.compute_flops_per_s
            + self.comm_fixed_s
            + self.comm_per_token_s * n_tokens
        )

    def step_s_array(
        self,
        n_decode: int,
        decode_context_tokens: float,
        n_prefill: FloatArray,
        prefill_attn_pairs: FloatArray,
    ) -> FloatArray:
        """step_s over arrays of prefill chunks (same formula, vectorised)."""
        n_tokens = n_decode + n_prefill
        if self.num_experts:
            untouched = (1.0 - self.experts_per_token / self.num_experts) ** np.maximum(n_tokens, 1.0)
            weights = self.shared_weight_bytes + self.expert_weight_bytes * self.num_experts * (
                1.0 - untouched
            )
        else:
            weights = np.full_like(n_tokens, self.shared_weight_bytes)
        linear_s = np.hypot(
            weights / self.bandwidth_bytes_per_s,
            self.linear_flops_per_token * n_tokens / self.compute_flops_per_s,
        )
        result: FloatArray = (
            self.overhead_s
            + linear_s
            + decode_context_tokens * self.kv_bytes_per_token_gpu / self.kv_bandwidth_bytes_per_s
            + prefill_attn_pairs * self.attn_flops_per_pair / self.compute_flops_per_s
            + self.comm_fixed_s
            + self.comm_per_token_s * n_tokens
        )
        return result

    def scaled(self, mbu: float, mfu: float, step_overhead_ms: float, attention_mbu: float) -> PerfModel:
        """A copy whose efficiencies are multiplied in (the calibration fit varies them on fixed geometry)."""
        twin = copy.copy(self)
        object.__setattr__(twin, "bandwidth_bytes_per_s", self.bandwidth_bytes_per_s * mbu)
        object.__setattr__(twin, "compute_flops_per_s", self.compute_flops_per_s * mfu)
        object.__setattr__(twin, "kv_bandwidth_bytes_per_s", self.kv_bandwidth_bytes_per_s * attention_mbu)
        object.__setattr__(twin, "overhead_s", step_overhead_ms / 1e3)
        return twin

    def max_concurrent_sequences(self, context_tokens: float) -> int:
        if context_tokens <= 0:
            return self.max_num_seqs
        return max(0, min(self.max_num_seqs, int(self.memory.kv_capacity_tokens // context_tokens)))


def _expert_split(model: ModelSpec) -> tuple[float, float]:
    """(shared params, params per expert) from total and active counts: total = S + E·X, active = S + k·X."""
    total = model.params_total_b * 1e9
    if model.architecture_type != "moe" or model.num_experts <= model.experts_per_token:
        return total, 0.0
    per_expert = (total - model.params_active_b * 1e9) / (model.num_experts - model.experts_per_token)
    return total - model.num_experts * per_expert, per_expert


def kv_bytes_per_token_gpu(model: ModelSpec, tp: int, kv_bytes_per_element: float) -> float:
    # KV heads split across GPUs; with more GPUs than KV heads each GPU keeps a replicated head.
    heads_per_gpu = math.ceil(model.kv_heads / tp)
    return 2.0 * model.layers * heads_per_gpu * model.head_dim * kv_bytes_per_element


def memory_fit(dep: Deployment, context_tokens: int, *, max_num_seqs: int | None = None) -> MemoryFit:
    """Does the replica hold the weights plus the KV cache of one sequence of `context_tokens`?"""
    model, gpu, quant, profile, tp = dep.model, dep.gpu, dep.quant, dep.profile, dep.tp
    kv_elem = dep.kv_bytes_per_element or default_kv_bytes_per_element(dep.engine, quant)
    budget_tokens = dep.token_budget or default_token_budget(dep.engine, gpu)
    seqs = max_num_seqs or dep.max_num_seqs or profile.max_num_seqs
    fraction = dep.memory_fraction or profile.memory_fraction

    memory = gpu.memory_bytes
    weights = (
        model.params_total_b * 1e9 * quant.weight_bytes_per_param / tp
    )  # MoE: every expert stays resident
    # Peak activations of one step at the token budget (hidden states, MLP intermediates) plus fp32 logits for
    # the sampled positions; CUDA graphs and context are the engine's fixed overhead.
    activations = budget_tokens * (4 * model.hidden + 2 * model.intermediate / tp) * _ACTIVATION_BYTES
    activations += seqs * model.vocab / tp * 4.0
    runtime = profile.runtime_overhead_gib * GIB + activations
    if profile.memory_fraction_of_free:
        usable = memory - weights - runtime
        kv = max(0.0, usable * fraction)
        usable_gb = (weights + runtime + kv) / 1e9
    else:
        usable = memory * fraction
        kv = max(0.0, usable - weights - runtime)
        usable_gb = usable / 1e9
    kv_tok_gpu = kv_bytes_per_token_gpu(model, tp, kv_elem)
    capacity = int(kv // kv_tok_gpu) if kv_tok_gpu else 0
    one_sequence = context_tokens * kv_tok_gpu
    need_gb = (weights + runtime + one_sequence) * tp / 1e9
    have_gb = usable_gb * tp
    fits = capacity >= context_tokens and weights + runtime < usable_gb * 1e9
    if fits:
        reason = ""
    elif weights + runtime >= usable_gb * 1e9:
        reason = (
            f"does not fit: weights need {weights * tp / 1e9:.1f} GB + runtime {runtime * tp / 1e9:.1f} GB, "
            f"have {have_gb:.1f} GB ({tp}x {gpu.memory_gb:g} GB x {fraction:.2f})"
        )
    else:
        reason = (
            f"does not fit: one {context_tokens}-token sequence needs {one_sequence * tp / 1e9:.2f} GB of KV cache, "
            f"{kv * tp / 1e9:.2f} GB left after {weights * tp / 1e9:.1f} GB of weights (need {need_gb:.1f} GB, "
            f"have {have_gb:.1f} GB)"
        )
    return MemoryFit(
        fits=fits,
        tp=tp,
        memory_per_gpu_gb=memory / 1e9,
        usable_per_gpu_gb=usable_gb,
        weights_per_gpu_gb=weights / 1e9,
        runtime_per_gpu_gb=runtime / 1e9,
        kv_cache_per_gpu_gb=kv / 1e9,
        kv_bytes_per_token=kv_tok_gpu * tp,
        kv_capacity_tokens=capacity,
        context_tokens=context_tokens,
        max_concurrent_sequences=min(seqs, capacity // max(context_tokens, 1)),
        need_gb=need_gb,
        have_gb=have_gb,
        reason=reason,
    )


def build_perf_model(
    dep: Deployment, eff: Efficiency, *, context_tokens: int, max_num_seqs: int | None = None
) -> PerfModel:
    """Coefficients for step_s(); raises UnsupportedCombination if the deployment cannot run at all."""
    check_supported(dep)
    model, gpu, quant, tp = dep.model, dep.gpu, dep.quant, dep.tp
    seqs = max_num_seqs or dep.max_num_seqs or dep.profile.max_num_seqs
    fit = memory_fit(dep, context_tokens, max_num_seqs=seqs)
    peak_flops = (compute_tflops(gpu, quant) or 0.0) * 1e12
    shared_params, expert_params = _expert_split(model)
    wb = quant.weight_bytes_per_param
    kv_elem = dep.kv_bytes_per_element or default_kv_bytes_per_element(dep.engine, quant)
    if tp > 1:
        link = interconnect_for(gpu, tp)
        all_reduces = 2 * model.layers  # after attention and after the MLP, every layer, every step
        comm_fixed = all_reduces * link.latency_s
        ring_factor = 2.0 * (tp - 1) / tp
        comm_per_token = all_reduces * ring_factor * model.hidden * _ACTIVATION_BYTES / link.bus_bytes_per_s
    else:
        comm_fixed = comm_per_token = 0.0
    return PerfModel(
        deployment=dep,
        efficiency=eff,
        memory=fit,
        max_num_seqs=seqs,
        token_budget=dep.token_budget or default_token_budget(dep.engine, gpu),
        shared_weight_bytes=shared_params * wb / tp,
        expert_weight_bytes=expert_params * wb / tp,
        num_experts=model.num_experts if expert_params else 0,
        experts_per_token=model.experts_per_token,
        linear_flops_per_token=2.0 * model.params_active_b * 1e9 / tp,
        attn_flops_per_pair=4.0 * model.layers * model.attention_heads * model.head_dim / tp,
        kv_bytes_per_token_gpu=kv_bytes_per_token_gpu(model, tp, kv_elem),
        bandwidth_bytes_per_s=gpu.memory_bandwidth_tbps * 1e12 * eff.mbu,
        kv_bandwidth_bytes_per_s=gpu.memory_bandwidth_tbps * 1e12 * eff.attention_mbu,
        compute_flops_per_s=peak_flops * eff.mfu,
        comm_fixed_s=comm_fixed,
        comm_per_token_s=comm_per_token,
        overhead_s=eff.step_overhead_ms / 1e3,
    )


# --------------------------------------------------------------------------------------------------------------
# Steady state: closed-form averages over engine steps (used for fixed lengths and for calibration)


@dataclass(frozen=True)
class SteadyState:
    output_tokens_per_s: float  # one replica
    ttft_ms: float  # includes waiting for a free slot in closed loop; offline: from admission
    tpot_ms: float  # mean time per output token after the first
    batch: int  # sequences decoding together
    max_concurrent_sequences: int
    bound: str  # what limits the batch: "kv_cache", "max_num_seqs", "token_budget" or "concurrency"
    provenance: Provenance


def _mixed_step(perf: PerfModel, batch: int, context: float, isl: float, osl: float, others: float) -> float:
    """Mean step time while `batch` sequences decode and `others` of them bring prompts through chunked prefill.

    In steady state each step carries on average others·isl/osl prompt tokens. A step that carries prefill
    holds at most the token budget left after the decodes, so prefill arrives as discrete chunk-steps: a fraction
    q of steps is a chunk-step, the rest decode only.
    """
    decode_s = perf.step_s(batch, batch * context, 0, 0.0)
    prefill_per_step = others * isl / max(osl, 1.0)
    if prefill_per_step <= 0:
        return decode_s
    room = max(perf.token_budget - batch, 1)
    chunk = min(room, max(isl, prefill_per_step))
    share = min(1.0, prefill_per_step / chunk)
    chunk_s = perf.step_s(batch, batch * context, int(chunk), chunk * isl / 2.0)
    return (1.0 - share) * decode_s + share * chunk_s


def _prefill_service_s(perf: PerfModel, batch: int, context: float, isl: float) -> tuple[float, float]:
    """(time to prefill one prompt of isl tokens while `batch` sequences decode, duration of one chunk-step)."""
    room = max(perf.token_budget - batch, 1)
    chunk = min(room, isl)
    steps = math.ceil(isl / chunk)
    chunk_s = perf.step_s(batch, batch * context, int(chunk), chunk * isl / 2.0)
    return steps * chunk_s, chunk_s


def steady_state(perf: PerfModel, isl: int, osl: int, concurrency: int | None = None) -> SteadyState:
    """Throughput and latency with fixed lengths: closed loop at `concurrency`, or offline (None: all queued).

    Offline TTFT is measured from admission (the wait for a free slot depends only on how many requests were
    queued, which the benchmark chooses).
    """
    context_total = isl + osl
    cap = perf.max_concurrent_sequences(context_total)
    if cap < 1:
        return SteadyState(0.0, math.inf, math.inf, 0, 0, "kv_cache", Provenance.of(perf.efficiency))
    # Decodes plus the prompts that keep them fed must fit the step token budget.
    budget_cap = max(1, int(perf.token_budget * osl / context_total))
    limits = {"kv_cache" if cap < perf.max_num_seqs else "max_num_seqs": cap, "token_budget": budget_cap}
    if concurrency is not None:
        limits["concurrency"] = concurrency
    bound = min(limits, key=lambda k: limits[k])
    batch = max(1, limits[bound])
    context = isl + osl / 2.0
    others = batch - 1
    tpot_s = _mixed_step(perf, batch, context, isl, osl, others)
    service_s, chunk_s = _prefill_service_s(perf, batch, context, isl)
    # Own prefill waits behind other prompts in flight: M/D/1 mean wait at the share of chunk-steps.
    room = max(perf.token_budget - batch, 1)
    share = min(0.95, others * isl / max(osl, 1) / min(room, max(isl, others * isl / max(osl, 1), 1.0)))
    wait_s = share * chunk_s / (2.0 * (1.0 - share)) if others else 0.0
    ttft_s = service_s + wait_s
    e2e_s = ttft_s + (osl - 1) * tpot_s
    tokens_per_s = batch * osl / e2e_s
    if concurrency is not None and concurrency > batch:
        # Closed loop beyond capacity: the extra requests queue; Little's law gives their wait.
        ttft_s += (concurrency - batch) * e2e_s / batch
    return SteadyState(
        output_tokens_per_s=tokens_per_s,
        ttft_ms=ttft_s * 1e3,
        tpot_ms=tpot_s * 1e3,
        batch=batch,
        max_concurrent_sequences=cap,
        bound=bound,
        provenance=Provenance.of(perf.efficiency),
    )


# --------------------------------------------------------------------------------------------------------------
# Length distributions


@dataclass(frozen=True)
class LengthStats:
    """A token-length distribution as a workload states it."""

    mean: float
    p50: float
    p95: float
    max: int

    def __post_init__(self) -> None:
        if not (0 < self.p50 <= self.p95 <= self.max):
            raise ValueError(f"lengths must satisfy 0 < p50 <= p95 <= max, got {self}")
        if not 0 < self.mean <= self.max:
            raise ValueError(f"mean length must be within (0, max], got {self}")


_Z95 = NormalDist().inv_cdf(0.95)


@lru_cache(maxsize=256)
def _quantile_grid(n: int) -> tuple[float, ...]:
    normal = NormalDist()
    return tuple(normal.inv_cdf((i + 0.5) / n) for i in range(n))


@lru_cache(maxsize=256)
def _lognormal_sigma(stats: LengthStats) -> float:
    """Lognormal through p50 with the sigma that best matches p95 and the clipped mean together.

    p50 fixes mu. p95 alone gives one sigma; the stated mean, after clipping at max, another. Taking the
    sigma that minimises the summed squared relative errors keeps both percentiles close and moves the mean
    toward the stated one where the two agree.
    """
    if stats.p95 <= stats.p50:
        return 0.0
    mu = math.log(stats.p50)
    z = np.asarray(_quantile_grid(400))
    sigma_p95 = (math.log(stats.p95) - mu) / _Z95
    candidates = np.linspace(0.5 * sigma_p95, 1.5 * sigma_p95, 41)
    best, best_err = sigma_p95, math.inf
    for sigma in candidates:
        values = np.minimum(np.exp(mu + sigma * z), stats.max)
        p95_err = (math.exp(mu + sigma * _Z95) - stats.p95) / stats.p95
        mean_err = (float(values.mean()) - stats.mean) / stats.mean
        err = p95_err**2 + mean_err**2
        if err < best_err:
            best, best_err = float(sigma), err
    return best


def sample_lengths(stats: LengthStats, n: int, rng: np.random.Generator) -> IntArray:
    """n lengths from the fitted lognormal, stratified over quantiles (low variance), clipped to [1, max],
    in random order."""
    sigma = _lognormal_sigma(stats)
    z = np.asarray(_quantile_grid(n))
    values = np.clip(np.rint(np.exp(math.log(stats.p50) + sigma * z)), 1, stats.max).astype(np.int64)
    rng.shuffle(values)
    return values


def length_quantile(stats: LengthStats, q: float) -> float:
    sigma = _lognormal_sigma(stats)
    z = NormalDist().inv_cdf(min(max(q, 1e-6), 1 - 1e-6))
    return float(min(stats.max, math.exp(math.log(stats.p50) + sigma * z)))


# --------------------------------------------------------------------------------------------------------------
# Continuous-batching simulation


@dataclass(frozen=True)
class LoadSpec:
    """How requests arrive: Poisson at `rate_per_s`, a closed loop of `concurrency` clients, or all at once."""

    mode: Literal["poisson", "closed", "offline"]
    rate_per_s: float = 0.0
    concurrency: int = 0


@dataclass(frozen=True)
class SimResult:
    ttft_ms: dict[str, float]  # p50 p95 p99
    itl_ms: dict[str, float]  # pooled over every token gap
    tpot_ms: dict[str, float]  # per request mean gap
    output_tokens_per_s: float
    requests_per_s: float
    completed: int
    mean_batch: float
    peak_waiting: int
    provenance: Provenance


@dataclass
class RequestSet:
    """Fixed request samples shared by every deployment evaluated for one workload (common random numbers)."""

    isl: IntArray
    osl: IntArray
    unit_gaps: FloatArray  # exponential(1) inter-arrival gaps; divided by the rate for Poisson arrivals

    @classmethod
    def draw(cls, prompt: LengthStats, output: LengthStats, n: int, seed: int = 0) -> RequestSet:
        rng = np.random.default_rng(seed)
        return cls(
            isl=sample_lengths(prompt, n, rng),
            osl=sample_lengths(output, n, rng),
            unit_gaps=rng.exponential(1.0, n),
        )

    @classmethod
    def fixed(cls, isl: int, osl: int, n: int, seed: int = 0) -> RequestSet:
        rng = np.random.default_rng(seed)
        return cls(
            isl=np.full(n, isl, dtype=np.int64),
            osl=np.full(n, osl, dtype=np.int64),
            unit_gaps=rng.exponential(1.0, n),
        )

    def __len__(self) -> int:
        return len(self.isl)

    def head(self, n: int) -> RequestSet:
        return RequestSet(self.isl[:n], self.osl[:n], self.unit_gaps[:n])


def _weighted_percentiles(values: list[float], weights: list[float], qs: tuple[float, ...]) -> list[float]:
    if not values:
        return [0.0 for _ in qs]
    v = np.asarray(values)
    w = np.asarray(weights)
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    total = cum[-1]
    return [float(v[order][min(int(np.searchsorted(cum, q * total)), len(v) - 1)]) for q in qs]


def _percentiles(values: FloatArray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def simulate(
    perf: PerfModel, requests: RequestSet, load: LoadSpec, *, warmup_fraction: float = 0.1
) -> SimResult:
    """Continuous batching with KV-limited admission and chunked prefill, advanced event by event.

    Each step runs every admitted decode plus prompt chunks (FIFO) up to the token budget. Runs of decode-only
    steps between events (arrival, completion) are advanced in one go, so the cost is O(requests) rather than
    O(steps). KV is reserved for prompt + output at admission (no preemption), as TRT-LLM's default
    scheduler does; engines that page on demand admit somewhat more.
    """
    n = len(requests)
    isl = requests.isl.tolist()
    osl = requests.osl.tolist()
    need = [a + b for a, b in zip(isl, osl, strict=True)]
    kv_cap = perf.memory.kv_capacity_tokens
    max_seqs = perf.max_num_seqs
    budget = perf.token_budget
    step = perf.step_s

    if load.mode == "poisson":
        if load.rate_per_s <= 0:
            raise ValueError("poisson load needs a positive rate")
        arrivals = np.cumsum(requests.unit_gaps / load.rate_per_s).tolist()
    else:
        arrivals = [0.0] * n
    t_arrival = list(arrivals)
    t_first = [math.nan] * n
    t_done = [math.nan] * n
    joined = [0] * n  # decode-step counter when each request started decoding

    waiting: deque[int] = deque()
    if load.mode == "closed":
        issued = min(load.concurrency, n)
        waiting.extend(range(issued))
        next_arrival = n  # no external arrivals: a completion issues the next request
    else:
        issued = n
        next_arrival = 0
    prefilling: deque[list[int]] = deque()  # [request, prompt tokens done]
    running: list[tuple[int, int]] = []  # heap of (decode step at which it finishes, request)
    n_run = 0
    ctx_base = 0.0  # context of decoding sequences = ctx_base + n_run * decode_steps
    decode_steps = 0
    kv_used = 0
    t = 0.0
    done = 0
    itl_values: list[float] = []
    itl_weights: list[float] = []
    itl_times: list[float] = []
    batch_time = 0.0
    busy_time = 0.0
    peak_waiting = 0

    def finish(request: int, now: float) -> None:
        nonlocal kv_used, done, issued
        t_done[request] = now
        kv_used -= need[request]
        done += 1
        if load.mode == "closed" and issued < n:
            t_arrival[issued] = now
            waiting.append(issued)
            issued += 1

    while done < n:
        while next_arrival < n and arrivals[next_arrival] <= t:
            waiting.append(next_arrival)
            next_arrival += 1
        peak_waiting = max(peak_waiting, len(waiting))
        while waiting and n_run + len(prefilling) < max_seqs and kv_used + need[waiting[0]] <= kv_cap:
            request = waiting.popleft()
            kv_used += need[request]
            prefilling.append([request, 0])

        if prefilling:
            room = max(budget - n_run, budget // 8)
            tokens = 0
            pairs = 0.0
            finished_prefill: list[int] = []
            for entry in prefilling:
                if tokens >= room:
                    break
                request, done_tokens = entry
                chunk = min(isl[request] - done_tokens, room - tokens)
                pairs += chunk * (done_tokens + chunk / 2.0)
                tokens += chunk
                entry[1] = done_tokens + chunk
                if entry[1] >= isl[request]:
                    finished_prefill.append(request)
            context = ctx_base + n_run * decode_steps
            dt = step(n_run, context, tokens, pairs)
            t += dt
            busy_time += dt
            batch_time += n_run * dt
            if n_run:
                decode_steps += 1
                itl_values.append(dt)
                itl_weights.append(float(n_run))
                itl_times.append(t)
            while running and running[0][0] <= decode_steps:
                _, request = heapq.heappop(running)
                n_run -= 1
                ctx_base -= isl[request] - joined[request]
                finish(request, t)
            for request in finished_prefill:
                prefilling.popleft()
                t_first[request] = t
                if osl[request] <= 1:
                    finish(request, t)
                    continue
                heapq.heappush(running, (decode_steps + osl[request] - 1, request))
                joined[request] = decode_steps
                n_run += 1
                ctx_base += isl[request] - decode_steps
            continue

        if n_run:
            steps_left = running[0][0] - decode_steps
            if next_arrival < n:
                dt0 = step(n_run, ctx_base + n_run * decode_steps, 0, 0.0)
                steps_left = min(steps_left, max(1, math.ceil((arrivals[next_arrival] - t) / dt0)))
            dt = step(n_run, ctx_base + n_run * (decode_steps + steps_left / 2.0), 0, 0.0)
            t += steps_left * dt
            busy_time += steps_left * dt
            batch_time += n_run * steps_left * dt
            decode_steps += steps_left
            itl_values.append(dt)
            itl_weights.append(float(n_run * steps_left))
            itl_times.append(t)
            while running and running[0][0] <= decode_steps:
                _, request = heapq.heappop(running)
                n_run -= 1
                ctx_base -= isl[request] - joined[request]
                finish(request, t)
            continue

        if next_arrival < n:
            t = max(t, arrivals[next_arrival])
            continue
        if waiting:  # nothing running and the head cannot be admitted: it needs more KV than the replica has
            request = waiting.popleft()
            t_first[request] = t_done[request] = math.inf
            done += 1
            continue
        break  # pragma: no cover - every request is accounted for above

    first = np.asarray(t_first)
    finished_at = np.asarray(t_done)
    arrived = np.asarray(t_arrival)
    outputs = np.asarray(osl, dtype=np.float64)
    skip = int(n * warmup_fraction) if load.mode == "poisson" else 0
    measured = np.arange(n) >= skip
    ttft = (first - arrived)[measured] * 1e3
    multi = measured & (outputs > 1) & np.isfinite(finished_at)
    tpot = ((finished_at - first)[multi] / (outputs[multi] - 1)) * 1e3

    # Steady-state window: between the 20th and 80th percentile of completion times (excludes ramp and drain).
    finite_done = np.sort(finished_at[np.isfinite(finished_at)])
    if finite_done.size >= 5:
        w0, w1 = finite_done[int(0.2 * finite_done.size)], finite_done[int(0.8 * finite_done.size)]
    else:
        w0, w1 = 0.0, float(finite_done[-1]) if finite_done.size else 0.0
    if w1 <= w0:
        w0, w1 = 0.0, max(t, 1e-9)
    in_window = (finished_at >= w0) & (finished_at <= w1)
    span = w1 - w0
    out_tokens = float(outputs[in_window].sum())
    itl_start = arrived[skip] if skip < n else 0.0
    itl_end = arrived[:issued].max() if load.mode == "poisson" else w1
    keep = [i for i, when in enumerate(itl_times) if itl_start <= when <= max(itl_end, itl_start)]
    if not keep:
        keep = list(range(len(itl_times)))
    p50, p95, p99 = _weighted_percentiles(
        [itl_values[i] * 1e3 for i in keep], [itl_weights[i] for i in keep], (0.5, 0.95, 0.99)
    )
    return SimResult(
        ttft_ms=_percentiles(ttft[np.isfinite(ttft)]) if np.isfinite(ttft).all() else _inf_percentiles(),
        itl_ms={"p50": p50, "p95": p95, "p99": p99},
        tpot_ms=_percentiles(tpot),
        output_tokens_per_s=out_tokens / span if span > 0 else 0.0,
        requests_per_s=float(in_window.sum()) / span if span > 0 else 0.0,
        completed=int(np.isfinite(finished_at).sum()),
        mean_batch=batch_time / busy_time if busy_time else 0.0,
        peak_waiting=peak_waiting,
        provenance=Provenance.of(perf.efficiency),
    )


def _inf_percentiles() -> dict[str, float]:
    return {"p50": math.inf, "p95": math.inf, "p99": math.inf}


# --------------------------------------------------------------------------------------------------------------
# Capacity under an SLO


@dataclass(frozen=True)
class LatencySlo:
    ttft_p95_ms: float
    itl_p95_ms: float


@dataclass(frozen=True)
class RateSearch:
    max_rate_per_s: float  # highest Poisson rate found to hold the SLO (0: unreachable even when idle)
    ttft_p95_ms: float  # at that rate
    itl_p95_ms: float
    evaluations: int
    method: str  # "simulation" or "analytic"
    limit: str  # what fails first above max_rate: "ttft", "itl", or "" when unreachable
    idle_ttft_p95_ms: float
    idle_itl_p95_ms: float
    provenance: Provenance


def _holds(result: SimResult, slo: LatencySlo) -> bool:
    return result.ttft_ms["p95"] <= slo.ttft_p95_ms and result.itl_ms["p95"] <= slo.itl_p95_ms


MIN_SIM_REQUESTS = 300


def requests_for_rate(requests: RequestSet, rate_per_s: float, horizon_s: float) -> RequestSet:
    """The first requests of the set, enough to cover `horizon_s` of arrivals at this rate (at least
    MIN_SIM_REQUESTS, at most all). A short run from an empty system flatters an overloaded replica: the queue
    needs time to build."""
    n = min(len(requests), max(MIN_SIM_REQUESTS, math.ceil(rate_per_s * horizon_s)))
    return requests if n >= len(requests) else requests.head(n)


def simulation_horizon_s(slo: LatencySlo, idle_e2e_s: float) -> float:
    """Long enough for a 10% overload to push p95 TTFT past its target, and for several request lifetimes."""
    return max(20.0 * slo.ttft_p95_ms / 1e3, 10.0 * idle_e2e_s)


def max_rate_simulated(
    perf: PerfModel,
    requests: RequestSet,
    slo: LatencySlo,
    *,
    start_rate_per_s: float | None = None,
    tolerance: float = 0.04,
    max_evaluations: int = 8,
) -> RateSearch:
    """Bisection (on log rate) for the highest Poisson rate whose simulated p95 TTFT and ITL hold the SLO.

    Rates above the replica's throughput ceiling (steady state at mean lengths, flat out) count as failing
    whatever a finite simulation shows: the queue there grows without bound.
    """
    mean_isl, mean_osl = float(requests.isl.mean()), float(requests.osl.mean())
    # "Idle": requests far enough apart that each runs alone; if that misses the SLO no rate holds it. Requests
    # do not interact when idle, so a few dozen give the same percentiles.
    idle_rate = 1e-3 / max(1.0, (mean_isl + mean_osl) / 1000.0)
    idle = simulate(perf, requests.head(100), LoadSpec("poisson", rate_per_s=idle_rate))
    provenance = Provenance.of(perf.efficiency)
    if not _holds(idle, slo):
        return RateSearch(
            0.0, idle.ttft_ms["p95"], idle.itl_ms["p95"], 1, "simulation", "", idle.ttft_ms["p95"],
            idle.itl_ms["p95"], provenance,
        )  # fmt: skip
    ceiling = (
        steady_state(perf, max(1, round(mean_isl)), max(1, round(mean_osl))).output_tokens_per_s / mean_osl
    )
    horizon_s = simulation_horizon_s(slo, (idle.ttft_ms["p50"] + idle.tpot_ms["p50"] * mean_osl) / 1e3)
    cache: dict[float, SimResult | None] = {}

    def run(rate: float) -> SimResult | None:
        """None: above the throughput ceiling."""
        if rate not in cache:
            cache[rate] = (
                None
                if rate > ceiling
                else simulate(
                    perf, requests_for_rate(requests, rate, horizon_s), LoadSpec("poisson", rate_per_s=rate)
                )
            )
        return cache[rate]

    # Start from the estimate and walk in steps of `step` until the SLO flips, then bisect on log rate.
    if start_rate_per_s:
        rate, step = min(start_rate_per_s, ceiling), 1.25
    else:
        rate, step = max(ceiling, idle_rate * 2), 2.0
    lo, hi = 0.0, math.inf  # highest rate seen to hold, lowest seen to fail
    while len(cache) < max_evaluations:
        result = run(rate)
        if result is not None and _holds(result, slo):
            lo = rate
        else:
            hi = rate
        if hi == math.inf:
            rate *= step
        elif lo == 0.0:
            rate /= step
        elif hi / lo <= 1.0 + tolerance:
            break
        else:
            rate = math.sqrt(lo * hi)
    limit = ""
    if hi != math.inf:
        above = cache[hi]
        limit = "throughput" if above is None else "ttft" if above.ttft_ms["p95"] > slo.ttft_p95_ms else "itl"
    best = cache[lo] if lo else None
    best = best or idle
    return RateSearch(
        max_rate_per_s=lo,
        ttft_p95_ms=best.ttft_ms["p95"],
        itl_p95_ms=best.itl_ms["p95"],
        evaluations=len(cache) + 1,
        method="simulation",
        limit=limit,
        idle_ttft_p95_ms=idle.ttft_ms["p95"],
        idle_itl_p95_ms=idle.itl_ms["p95"],
        provenance=provenance,
    )


@dataclass(frozen=True)
class AnalyticLoad:
    ttft_p95_ms: float
    itl_p95_ms: float
    batch: float
    stable: bool


_PROMPT_GRID = 64


@lru_cache(maxsize=256)
def _prompt_grid(stats: LengthStats) -> FloatArray:
    """Prompt lengths at evenly spaced quantiles of the fitted distribution (what the sampler draws from)."""
    sigma = _lognormal_sigma(stats)
    z = np.asarray(_quantile_grid(_PROMPT_GRID))
    return np.minimum(np.exp(math.log(stats.p50) + sigma * z), float(stats.max))


def _chunk_sizes(prompts: FloatArray, room: float, merge_tokens: float) -> FloatArray:
    """Sizes of the prefill chunks prompts become: full steps of `room` tokens plus a remainder, which shares its
    step with the next waiting prompt (`merge_tokens` on average) when the prefill queue is busy."""
    full = prompts // room
    remainder = prompts - full * room
    partial = np.minimum(room, remainder[remainder > 0] + merge_tokens)
    return np.concatenate((np.full(int(full.sum()), room), partial))


def analytic_poisson(
    perf: PerfModel, prompt: LengthStats, output: LengthStats, rate_per_s: float
) -> AnalyticLoad:
    """Mean-field estimate of p95 TTFT and ITL at a Poisson rate; used to screen deployments before simulating.

    Little's law gives the decoding batch (rate x time in system). Prompts turn into chunk-steps of at most the
    token budget left beside the decodes; their share of steps follows from the prefill tokens per step, and the
    p95 token gap is the chunk-step at the matching quantile of chunk sizes. TTFT adds an M/G/1 wait for the
    prefill queue, its p95 taken as 3x the mean (exponential tail).
    """
    prompts = _prompt_grid(prompt)
    isl, osl = float(prompts.sum()) / prompts.size, output.mean
    context = isl + osl / 2.0
    tpot_s = perf.step_s(1, context, 0, 0.0)
    batch = max(rate_per_s * osl * tpot_s, 1e-9)
    share, room = 0.0, float(max(perf.token_budget - 1, 1))
    chunks = _chunk_sizes(prompts, room, 0.0)
    chunk_s = service_s = 0.0
    for _ in range(10):
        previous = batch
        b = max(1, math.ceil(batch))
        room = float(max(perf.token_budget - b, 1))
        chunks = _chunk_sizes(prompts, room, min(share, 1.0) * isl)
        mean_chunk = float(chunks.sum()) / chunks.size
        decode_s = perf.step_s(b, b * context, 0, 0.0)
        chunk_s = perf.step_s(b, b * context, round(mean_chunk), mean_chunk * isl / 2.0)
        share = rate_per_s * isl * tpot_s / mean_chunk  # prompt tokens per step / tokens per chunk-step
        tpot_s = (1.0 - min(share, 1.0)) * decode_s + min(share, 1.0) * chunk_s
        service_s = isl / mean_chunk * chunk_s
        batch = rate_per_s * (service_s + (osl - 1) * tpot_s)
        if abs(batch - previous) <= 3e-3 * max(batch, 1.0):
            break
    b = max(1, math.ceil(batch))
    cap = perf.max_concurrent_sequences(context + osl / 2.0)
    rho = rate_per_s * service_s
    if not (share < 1.0 and b <= cap and rho < 1.0):
        return AnalyticLoad(math.inf, math.inf, batch, False)
    # Prefill service of each prompt on the grid: its chunk-steps, each carrying up to `room` tokens.
    steps = np.ceil(prompts / room)
    per_chunk = np.minimum(prompts, room)
    services = steps * perf.step_s_array(b, b * context, per_chunk, per_chunk * prompts / 2.0)
    wait_mean_s = rate_per_s * float(services @ services) / services.size / (2.0 * (1.0 - rho))
    # The grid is sorted by length and service grows with length, so the 95th percentile is an index.
    ttft95_s = float(services[round(0.95 * (services.size - 1))]) + 3.0 * wait_mean_s
    if share > 0.05:
        # The p95 token gap falls among chunk-steps once they are more than 5% of all steps.
        ordered = np.sort(chunks)
        chunk_q = float(ordered[round((1.0 - 0.05 / share) * (ordered.size - 1))])
        itl95_s = perf.step_s(b, b * context, round(chunk_q), chunk_q * isl / 2.0)
    else:
        itl95_s = perf.step_s(b, b * context, 0, 0.0)
    return AnalyticLoad(ttft95_s * 1e3, itl95_s * 1e3, batch, True)


CEILING_SLACK = 1.2  # the analytic search never reports more than this times the throughput ceiling


def throughput_ceiling_rate(perf: PerfModel, prompt: LengthStats, output: LengthStats) -> float:
    """Requests/s one replica completes flat out at mean lengths: no latency target holds above it."""
    state = steady_state(perf, max(1, round(prompt.mean)), max(1, round(output.mean)))
    return state.output_tokens_per_s / output.mean


def max_rate_analytic(
    perf: PerfModel,
    prompt: LengthStats,
    output: LengthStats,
    slo: LatencySlo,
    *,
    tolerance: float = 0.03,
    ceiling_rate_per_s: float | None = None,
) -> RateSearch:
    idle = analytic_poisson(perf, prompt, output, 1e-6)
    if not (idle.ttft_p95_ms <= slo.ttft_p95_ms and idle.itl_p95_ms <= slo.itl_p95_ms):
        return RateSearch(
            0.0,
            idle.ttft_p95_ms,
            idle.itl_p95_ms,
            1,
            "analytic",
            "",
            idle.ttft_p95_ms,
            idle.itl_p95_ms,
            Provenance.of(perf.efficiency),
        )
    ceiling = ceiling_rate_per_s or throughput_ceiling_rate(perf, prompt, output)
    # Bisection on log rate between a rate far below the throughput ceiling and just above it.
    lo, hi = max(ceiling, 1e-6) * 1e-4, max(ceiling * CEILING_SLACK, 1e-3)
    best = idle
    failing = analytic_poisson(perf, prompt, output, hi)
    evaluations = 2
    while hi / lo > 1.0 + tolerance:
        mid = math.sqrt(lo * hi)
        result = analytic_poisson(perf, prompt, output, mid)
        evaluations += 1
        if result.stable and result.ttft_p95_ms <= slo.ttft_p95_ms and result.itl_p95_ms <= slo.itl_p95_ms:
            lo, best = mid, result
        else:
            hi, failing = mid, result
    limit = "ttft" if failing.ttft_p95_ms > slo.ttft_p95_ms else "itl"
    return RateSearch(
        lo,
        best.ttft_p95_ms,
        best.itl_p95_ms,
        evaluations,
        "analytic",
        limit,
        idle.ttft_p95_ms,
        idle.itl_p95_ms,
        Provenance.of(perf.efficiency),
    )


# --------------------------------------------------------------------------------------------------------------
# One prediction, as `manage.py predict` prints it


@dataclass(frozen=True)
class Prediction:
    output_tokens_per_s: float  # total over all GPUs (replicas x per replica)
    ttft_ms: float
    tpot_ms: float
    fits: bool
    max_concurrent_sequences: int
    source: Source
    calibration_key: str
    error_band_rel: float
    basis: str  # how the efficiencies were obtained, or the measurement's description
    replicas: int
    memory: MemoryFit | None
    bound: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_tokens_per_s": round(self.output_tokens_per_s, 2),
            "ttft_ms": round(self.ttft_ms, 2) if math.isfinite(self.ttft_ms) else None,
            "tpot_ms": round(self.tpot_ms, 3) if math.isfinite(self.tpot_ms) else None,
            "fits": self.fits,
            "max_concurrent_sequences": self.max_concurrent_sequences,
            "source": self.source,
            "calibration_key": self.calibration_key,
            "error_band_rel": round(self.error_band_rel, 3),
            "basis": self.basis,
            "replicas": self.replicas,
            "bound": self.bound,
            "memory": self.memory.to_dict() if self.memory else None,
            "notes": list(self.notes),
        }


def predict(
    dep: Deployment,
    eff: Efficiency,
    *,
    isl: int,
    osl: int,
    concurrency: int | None = None,
    gpu_count: int | None = None,
) -> Prediction:
    """Steady-state prediction for fixed lengths; gpu_count beyond tp runs gpu_count // tp replicas."""
    count = gpu_count or dep.tp
    if count % dep.tp:
        raise UnsupportedCombination(
            "invalid_parallelism", f"gpu count {count} is not a multiple of tp {dep.tp}"
        )
    replicas = count // dep.tp
    offline = concurrency is None
    seqs = dep.max_num_seqs or (dep.profile.offline_max_num_seqs if offline else dep.profile.max_num_seqs)
    perf = build_perf_model(dep, eff, context_tokens=isl + osl, max_num_seqs=seqs)
    notes = [
        "offline: all requests queued; ttft_ms counts from admission"
        if offline
        else f"closed loop: {concurrency} requests in flight across {replicas} replica(s)"
    ]
    if not perf.memory.fits:
        return Prediction(
            0.0,
            math.inf,
            math.inf,
            False,
            perf.memory.max_concurrent_sequences,
            "predicted",
            eff.calibration_key,
            eff.error_band_rel,
            eff.basis,
            replicas,
            perf.memory,
            "memory",
            (perf.memory.reason, *notes),
        )
    per_replica_concurrency = None if concurrency is None else max(1, math.ceil(concurrency / replicas))
    state = steady_state(perf, isl, osl, per_replica_concurrency)
    return Prediction(
        output_tokens_per_s=state.output_tokens_per_s * replicas,
        ttft_ms=state.ttft_ms,
        tpot_ms=state.tpot_ms,
        fits=True,
        max_concurrent_sequences=state.max_concurrent_sequences * replicas,
        source="predicted",
        calibration_key=eff.calibration_key,
        error_band_rel=eff.error_band_rel,
        basis=eff.basis,
        replicas=replicas,
        memory=perf.memory,
        bound=state.bound,
        notes=tuple(notes),
    )
