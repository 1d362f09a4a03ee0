"""A ModelSpec from any Hugging Face config.json: dense (Llama, Mistral, Qwen2/3, Gemma 2/3, Phi) and mixture-of-experts
(Mixtral, Qwen-MoE, DeepSeek V2/V3 with shared experts and multi-head latent attention, gpt-oss, Llama 4). Pure; no
Django.

Parameter counts are computed from the shapes: embeddings, attention projections (with biases where the family has
them), gated or plain MLPs, routed and shared experts, routers and norms. Total counts every expert of the language
model (vision towers of multimodal wrappers and DeepSeek's multi-token-prediction layer are left out); active counts
the experts one token uses (num_experts_per_tok routed + all shared).

Per-layer attention follows the family's rules: `layer_types` when the config lists them (gpt-oss, newer Gemma),
Gemma 2's alternation, Gemma 3's `sliding_window_pattern`, and Llama 4's chunked attention on its RoPE layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apps.catalog.specs import ModelSpec

# Families whose MLP is two matrices (up, down) instead of three (gate, up, down).
_PLAIN_MLP = frozenset(
    {"phi", "gpt2", "gpt_neox", "gptj", "opt", "falcon", "starcoder2", "bloom", "gpt_bigcode"}
)
# Families whose q/k/v projections carry biases (and o_proj does not).
_QKV_BIAS = frozenset({"qwen2", "qwen2_moe", "qwen2_vl", "phi", "starcoder2", "gpt_neox", "gpt2", "bloom"})
_TIED_BY_DEFAULT = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text", "phi"})
# Defaults of transformers' Gemma3TextConfig for fields the published Gemma 3 config.json leaves out.
_GEMMA3_DEFAULTS: Mapping[str, Any] = {
    "vocab_size": 262_208,
    "sliding_window_pattern": 6,
    "max_position_embeddings": 131_072,
}
# transformers' Llama4TextConfig: every `no_rope_layer_interval`-th layer is NoPE (global attention), the others use
# RoPE with chunked attention; MoE layers every `interleave_moe_layer_step`-th layer.
_LLAMA4_NO_ROPE_INTERVAL = 4
_SLIDING_TYPES = frozenset({"sliding_attention", "chunked_attention"})


class ConfigError(ValueError):
    """The config lacks a field the parameter count needs."""


def _int(config: Mapping[str, Any], *keys: str, default: int | None = None) -> int:
    for key in keys:
        value = config.get(key)
        if value is not None:
            return int(value)
    if default is None:
        raise ConfigError(f"config.json has none of {', '.join(keys)}")
    return default


@dataclass(frozen=True)
class _LocalAttention:
    kind: str  # "" | "sliding" | "chunked"
    window: int
    layers: int


def _local_attention(cfg: Mapping[str, Any], model_type: str, layers: int) -> _LocalAttention:
    layer_types = cfg.get("layer_types")
    if model_type.startswith("llama4"):
        chunk = cfg.get("attention_chunk_size")
        if not chunk:
            return _LocalAttention("", 0, 0)
        no_rope: Sequence[int] = cfg.get("no_rope_layers") or [
            int((i + 1) % _LLAMA4_NO_ROPE_INTERVAL != 0) for i in range(layers)
        ]
        return _LocalAttention("chunked", int(chunk), sum(1 for use_rope in no_rope[:layers] if use_rope))
    window = cfg.get("sliding_window")
    if not window or cfg.get("use_sliding_window") is False:
        return _LocalAttention("", 0, 0)
    if isinstance(layer_types, Sequence) and not isinstance(layer_types, str):
        count = sum(1 for kind in layer_types[:layers] if kind in _SLIDING_TYPES)
    elif model_type.startswith("gemma3"):
        pattern = _int(cfg, "sliding_window_pattern")
        count = sum(1 for i in range(layers) if (i + 1) % pattern)
    elif model_type.startswith("gemma2"):
        count = sum(1 for i in range(layers) if i % 2 == 0)
    elif model_type.startswith("qwen"):
        # Qwen2/3 apply the window only to layers at or above max_window_layers, and only with use_sliding_window.
        count = layers - min(layers, _int(cfg, "max_window_layers", default=layers))
    else:
        count = layers  # Mistral 7B v0.1 style: every layer slides
    return _LocalAttention("sliding", int(window), count) if count else _LocalAttention("", 0, 0)


def _moe_layer_count(cfg: Mapping[str, Any], model_type: str, layers: int) -> int:
    if model_type.startswith("llama4"):
        moe_layers = cfg.get("moe_layers")
        if moe_layers is not None:
            return len(moe_layers)
        step = _int(cfg, "interleave_moe_layer_step", default=1) or 1
        return len(range(step - 1, layers, step))
    if model_type.startswith(("deepseek", "kimi")):
        first_dense = _int(cfg, "first_k_dense_replace", default=0)
        freq = _int(cfg, "moe_layer_freq", default=1) or 1
        return sum(1 for i in range(layers) if i >= first_dense and i % freq == 0)
    step = _int(cfg, "decoder_sparse_step", default=1) or 1
    mlp_only = set(cfg.get("mlp_only_layers") or [])
    return sum(1 for i in range(layers) if (i + 1) % step == 0 and i not in mlp_only)


def _native_quant(cfg: Mapping[str, Any]) -> tuple[str, str]:
    quant = cfg.get("quantization_config")
    if not isinstance(quant, Mapping):
        return "", ""
    method = str(quant.get("quant_method", "")).lower()
    if method == "mxfp4":
        return "mxfp4", "experts"
    if method == "fp8":
        return ("fp8-block" if quant.get("weight_block_size") else "fp8"), "linear"
    return method, ""


def model_spec_from_hf_config(config: Mapping[str, Any], slug: str, name: str | None = None) -> ModelSpec:
    # Multimodal wrappers (Gemma 3, Llama 4, Mistral 3, Qwen-VL) keep the language model under text_config.
    text = config.get("text_config")
    cfg: Mapping[str, Any] = {**config, **text} if isinstance(text, Mapping) else config
    model_type = str(cfg.get("model_type", "")).lower()
    if model_type.startswith("gemma3"):
        cfg = {**_GEMMA3_DEFAULTS, **cfg}

    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _int(cfg, "num_attention_heads", "n_head")
    kv_heads = _int(cfg, "num_key_value_heads", "num_kv_heads", "multi_query_group_num", default=heads)
    head_dim = _int(cfg, "head_dim", default=hidden // heads)
    intermediate = _int(cfg, "intermediate_size", "ffn_dim", "n_inner", default=4 * hidden)
    vocab = _int(cfg, "vocab_size")
    max_context = _int(cfg, "max_position_embeddings", "n_positions", "seq_length", default=0)
    tied = bool(cfg.get("tie_word_embeddings", model_type in _TIED_BY_DEFAULT))
    gated = model_type not in _PLAIN_MLP
    mlp_matrices = 3 if gated else 2

    # Attention projections per layer.
    kv_lora = _int(cfg, "kv_lora_rank", default=0)
    rope_dim = q_lora = v_dim = 0
    if kv_lora:  # DeepSeek V2/V3 multi-head latent attention
        rope_dim = _int(cfg, "qk_rope_head_dim")
        nope_dim = _int(cfg, "qk_nope_head_dim")
        v_dim = _int(cfg, "v_head_dim")
        q_lora = _int(cfg, "q_lora_rank", default=0)
        head_dim = nope_dim + rope_dim
        q_head = heads * head_dim
        q_params = hidden * q_lora + q_lora + q_lora * q_head if q_lora else hidden * q_head
        attn = q_params + hidden * (kv_lora + rope_dim) + kv_lora + kv_lora * heads * (nope_dim + v_dim)
        attn += heads * v_dim * hidden
    else:
        attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
        if model_type in _QKV_BIAS or cfg.get("qkv_bias"):
            attn += heads * head_dim + 2 * kv_heads * head_dim
        elif cfg.get("attention_bias"):  # Llama-style flag: q, k, v and o all carry biases
            attn += heads * head_dim + 2 * kv_heads * head_dim + hidden
    sinks = model_type == "gpt_oss"
    if sinks:
        attn += heads  # one learned sink logit per head
    norms = 2 * hidden
    if model_type.startswith(("gemma2", "gemma3")):
        norms = 4 * hidden  # pre and post norms around attention and MLP
    if model_type.startswith(("qwen3", "gemma3")):
        norms += 2 * head_dim  # q and k norms (Llama 4's qk norm has no weights)

    # Mixture of experts.
    experts = _int(cfg, "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", default=0)
    per_token = _int(cfg, "num_experts_per_tok", "experts_per_token", "moe_top_k", "top_k", default=0)
    per_token = per_token if experts else 0
    if model_type.startswith("llama4"):
        # Routed and shared experts are intermediate_size wide; dense layers use intermediate_size_mlp.
        expert_size = intermediate
        dense_size = _int(cfg, "intermediate_size_mlp", default=intermediate)
    else:
        expert_size = _int(cfg, "moe_intermediate_size", "expert_intermediate_size", default=intermediate)
        dense_size = intermediate
    expert_params = mlp_matrices * hidden * expert_size
    router = hidden * experts
    if model_type == "gpt_oss":
        expert_params += 2 * expert_size + hidden  # gate_up and down biases
        router += experts  # router bias
    if experts and str(cfg.get("topk_method", "")) == "noaux_tc":
        router += experts  # e_score_correction_bias
    shared_count, shared = 0, 0
    if experts:
        if cfg.get("shared_expert_intermediate_size"):  # Qwen2-MoE: one shared expert of its own width, gated
            shared_count = 1
            shared = mlp_matrices * hidden * int(cfg["shared_expert_intermediate_size"]) + hidden
        elif cfg.get("n_shared_experts"):  # DeepSeek: n shared experts of the routed width
            shared_count = int(cfg["n_shared_experts"])
            shared = shared_count * mlp_matrices * hidden * expert_size
        elif model_type.startswith("llama4"):  # every Llama 4 MoE layer adds one shared expert
            shared_count, shared = 1, mlp_matrices * hidden * expert_size

    moe_layers = _moe_layer_count(cfg, model_type, layers) if experts else 0
    dense_layers = layers - moe_layers

    embeddings = vocab * hidden
    lm_head = 0 if tied else vocab * hidden
    moe_layer_total = experts * expert_params + shared + router
    moe_layer_active = per_token * expert_params + shared + router
    total = (
        embeddings
        + lm_head
        + hidden
        + layers * (attn + norms)
        + dense_layers * mlp_matrices * hidden * dense_size
        + moe_layers * moe_layer_total
    )
    active = total - moe_layers * (moe_layer_total - moe_layer_active)

    local = _local_attention(cfg, model_type, layers)
    native_quant, native_scope = _native_quant(cfg)
    notes = [f"parameters computed from config.json ({model_type or 'unknown type'})"]
    if local.layers:
        notes.append(
            f"{local.layers} of {layers} layers use {local.kind} attention over {local.window} tokens"
        )
    if kv_lora:
        notes.append("multi-head latent attention: KV cache is the compressed latent plus the rope key")
    return ModelSpec(
        slug=slug,
        name=name or str(cfg.get("_name_or_path") or slug),
        hf_repo=str(cfg.get("_name_or_path") or ""),
        params_total_b=total / 1e9,
        params_active_b=active / 1e9,
        layers=layers,
        hidden=hidden,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=expert_size if experts else intermediate,
        vocab=vocab,
        max_context=max_context,
        architecture_type="moe" if experts else "dense",
        num_experts=experts,
        experts_per_token=per_token,
        source="hf config.json",
        notes="; ".join(notes),
        attention="mla" if kv_lora else "gqa",
        v_head_dim=v_dim,
        q_lora_rank=q_lora,
        kv_lora_rank=kv_lora,
        qk_rope_head_dim=rope_dim,
        local_attention=local.kind,
        local_window=local.window,
        local_layers=local.layers,
        attention_sinks=sinks,
        moe_layers=moe_layers,
        moe_intermediate=expert_size if experts else 0,
        dense_intermediate=dense_size if experts and dense_layers else 0,
        shared_experts=shared_count,
        expert_params=expert_params if experts else 0,
        shared_expert_params=shared,
        native_quant=native_quant,
        native_quant_scope=native_scope,
    )
