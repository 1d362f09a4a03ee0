"""Memory: weight bytes per GPU, KV-cache bytes per token, what is left for the KV cache after the engine's
runtime, and how many sequences that cache admits.

Per GPU, one replica of tp x pp x dp GPUs holds: dense (non-expert) weights split by tp and pp, expert weights
split by ep (or by tp when the experts are tensor-sharded) and pp, and the KV of its share of the sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.catalog.specs import ModelSpec
from apps.planner.perf.deployment import GIB, Deployment

_ACTIVATION_BYTES = 2.0  # activations travel in 16-bit
# Engines sample from the logits of every sequence in the step, in fp32, but never for more rows than this at
# once (vLLM's and TRT-LLM's samplers chunk larger batches).
_LOGIT_ROWS = 256


def expert_split(model: ModelSpec) -> tuple[float, float]:
    """(non-expert params, params of one routed expert index summed over the MoE layers).

    From the config's shapes where the catalog has them; otherwise from total and active counts:
    total = S + E·X, active = S + k·X.
    """
    total = model.params_total_b * 1e9
    if not model.num_experts or model.num_experts <= model.experts_per_token:
        return total, 0.0
    if model.expert_params and model.moe_layers:
        per_expert = float(model.expert_params * model.moe_layers)
    else:
        per_expert = (total - model.params_active_b * 1e9) / (model.num_experts - model.experts_per_token)
    return total - model.num_experts * per_expert, per_expert


def weight_bytes_per_param(dep: Deployment) -> tuple[float, float]:
    """(bytes per non-expert weight, bytes per routed-expert weight).

    A checkpoint quantized natively on its experts only (gpt-oss: MXFP4 experts, BF16 attention and
    embeddings) keeps its other weights in 16-bit; every other quantization covers all linear layers.
    """
    wb = dep.quant.weight_bytes_per_param
    model = dep.model
    if model.native_quant == dep.quant.slug and model.native_quant_scope == "experts":
        return 2.0, wb
    return wb, wb


def expert_shards(dep: Deployment) -> int:
    """How many GPUs the routed experts of one layer are spread over: the expert-parallel group, or, without
    one, every GPU of the stage (experts tensor-sharded over tp, and over the data-parallel attention ranks)."""
    return dep.ep if dep.ep > 1 else dep.tp * dep.dp


def weight_bytes_per_gpu(dep: Deployment) -> float:
    """Resident weights on the busiest GPU (every expert stays resident somewhere)."""
    dense, per_expert = expert_split(dep.model)
    dense_wb, expert_wb = weight_bytes_per_param(dep)
    experts = dep.model.num_experts * per_expert
    return (dense * dense_wb / dep.tp + experts * expert_wb / expert_shards(dep)) / dep.pp


def kv_bytes_per_token_gpu(
    model: ModelSpec, tp: int, kv_bytes_per_element: float, pp: int = 1, context_tokens: int | None = None
) -> float:
    """KV bytes one token of context occupies on one GPU of a tp x pp group, averaged over a context of
    `context_tokens` (sliding-window and chunked layers hold at most their window).

    KV heads split across tensor-parallel GPUs (each GPU keeps a replicated head once tp exceeds them); the MLA
    latent has no heads, so every tensor-parallel rank holds all of it.
    """
    return model.kv_bytes_per_token_gpu(tp, kv_bytes_per_element, context_tokens) / pp


def runtime_bytes_per_gpu(dep: Deployment, max_num_seqs: int) -> float:
    """CUDA context, graphs and allocator slack, plus the peak activations of one step at the token budget
    (hidden states and the tensor-parallel share of the MLP intermediates) and fp32 logits for sampling."""
    model = dep.model
    budget = dep.effective_token_budget
    intermediate = model.intermediate * max(1, model.experts_per_token if model.num_experts else 1)
    activations = budget * (4 * model.hidden + 2 * intermediate / dep.tp) * _ACTIVATION_BYTES
    logits = min(max_num_seqs, _LOGIT_ROWS) * model.vocab * 4.0 / dep.tp
    return dep.profile.runtime_overhead_gib * GIB + activations + logits


@dataclass(frozen=True)
class MemoryFit:
    fits: bool
    gpus: int
    memory_per_gpu_gb: float
    usable_per_gpu_gb: float  # after the engine's memory fraction
    weights_per_gpu_gb: float
    runtime_per_gpu_gb: float  # activations, CUDA graphs, context
    kv_cache_per_gpu_gb: float
    kv_bytes_per_token: float  # whole replica, all layers, K and V
    kv_capacity_tokens: int  # whole replica
    context_tokens: int
    max_concurrent_sequences: int  # sequences of context_tokens held at once
    need_gb: float  # whole replica, to hold one sequence of context_tokens
    have_gb: float  # whole replica: what the engine may use
    reason: str
    paged: bool = True

    def sequences_at(self, mean_context_tokens: float, max_num_seqs: int) -> int:
        """Sequences the KV cache holds when each occupies `mean_context_tokens` on average."""
        if mean_context_tokens <= 0:
            return max_num_seqs
        return max(0, min(max_num_seqs, int(self.kv_capacity_tokens // mean_context_tokens)))

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


def memory_fit(dep: Deployment, context_tokens: int, *, max_num_seqs: int | None = None) -> MemoryFit:
    """Does the replica hold its weights plus the KV cache of one sequence of `context_tokens`?"""
    gpu, profile = dep.gpu, dep.profile
    seqs = max_num_seqs or dep.max_num_seqs or profile.max_num_seqs
    fraction = dep.effective_memory_fraction
    memory = gpu.memory_bytes
    weights = weight_bytes_per_gpu(dep)
    runtime = runtime_bytes_per_gpu(dep, seqs)
    if profile.memory_fraction_of_free:
        kv = max(0.0, (memory - weights - runtime) * fraction)
        # Never more than the GPU holds: weights larger than memory must not read as memory the engine has.
        usable = min(memory, weights + runtime + kv)
    else:
        usable = memory * fraction
        kv = max(0.0, usable - weights - runtime)
    kv_tok_gpu = kv_bytes_per_token_gpu(
        dep.model, dep.tp, dep.effective_kv_bytes_per_element, dep.pp, max(context_tokens, 1)
    )
    # Data-parallel attention groups each hold their own sequences: the replica's capacity adds up.
    capacity = int(kv // kv_tok_gpu) * dep.dp if kv_tok_gpu else 0
    one_sequence = context_tokens * kv_tok_gpu
    gpus = dep.gpus
    need_gb = (weights + runtime + one_sequence) * gpus / 1e9
    have_gb = usable * gpus / 1e9
    fits = capacity >= context_tokens and weights + runtime < usable
    if fits:
        reason = ""
    elif weights + runtime >= usable:
        share = "of the memory left after weights" if profile.memory_fraction_of_free else "memory fraction"
        reason = (
            f"does not fit: weights need {weights * gpus / 1e9:.1f} GB and the engine's runtime "
            f"{runtime * gpus / 1e9:.1f} GB ({(weights + runtime) * gpus / 1e9:.1f} GB in all), but "
            f"{gpus}x {gpu.memory_gb:g} GB at the engine's {fraction:.0%} {share} leaves {have_gb:.1f} GB"
        )
    else:
        reason = (
            f"does not fit: one {context_tokens}-token sequence needs {one_sequence * gpus / 1e9:.2f} GB of KV "
            f"cache, and only {kv * gpus / 1e9:.2f} GB is left after {weights * gpus / 1e9:.1f} GB of weights "
            f"(needs {need_gb:.1f} GB in all; {have_gb:.1f} GB usable)"
        )
    return MemoryFit(
        fits=fits,
        gpus=gpus,
        memory_per_gpu_gb=memory / 1e9,
        usable_per_gpu_gb=usable / 1e9,
        weights_per_gpu_gb=weights / 1e9,
        runtime_per_gpu_gb=runtime / 1e9,
        kv_cache_per_gpu_gb=kv / 1e9,
        kv_bytes_per_token=kv_tok_gpu * dep.tp * dep.pp,
        kv_capacity_tokens=capacity,
        context_tokens=context_tokens,
        max_concurrent_sequences=min(seqs, capacity // max(context_tokens, 1)),
        need_gb=need_gb,
        have_gb=have_gb,
        reason=reason,
        paged=profile.paged_kv,
    )
