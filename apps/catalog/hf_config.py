"""A ModelSpec from any Hugging Face config.json: dense (Llama, Mistral, Qwen2/3, Gemma, Phi) and mixture-of-experts
(Mixtral, Qwen-MoE, DeepSeek-style with shared experts and multi-head latent attention). Pure; no Django.

Parameter counts are computed from the shapes: embeddings, attention projections (with biases where the family
has them), gated or plain MLPs, routed and shared experts, routers and norms. Total counts every expert; active
counts the experts one token uses (num_experts_per_tok routed + all shared).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.catalog.specs import ModelSpec

# Families whose MLP is two matrices (up, down) instead of three (gate, up, down).
_PLAIN_MLP = frozenset(
    {"phi", "gpt2", "gpt_neox", "gptj", "opt", "falcon", "starcoder2", "bloom", "gpt_bigcode"}
)
# Families whose q/k/v projections carry biases.
_QKV_BIAS = frozenset({"qwen2", "qwen2_moe", "qwen2_vl", "phi", "starcoder2", "gpt_neox", "gpt2", "bloom"})
_TIED_BY_DEFAULT = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text", "phi"})


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


def model_spec_from_hf_config(config: Mapping[str, Any], slug: str, name: str | None = None) -> ModelSpec:
    # Multimodal wrappers (Gemma 3, Llama 4, Qwen-VL) keep the language model under text_config.
    text = config.get("text_config")
    cfg: Mapping[str, Any] = {**config, **text} if isinstance(text, Mapping) else config
    model_type = str(cfg.get("model_type", "")).lower()

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
    kv_lora = cfg.get("kv_lora_rank")
    if kv_lora:  # DeepSeek V2/V3 multi-head latent attention
        kv_lora = int(kv_lora)
        rope_dim = _int(cfg, "qk_rope_head_dim")
        nope_dim = _int(cfg, "qk_nope_head_dim")
        v_dim = _int(cfg, "v_head_dim")
        q_lora = cfg.get("q_lora_rank")
        q_head = heads * (nope_dim + rope_dim)
        q_params = hidden * int(q_lora) + int(q_lora) + int(q_lora) * q_head if q_lora else hidden * q_head
        attn = q_params + hidden * (kv_lora + rope_dim) + kv_lora + kv_lora * heads * (nope_dim + v_dim)
        attn += heads * v_dim * hidden
        # The cache holds one compressed latent plus the rope key per token per layer; expressed as one "KV
        # head" of half that width so 2 · layers · kv_heads · head_dim counts the right bytes.
        kv_heads, cache_head_dim = 1, (kv_lora + rope_dim + 1) // 2
        head_dim_out = cache_head_dim
    else:
        attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
        if cfg.get("attention_bias", model_type in _QKV_BIAS) or cfg.get("qkv_bias"):
            attn += heads * head_dim + 2 * kv_heads * head_dim
        head_dim_out = head_dim
    norms = 2 * hidden
    if model_type.startswith(("gemma2", "gemma3")):
        norms = 4 * hidden  # pre and post norms around attention and MLP
    if model_type.startswith(("qwen3", "gemma3")):
        norms += 2 * head_dim  # q and k norms

    dense_mlp = mlp_matrices * hidden * intermediate

    # Mixture of experts.
    experts = _int(cfg, "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", default=0)
    per_token = _int(cfg, "num_experts_per_tok", "moe_top_k", "top_k", default=0) if experts else 0
    expert_size = _int(cfg, "moe_intermediate_size", "expert_intermediate_size", default=intermediate)
    expert_params = mlp_matrices * hidden * expert_size
    shared = 0
    if experts:
        if cfg.get("shared_expert_intermediate_size"):  # Qwen2-MoE: one shared expert of its own width, gated
            shared = mlp_matrices * hidden * int(cfg["shared_expert_intermediate_size"]) + hidden
        elif cfg.get("n_shared_experts"):  # DeepSeek: n shared experts of the routed width
            shared = int(cfg["n_shared_experts"]) * expert_params
    router = hidden * experts

    moe_layers = 0
    if experts:
        first_dense = _int(cfg, "first_k_dense_replace", default=0)
        every = _int(cfg, "moe_layer_freq", "decoder_sparse_step", default=1) or 1
        mlp_only = set(cfg.get("mlp_only_layers") or [])
        moe_layers = sum(
            1 for i in range(layers) if i >= first_dense and i % every == 0 and i not in mlp_only
        )
    dense_layers = layers - moe_layers

    embeddings = vocab * hidden
    lm_head = 0 if tied else vocab * hidden
    per_layer_common = attn + norms
    moe_layer_total = experts * expert_params + shared + router
    moe_layer_active = per_token * expert_params + shared + router
    total = (
        embeddings
        + lm_head
        + hidden
        + layers * per_layer_common
        + dense_layers * dense_mlp
        + moe_layers * moe_layer_total
    )
    active = total - moe_layers * (moe_layer_total - moe_layer_active)

    notes = [f"parameters computed from config.json ({model_type or 'unknown type'})"]
    if cfg.get("sliding_window"):
        notes.append(
            f"sliding window {cfg['sliding_window']} not used to shrink the KV estimate (conservative)"
        )
    if kv_lora:
        notes.append("multi-head latent attention: KV cache counted as the compressed latent")
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
        head_dim=head_dim_out,
        intermediate=expert_size if experts else intermediate,
        vocab=vocab,
        max_context=max_context,
        architecture_type="moe" if experts else "dense",
        num_experts=experts,
        experts_per_token=per_token,
        source="hf config.json",
        notes="; ".join(notes),
    )
