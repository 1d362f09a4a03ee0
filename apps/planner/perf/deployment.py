"""What one replica is: a model on `gpus_per_replica` GPUs of one type, with one engine and quantization; the
engine's runtime traits that are configuration rather than efficiency; and whether the combination can run.

Units: bytes, seconds and FLOPs unless a name says otherwise (GB, GiB, ms, per second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from apps.catalog.specs import GpuSpec, ModelSpec, QuantSpec
from workers.engines import ENGINE_NAMES, ENGINES

GIB = 1024**3
Source = Literal["predicted", "measured"]
TP_DEGREES = (1, 2, 4, 8)


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
    default_token_budget for engines that size it by GPU). `paged_kv`: the engine allocates KV blocks as
    sequences grow (vLLM, SGLang, TRT-LLM's PyTorch backend, TGI), so a batch holds as many sequences as their
    *current* lengths fit; llama.cpp gives each slot a fixed share of its context.
    """

    name: str
    memory_fraction: float
    # TRT-LLM's kv_cache_free_gpu_memory_fraction counts the memory left after weights, not the total.
    memory_fraction_of_free: bool
    max_num_seqs: int
    offline_max_num_seqs: int
    token_budget: int
    runtime_overhead_gib: float  # CUDA context, CUDA graphs, allocator slack, per GPU
    paged_kv: bool


ENGINE_PROFILES: dict[str, EngineProfile] = {
    # Runtime memory besides weights, KV and step activations (CUDA context, graphs, allocator): vLLM's and
    # SGLang's profiling leave well under 1 GiB per GPU for it on Hopper (a 70B BF16 model is published serving
    # on 2x 80 GB with vLLM's 0.90 utilisation, which a larger allowance would not let fit).
    "vllm": EngineProfile("vllm", 0.90, False, 256, 1024, 8192, 0.75, True),
    "sglang": EngineProfile("sglang", 0.90, False, 256, 1024, 8192, 0.75, True),
    # TRT-LLM's default capacity scheduler (GUARANTEED_NO_EVICT) admits a request only when the KV blocks of its
    # whole length (prompt + maximum output) are free.
    "trtllm": EngineProfile("trtllm", 0.90, True, 256, 2048, 8192, 1.0, False),
    "tgi": EngineProfile("tgi", 0.90, False, 256, 256, 4096, 1.0, True),
    # llama.cpp allocates exactly the context it is given (-c); one slot per parallel sequence.
    "llamacpp": EngineProfile("llamacpp", 0.95, False, 16, 16, 2048, 0.5, False),
    "transformers": EngineProfile("transformers", 0.85, False, 32, 32, 2048, 1.0, True),
}
assert set(ENGINE_PROFILES) == set(ENGINE_NAMES)


@dataclass(frozen=True)
class Deployment:
    """One replica: a model on tp x pp x dp GPUs of one type with one engine and quantization.

    tp: tensor parallel degree of attention and dense layers; dp: data-parallel attention groups inside the
    replica (DeepSeek-style DP attention); pp: pipeline stages; ep: expert-parallel degree of the MoE layers
    (experts split over ep GPUs; ep must divide tp x dp). nodes: hosts the replica spans.
    """

    model: ModelSpec
    gpu: GpuSpec
    quant: QuantSpec
    engine: str
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    nodes: int = 1
    max_num_seqs: int | None = None  # None: the engine profile's serving default
    token_budget: int | None = None
    kv_bytes_per_element: float | None = None  # None: the engine's default for this quantization
    memory_fraction: float | None = None

    @property
    def profile(self) -> EngineProfile:
        return ENGINE_PROFILES[self.engine]

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def parallelism(self) -> str:
        """Short label: "TP4", "TP8 EP8", "DP8 EP8", "TP8 PP2"."""
        parts = [f"TP{self.tp}"] if self.tp > 1 or self.dp == 1 else []
        if self.dp > 1:
            parts.append(f"DP{self.dp}")
        if self.ep > 1:
            parts.append(f"EP{self.ep}")
        if self.pp > 1:
            parts.append(f"PP{self.pp}")
        return " ".join(parts)

    @property
    def effective_kv_bytes_per_element(self) -> float:
        return self.kv_bytes_per_element or default_kv_bytes_per_element(self.engine, self.quant)

    @property
    def effective_token_budget(self) -> int:
        return self.token_budget or default_token_budget(self.engine, self.gpu)

    @property
    def effective_memory_fraction(self) -> float:
        return self.memory_fraction or self.profile.memory_fraction


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
    if gpu.architecture.startswith("cdna") or gpu.vendor.upper().startswith("AMD"):
        return "rocm"
    return "cuda"


# Weight formats whose matmuls run in a narrower precision on the GPU families that have tensor cores for it
# (quantizations.csv native_families); elsewhere they are dequantized to their compute_dtype.
_NATIVE_DTYPE = {"mxfp4": "fp4"}


def compute_dtype(gpu: GpuSpec, quant: QuantSpec) -> str:
    if quant.slug in _NATIVE_DTYPE and gpu.architecture in quant.native_families:
        return _NATIVE_DTYPE[quant.slug]
    return quant.compute_dtype


def compute_tflops(gpu: GpuSpec, quant: QuantSpec) -> float | None:
    """Dense tensor TFLOPS at the precision the quantization computes in (weight-only int4 computes in fp16)."""
    by_dtype = {
        "bf16": gpu.bf16_tflops,
        "fp16": gpu.fp16_tflops,
        "fp8": gpu.fp8_tflops,
        "int8": gpu.int8_tops,
        "fp4": gpu.fp4_tflops,
    }
    return by_dtype.get(compute_dtype(gpu, quant))


def attention_tflops(gpu: GpuSpec, kv_bytes_per_element: float) -> float:
    """Attention runs its matmuls in 16-bit, or in FP8 where the KV cache is FP8 and the GPU has FP8 cores."""
    sixteen = gpu.bf16_tflops or gpu.fp16_tflops or 0.0
    if kv_bytes_per_element <= 1.0 and gpu.fp8_tflops:
        return gpu.fp8_tflops
    return sixteen


_FP8_FAMILIES = frozenset({"hopper", "ada", "blackwell", "cdna3", "cdna4"})
_FP4_FAMILIES = frozenset({"blackwell", "cdna4"})


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
    if quant.compute_dtype == "fp4" and family not in (quant.native_families or _FP4_FAMILIES):
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
    for name, degree in (("tensor", dep.tp), ("pipeline", dep.pp), ("data", dep.dp), ("expert", dep.ep)):
        if degree < 1:
            raise UnsupportedCombination("invalid_parallelism", f"{name} parallelism {degree} below 1")
    if dep.tp > 8:
        raise UnsupportedCombination("invalid_parallelism", f"tensor parallelism {dep.tp} outside 1..8")
    if gpu.is_cpu and dep.gpus != 1:
        raise UnsupportedCombination(
            "invalid_parallelism", "the cpu accelerator runs one replica per host (tp 1)"
        )
    if engine != "llamacpp" and model.attention_heads % dep.tp:
        raise UnsupportedCombination(
            "invalid_parallelism",
            f"{model.slug} has {model.attention_heads} attention heads, not divisible by tp {dep.tp}",
        )
    if dep.ep > 1:
        if not model.num_experts:
            raise UnsupportedCombination(
                "invalid_parallelism", f"{model.slug} is dense: expert parallelism needs a mixture of experts"
            )
        if (dep.tp * dep.dp) % dep.ep or model.num_experts % dep.ep:
            raise UnsupportedCombination(
                "invalid_parallelism",
                f"expert parallelism {dep.ep} must divide tp x dp ({dep.tp * dep.dp}) and the "
                f"{model.num_experts} experts of {model.slug}",
            )
    if dep.pp > model.layers:
        raise UnsupportedCombination(
            "invalid_parallelism", f"{model.slug} has {model.layers} layers, fewer than pp {dep.pp} stages"
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
