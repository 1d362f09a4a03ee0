"""How long one engine step takes: the only place step time is defined.

A step runs every decoding sequence one token further plus some prompt tokens (chunked prefill). Per GPU it
streams the weights it holds (or the experts the step's tokens route to), multiplies the step's tokens through
them, reads the KV cache of every decoding sequence, computes prefill attention, exchanges activations with the
other GPUs of the replica, and pays the engine's scheduling cost:

    step = overhead + per-sequence overhead x sequences
           + pp x [ roofline(dense weights / (BW x MBU) + experts read / (BW x expert MBU), FLOPs / (peak x MFU))
                    + KV bytes / (BW x attention MBU) + prefill attention FLOPs / (peak x MFU)
                    + collectives ]

The roofline blend is the quadratic mean of the two times (near the ridge point a GEMM reaches neither roof).
Pipeline parallelism (pp stages) splits the batch into pp micro-batches that flow through the stages, so a
token's step costs pp stage-steps of n/pp tokens each.

The formula is written with arithmetic operators only, so the same code runs on Python floats (the batching
simulation, one step at a time) and on NumPy arrays (the calibration, every corpus row at once).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, TypeVar

from apps.catalog.specs import ModelSpec
from apps.planner.perf.deployment import (
    Deployment,
    attention_tflops,
    check_supported,
    compute_dtype,
    compute_tflops,
    weight_only_fp8,
)
from apps.planner.perf.efficiency import Efficiency, Levels
from apps.planner.perf.memory import (
    MemoryFit,
    expert_shards,
    expert_split,
    kv_bytes_per_token_gpu,
    memory_fit,
    weight_bytes_per_param,
)

_ACTIVATION_BYTES = 2.0  # all-reduce and all-to-all payloads travel in 16-bit

Num = TypeVar("Num", float, Any)  # a float, or an array of them


@dataclass(frozen=True)
class LinkClass:
    """How the GPUs of one replica talk: the class names one calibrated (latency, efficiency) pair."""

    name: str  # nvswitch, nvlink-bridge, pcie, xgmi, nvl72, network
    bus_bytes_per_s: float  # peak one-way bandwidth per GPU


def link_class(dep: Deployment) -> LinkClass:
    """The collective path of this replica.

    interconnect_gbps is bidirectional per GPU; collectives move data one way. NVLink bridges join pairs only,
    so a larger group of bridged PCIe cards falls back to PCIe; a replica larger than the GPU's scale-up domain
    (8 on an HGX board, 72 in an NVL72 rack), or spread over nodes, crosses the scale-out network.
    """
    gpu = dep.gpu
    text = gpu.interconnect.lower()
    one_way = gpu.interconnect_gbps * 1e9 / 2
    group = dep.gpus
    domain = max(gpu.scale_up_domain_gpus, 1)
    if dep.nodes > 1 or (domain > 1 and group > domain):
        per_gpu = (gpu.scale_out_gbit_per_gpu or 400.0) / 8.0 * 1e9  # one NIC per GPU in reference designs
        return LinkClass("network", per_gpu)
    if domain >= 72:
        return LinkClass("nvl72", one_way)
    if "nvlink" in text and "bridge" not in text and not gpu.pcie_only:
        return LinkClass("nvswitch", one_way)
    if "nvlink" in text and group <= 2:
        return LinkClass("nvlink-bridge", one_way)
    if "infinity fabric" in text or "xgmi" in text:
        return LinkClass("xgmi", one_way)
    return LinkClass("pcie", max(one_way, 8e9))


def levels_of(dep: Deployment, *, precision: str | None = None, engine_version: str = "") -> Levels:
    """The factor levels the deployment's efficiencies depend on (precision: as published, when it names a
    variant of the catalog quantization such as block-scaled FP8; engine_version: a published row's, when it may
    be a superseded release line; a plan's deployments run the current pinned release)."""
    return Levels.of(
        dep.engine,
        dep.gpu,
        kernel_precision(dep, precision or dep.quant.slug),
        moe=bool(dep.model.num_experts),
        tp=dep.tp * dep.dp,
        link=link_class(dep).name,
        model=dep.model.slug,
        pp=dep.pp,
        engine_version=engine_version,
    )


def kernel_precision(dep: Deployment, precision: str) -> str:
    """The precision class of the kernels that really run: MXFP4 weights on GPUs without FP4 tensor cores go
    through weight-only kernels that dequantize to 16-bit, FP8 on GPUs without FP8 cores through vLLM's
    weight-only W8A16 kernel; each is a class of its own, so the native formats' efficiencies do not carry
    over to them (nor theirs to AWQ and GPTQ, whose kernels differ)."""
    if dep.quant.slug == "mxfp4" and compute_dtype(dep.gpu, dep.quant, dep.engine) in ("bf16", "fp16"):
        return "mxfp4-w4a16"
    if weight_only_fp8(dep.engine, dep.gpu, dep.quant):
        return "w8a16"
    return precision


@dataclass(frozen=True)
class StepModel:
    """One deployment's geometry (what a step reads, computes and exchanges per GPU per pipeline stage, and the
    hardware's peak rates) and its efficiencies; step_s() is the step time.

    Token counts passed to step_s are the replica's; with dp data-parallel attention groups each GPU's attention
    and dense layers see 1/dp of them, while the routed experts see every token routed to them.
    Fields are floats for one deployment, or equal-length arrays when the calibration evaluates many corpus rows
    at once (then `deployment` and `memory` are None).
    """

    max_num_seqs: Any  # int, or an array
    token_budget: Any
    kv_capacity_tokens: Any  # whole replica
    paged: Any  # KV grows with the sequence (admission by mean occupancy) or is reserved up front
    pp: Any
    dp: Any
    dense_weight_bytes: Any  # per GPU per stage, read every step
    expert_weight_bytes: Any  # per GPU per stage per local routed expert (0: dense model)
    local_experts: Any  # routed experts held by one GPU (all of them, tensor-sharded, when ep = 1)
    num_experts: Any
    experts_per_token: Any
    dense_flops_per_token: Any  # per GPU per stage, per token that GPU's attention group processes
    expert_flops_per_token: Any  # per GPU per stage, per token of the replica's step
    attn_flops_per_pair: Any  # per GPU per stage, per (query, key) pair of a decoding token
    prefill_attn_flops_per_pair: Any  # the same for a prompt token (differs for latent attention)
    kv_bytes_per_token_gpu: Any  # per GPU per stage
    peak_bandwidth_bytes_per_s: Any
    peak_flops_per_s: Any  # at the weights' compute precision
    peak_attn_flops_per_s: Any  # at the attention precision
    allreduces_per_stage: Any  # tensor parallel: 2 per layer
    allreduce_hops: Any  # latency multiplier of one all-reduce for this group size
    allreduce_bytes_per_token: Any  # ring-adjusted payload per token of the GPU's group
    alltoalls_per_stage: Any  # expert parallel: dispatch and combine per MoE layer
    alltoall_hops: Any
    alltoall_bytes_per_token: Any
    link_bytes_per_s: Any  # peak one-way bandwidth per GPU of the collective path
    # Efficiencies (calibrated):
    mbu: Any
    expert_mbu: Any
    mfu: Any
    attention_mbu: Any
    overhead_s: Any
    seq_overhead_s: Any
    link_latency_s: Any
    link_efficiency: Any
    request_overhead_s: Any  # added once to each request's TTFT
    deployment: Deployment | None = None
    memory: MemoryFit | None = None
    efficiency: Efficiency | None = None

    def expert_bytes_read(self, stage_tokens: Num) -> Num:
        """The local experts that the step's tokens route to: each token picks k of E experts, so n tokens touch
        a fraction 1 - (1 - k/E)^n of them in expectation (0 for a dense model)."""
        experts = self.num_experts + (self.num_experts == 0)  # 1 where dense: the expert term is then 0
        untouched = (1.0 - self.experts_per_token / experts) ** (stage_tokens + (stage_tokens < 1))
        return self.expert_weight_bytes * self.local_experts * (1.0 - untouched)  # type: ignore[no-any-return]

    def weight_bytes_read(self, stage_tokens: Num) -> Num:
        """Dense weights plus the routed experts the step's tokens touch."""
        return self.dense_weight_bytes + self.expert_bytes_read(stage_tokens)  # type: ignore[no-any-return]

    def weight_read_s(self, stage_tokens: Num) -> Num:
        """Time to stream them: the dense part at MBU, the experts at the (grouped-GEMM) expert MBU."""
        bandwidth = self.peak_bandwidth_bytes_per_s
        return (  # type: ignore[no-any-return]
            self.dense_weight_bytes / (bandwidth * self.mbu)
            + self.expert_bytes_read(stage_tokens) / (bandwidth * self.expert_mbu)
        )

    def step_s(
        self,
        n_decode: Num,
        decode_context_tokens: Num,
        n_prefill: Num,
        prefill_attn_pairs: Num,
        n_prefill_seqs: Num | float = 1.0,
    ) -> Num:
        """One step: n_decode sequences decode (holding decode_context_tokens of KV in total) while n_prefill
        prompt tokens of n_prefill_seqs prompts go through, their attention spanning prefill_attn_pairs pairs."""
        n_tokens = n_decode + n_prefill
        stage_tokens = n_tokens / self.pp
        gpu_tokens = stage_tokens / self.dp
        memory_s = self.weight_read_s(stage_tokens)
        compute_s = (self.dense_flops_per_token * gpu_tokens + self.expert_flops_per_token * stage_tokens) / (
            self.peak_flops_per_s * self.mfu
        )
        link_s_per_byte = 1.0 / (self.link_bytes_per_s * self.link_efficiency)
        collectives = self.allreduces_per_stage * (
            self.link_latency_s * self.allreduce_hops
            + self.allreduce_bytes_per_token * gpu_tokens * link_s_per_byte
        ) + self.alltoalls_per_stage * (
            self.link_latency_s * self.alltoall_hops
            + self.alltoall_bytes_per_token * gpu_tokens * link_s_per_byte
        )
        per_gpu = self.pp * self.dp
        # Decode attention streams each sequence's KV cache once and computes one query against it: usually
        # bandwidth-bound, but compute-bound for latent attention (MLA multiplies the query through the latent);
        # the same quadratic blend of the two roofs as for the linear layers.
        decode_pairs = decode_context_tokens / per_gpu
        attn_read_s = (
            decode_pairs
            * self.kv_bytes_per_token_gpu
            / (self.peak_bandwidth_bytes_per_s * self.attention_mbu)
        )
        attn_math_s = decode_pairs * self.attn_flops_per_pair / (self.peak_attn_flops_per_s * self.mfu)
        prefill_attn_s = (
            prefill_attn_pairs
            / per_gpu
            * self.prefill_attn_flops_per_pair
            / (self.peak_attn_flops_per_s * self.mfu)
        )
        stage = (
            (memory_s * memory_s + compute_s * compute_s) ** 0.5
            + (attn_read_s * attn_read_s + attn_math_s * attn_math_s) ** 0.5
            + prefill_attn_s
            + collectives
        )
        seqs = n_decode + (n_prefill > 0) * n_prefill_seqs
        busy = n_tokens > 0
        return busy * (self.overhead_s + self.seq_overhead_s * seqs + self.pp * stage)  # type: ignore[no-any-return]

    @cached_property
    def scalar(self) -> Callable[[float, float, float, float], float]:
        """scalar_step(), built once per deployment: the simulation and the screening estimate share it."""
        return self.scalar_step()

    def scalar_step(self) -> Callable[[float, float, float, float], float]:
        """step_s for one deployment on Python floats, with every per-deployment constant folded in: the
        batching simulation calls it once per event (tens of thousands of times per plan). Same formula as
        step_s (a test holds them equal)."""
        pp, dp = float(self.pp), float(self.dp)
        dense_bytes = float(self.dense_weight_bytes)
        expert_bytes = float(self.expert_weight_bytes * self.local_experts)
        experts = float(self.num_experts + (self.num_experts == 0))
        keep = 1.0 - float(self.experts_per_token) / experts
        inv_bw = 1.0 / float(self.peak_bandwidth_bytes_per_s * self.mbu)
        inv_expert_bw = 1.0 / float(self.peak_bandwidth_bytes_per_s * self.expert_mbu)
        dense_flops = float(self.dense_flops_per_token) / dp
        expert_flops = float(self.expert_flops_per_token)
        inv_flops = 1.0 / float(self.peak_flops_per_s * self.mfu)
        link = 1.0 / float(self.link_bytes_per_s * self.link_efficiency)
        comm_fixed = float(
            self.allreduces_per_stage * self.link_latency_s * self.allreduce_hops
            + self.alltoalls_per_stage * self.link_latency_s * self.alltoall_hops
        )
        comm_per_gpu_token = float(
            (
                self.allreduces_per_stage * self.allreduce_bytes_per_token
                + self.alltoalls_per_stage * self.alltoall_bytes_per_token
            )
            * link
        )
        per_gpu = pp * dp
        kv_read = (
            float(self.kv_bytes_per_token_gpu / (self.peak_bandwidth_bytes_per_s * self.attention_mbu))
            / per_gpu
        )
        attn_math = float(self.attn_flops_per_pair / (self.peak_attn_flops_per_s * self.mfu)) / per_gpu
        prefill_attn_math = (
            float(self.prefill_attn_flops_per_pair / (self.peak_attn_flops_per_s * self.mfu)) / per_gpu
        )
        overhead, per_seq = float(self.overhead_s), float(self.seq_overhead_s)

        def step(
            n_decode: float, decode_context_tokens: float, n_prefill: float, prefill_attn_pairs: float
        ) -> float:
            n_tokens = n_decode + n_prefill
            if n_tokens <= 0:
                return 0.0
            stage_tokens = n_tokens / pp
            untouched = keep ** (stage_tokens if stage_tokens >= 1 else stage_tokens + 1.0)
            memory_s = dense_bytes * inv_bw + expert_bytes * (1.0 - untouched) * inv_expert_bw
            compute_s = (dense_flops * stage_tokens + expert_flops * stage_tokens) * inv_flops
            read_s = decode_context_tokens * kv_read
            math_s = decode_context_tokens * attn_math
            stage = (
                (memory_s * memory_s + compute_s * compute_s) ** 0.5
                + (read_s * read_s + math_s * math_s) ** 0.5
                + prefill_attn_pairs * prefill_attn_math
                + comm_fixed
                + comm_per_gpu_token * stage_tokens / dp
            )
            seqs = n_decode + (1.0 if n_prefill > 0 else 0.0)
            return float(overhead + per_seq * seqs + pp * stage)

        return step

    def sequences_at(self, mean_context_tokens: float) -> int:
        """Sequences admitted when each holds mean_context_tokens of KV (capped by the batch limit)."""
        if mean_context_tokens <= 0:
            return int(self.max_num_seqs)
        return max(0, min(int(self.max_num_seqs), int(self.kv_capacity_tokens // mean_context_tokens)))

    def with_efficiency(self, eff: Efficiency) -> StepModel:
        """The same geometry with other efficiencies."""
        return replace(self, efficiency=eff, **efficiency_fields(eff))


def efficiency_fields(eff: Efficiency) -> dict[str, Any]:
    return {
        "mbu": eff.mbu,
        "expert_mbu": eff.expert_mbu,
        "mfu": eff.mfu,
        "attention_mbu": eff.attention_mbu,
        "overhead_s": eff.step_overhead_ms / 1e3,
        "seq_overhead_s": eff.seq_overhead_us / 1e6,
        "link_latency_s": eff.link_latency_us / 1e6,
        "link_efficiency": eff.link_efficiency,
        "request_overhead_s": eff.request_overhead_ms / 1e3,
    }


@dataclass(frozen=True)
class Collectives:
    """What one stage step exchanges: tensor-parallel all-reduces and expert-parallel all-to-alls."""

    allreduces: float
    allreduce_hops: float
    allreduce_bytes_per_token: float
    alltoalls: float
    alltoall_hops: float
    alltoall_bytes_per_token: float
    link: LinkClass


def collectives(dep: Deployment) -> Collectives:
    """What one stage step exchanges, per GPU.

    Tensor parallelism: two all-reduces per layer (after attention and after the MLP or MoE); a ring moves
    2(n-1)/n of the payload, and its latency depends on the fabric (allreduce_hops). Mixture of experts over
    data-parallel attention ranks: with expert parallelism a dispatch and a combine all-to-all per MoE layer,
    each token's hidden state going to its k experts, (ep-1)/ep of them on other GPUs; with the experts
    tensor-sharded instead, an all-gather of every rank's tokens before the MoE and a reduce-scatter after it.
    """
    model = dep.model
    link = link_class(dep)
    layers = model.layers / dep.pp
    allreduces = hops = ar_bytes = 0.0
    if dep.tp > 1:
        allreduces, hops = 2.0 * layers, allreduce_hops(link, dep.tp)
        ar_bytes = 2.0 * (dep.tp - 1) / dep.tp * model.hidden * _ACTIVATION_BYTES
    alltoalls = a2a_hops = a2a_bytes = 0.0
    moe_layers = layers * moe_layer_fraction(dep) if model.num_experts else 0.0
    if dep.ep > 1 and moe_layers:
        alltoalls, a2a_hops = 2.0 * moe_layers, math.sqrt(dep.ep - 1)
        a2a_bytes = model.experts_per_token * model.hidden * _ACTIVATION_BYTES * (dep.ep - 1) / dep.ep
    elif dep.dp > 1 and moe_layers:
        group = dep.tp * dep.dp
        alltoalls, a2a_hops = 2.0 * moe_layers, math.sqrt(group - 1)
        # Per token of this GPU's attention rank, the GPU receives the hidden states of the other ranks' tokens.
        a2a_bytes = model.hidden * _ACTIVATION_BYTES * (group - 1) / group * dep.dp
    return Collectives(allreduces, hops, ar_bytes, alltoalls, a2a_hops, a2a_bytes, link)


# Fabrics where every GPU of the group reaches every other directly (a switch, or AMD's fully connected xGMI mesh).
_ALL_TO_ALL_FABRICS = frozenset({"nvswitch", "nvl72", "xgmi"})


def allreduce_hops(link: LinkClass, group: int) -> float:
    """The latency of one small all-reduce in units of one link traversal.

    At decode sizes (kilobytes per GPU) an all-reduce is pure latency. Where every GPU reaches every other
    directly, engines use a one-shot all-reduce (vLLM's and TRT-LLM's custom all-reduce, NCCL NVLS, AMD's quick
    reduce): each GPU reads its peers' buffers in parallel, so the latency does not grow with the group. Over
    PCIe or the network the data goes round a ring whose steps wait for each other: the latency grows with the
    n-1 hops to the farthest peer.
    """
    return 1.0 if link.name in _ALL_TO_ALL_FABRICS else float(group - 1)


def moe_layer_fraction(dep: Deployment) -> float:
    layers = getattr(dep.model, "moe_layers", 0) or dep.model.layers
    return min(1.0, layers / dep.model.layers)


def attention_flops_per_pair(model: ModelSpec, context_tokens: int, *, prefill: bool = False) -> float:
    """FLOPs of one (query, key) pair over all layers: QK^T and PV, 2 FLOPs per multiply-add each.

    Multi-head latent attention decodes in the compressed latent (queries absorbed into kv_lora_rank plus the
    rope part) but prefills with keys and values expanded to their heads, which is cheaper per pair when many
    queries share them; sliding-window and chunked layers see at most their window of keys, which over a
    context of `context_tokens` scales their share of pairs by window / context.
    """
    if model.is_mla and not prefill:
        per_layer = 2.0 * model.attention_heads * (2 * model.kv_lora_rank + model.qk_rope_head_dim)
    else:
        v_dim = model.v_head_dim or model.head_dim
        per_layer = 2.0 * model.attention_heads * (model.head_dim + v_dim)
    layers = float(model.full_attention_layers)
    if model.local_layers:
        layers += model.local_layers * min(1.0, model.local_window / max(context_tokens, 1))
    return per_layer * layers


def build_step_model(
    dep: Deployment, eff: Efficiency, *, context_tokens: int, max_num_seqs: int | None = None
) -> StepModel:
    """Coefficients for step_s(); raises UnsupportedCombination if the deployment cannot run at all."""
    check_supported(dep)
    model, gpu, quant = dep.model, dep.gpu, dep.quant
    seqs = max_num_seqs or dep.max_num_seqs or dep.profile.max_num_seqs
    fit = memory_fit(dep, context_tokens, max_num_seqs=seqs)
    dense, per_expert = expert_split(model)
    dense_wb, expert_wb = weight_bytes_per_param(dep)
    kv_elem = dep.effective_kv_bytes_per_element
    comm = collectives(dep)
    shards = expert_shards(dep)
    k = model.experts_per_token if per_expert else 0
    active_dense = model.params_active_b * 1e9 - k * per_expert
    return StepModel(
        max_num_seqs=seqs,
        token_budget=dep.effective_token_budget,
        kv_capacity_tokens=fit.kv_capacity_tokens,
        paged=fit.paged,
        pp=dep.pp,
        dp=dep.dp,
        dense_weight_bytes=dense * dense_wb / dep.tp / dep.pp,
        expert_weight_bytes=per_expert * expert_wb / (shards if dep.ep == 1 else 1) / dep.pp,
        local_experts=(model.num_experts / dep.ep) if per_expert else 0.0,
        num_experts=model.num_experts if per_expert else 0,
        experts_per_token=k,
        dense_flops_per_token=2.0 * active_dense / dep.tp / dep.pp,
        expert_flops_per_token=2.0 * k * per_expert / shards / dep.pp,
        attn_flops_per_pair=attention_flops_per_pair(model, context_tokens) / dep.tp / dep.pp,
        prefill_attn_flops_per_pair=attention_flops_per_pair(model, context_tokens, prefill=True)
        / dep.tp
        / dep.pp,
        kv_bytes_per_token_gpu=kv_bytes_per_token_gpu(model, dep.tp, kv_elem, dep.pp, max(context_tokens, 1)),
        peak_bandwidth_bytes_per_s=gpu.memory_bandwidth_tbps * 1e12,
        peak_flops_per_s=(compute_tflops(gpu, quant, dep.engine) or 0.0) * 1e12,
        peak_attn_flops_per_s=attention_tflops(gpu, kv_elem) * 1e12,
        allreduces_per_stage=comm.allreduces,
        allreduce_hops=comm.allreduce_hops,
        allreduce_bytes_per_token=comm.allreduce_bytes_per_token,
        alltoalls_per_stage=comm.alltoalls,
        alltoall_hops=comm.alltoall_hops,
        alltoall_bytes_per_token=comm.alltoall_bytes_per_token,
        link_bytes_per_s=comm.link.bus_bytes_per_s,
        deployment=dep,
        memory=fit,
        efficiency=eff,
        **efficiency_fields(eff),
    )
