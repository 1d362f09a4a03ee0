"""KV-cache bytes per token, checked by hand against the published configs of four attention designs.

Each expected number is worked out below from the config.json fields (BF16 cache: 2 bytes per element), then
compared with the catalog row (models.csv) and with a fresh import of the stored config.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from apps.catalog.hf_config import model_spec_from_hf_config
from apps.catalog.specs import DATA_DIR, ModelSpec, load_models

BF16 = 2
CONTEXT_8K = 8192


def _config(slug: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((DATA_DIR / "configs" / f"{slug}.json").read_text())
    return config


def _specs(slug: str) -> tuple[ModelSpec, ModelSpec]:
    """(catalog row, fresh import of the stored config)."""
    catalog = {model.slug: model for model in load_models()}
    return catalog[slug], model_spec_from_hf_config(_config(slug), slug=slug)


def test_deepseek_r1_caches_one_latent_per_layer() -> None:
    config = _config("deepseek-r1")
    # MLA: per token and layer one compressed KV latent (kv_lora_rank) plus the shared RoPE key (qk_rope_head_dim),
    # whatever the 128 heads: 61 * (512 + 64) * 2 = 70,272 bytes, and no window, so the same at any context.
    assert (config["num_hidden_layers"], config["kv_lora_rank"], config["qk_rope_head_dim"]) == (61, 512, 64)
    expected = 61 * (512 + 64) * BF16

    for spec in _specs("deepseek-r1"):
        assert spec.is_mla
        assert spec.kv_bytes_per_token() == expected == 70272
        assert spec.kv_bytes_per_token(context_tokens=CONTEXT_8K) == expected
        # the latent has no head axis: every tensor-parallel rank holds all of it
        assert spec.kv_bytes_per_token_gpu(8) == expected
        # reading the same config as GQA (128 KV heads of 192-wide keys and 128-wide values) would cache 71x more
        assert (spec.kv_heads, spec.head_dim, spec.v_head_dim) == (128, 192, 128)
        assert 71 * expected < 61 * 128 * (192 + 128) * BF16


def test_gpt_oss_120b_alternates_full_and_128_token_sliding_layers() -> None:
    config = _config("gpt-oss-120b")
    layer_types = config["layer_types"]
    assert len(layer_types) == config["num_hidden_layers"] == 36
    assert layer_types.count("sliding_attention") == layer_types.count("full_attention") == 18
    assert config["sliding_window"] == 128
    # per layer per token: 8 KV heads * (64 K + 64 V) * 2 bytes = 2,048
    per_layer = config["num_key_value_heads"] * (config["head_dim"] * 2) * BF16
    assert per_layer == 2048

    for spec in _specs("gpt-oss-120b"):
        assert (spec.local_attention, spec.local_window, spec.local_layers) == ("sliding", 128, 18)
        assert spec.attention_sinks
        # shorter than the window every layer holds every token: 36 * 2,048
        assert spec.kv_bytes_per_token() == 36 * per_layer == 73728
        assert spec.kv_bytes_per_token(context_tokens=100) == 73728
        # at 8k: 18 full layers hold 8,192 tokens, 18 sliding layers only 128
        assert spec.kv_cache_bytes(CONTEXT_8K) == (18 * CONTEXT_8K + 18 * 128) * per_layer
        assert (
            spec.kv_bytes_per_token(context_tokens=CONTEXT_8K) == 18 * per_layer + 18 * per_layer * 128 / 8192
        )
        assert spec.kv_bytes_per_token(context_tokens=CONTEXT_8K) == 37440


def test_gemma_3_27b_keeps_one_global_layer_in_six() -> None:
    config = _config("gemma-3-27b")["text_config"]
    assert (config["num_hidden_layers"], config["sliding_window"]) == (62, 1024)
    # The published config leaves sliding_window_pattern to transformers' Gemma3TextConfig default, 6: layers
    # 6, 12, ..., 60 (1-based) are global, so 62 // 6 = 10 global and 52 local (window 1,024).
    assert "sliding_window_pattern" not in config
    globals_, locals_ = 62 // 6, 62 - 62 // 6
    per_layer = config["num_key_value_heads"] * config["head_dim"] * 2 * BF16  # 16 * 128 * 2 * 2 = 8,192
    assert (globals_, locals_, per_layer) == (10, 52, 8192)

    for spec in _specs("gemma-3-27b"):
        assert (spec.local_attention, spec.local_window, spec.local_layers) == ("sliding", 1024, 52)
        assert spec.kv_bytes_per_token() == 62 * per_layer == 507904
        assert spec.kv_cache_bytes(CONTEXT_8K) == (10 * CONTEXT_8K + 52 * 1024) * per_layer
        assert spec.kv_bytes_per_token(context_tokens=CONTEXT_8K) == 135168
        # long contexts approach the global layers' share alone: 10 * 8,192
        assert spec.kv_bytes_per_token(context_tokens=131072) == pytest.approx(10 * per_layer, rel=0.07)


def test_llama_31_8b_is_plain_grouped_query_attention() -> None:
    config = _config("llama-3.1-8b")
    # 32 layers * 8 KV heads * (128 K + 128 V) * 2 bytes; head_dim = 4,096 / 32
    expected = 32 * 8 * (128 + 128) * BF16
    assert config["hidden_size"] // config["num_attention_heads"] == 128

    for spec in _specs("llama-3.1-8b"):
        assert (spec.attention, spec.local_layers) == ("gqa", 0)
        assert spec.kv_bytes_per_token() == expected == 131072
        assert spec.kv_bytes_per_token(context_tokens=CONTEXT_8K) == expected
        assert spec.kv_cache_bytes(CONTEXT_8K) == expected * CONTEXT_8K
        # tensor parallelism splits the 8 KV heads; past 8 ranks each rank repeats one head
        assert spec.kv_bytes_per_token_gpu(4) == expected / 4
        assert spec.kv_bytes_per_token_gpu(16) == expected / 8


def test_fp8_cache_halves_every_design() -> None:
    for slug in ("deepseek-r1", "gpt-oss-120b", "gemma-3-27b", "llama-3.1-8b"):
        spec, _ = _specs(slug)
        assert spec.kv_bytes_per_token(1.0, CONTEXT_8K) == spec.kv_bytes_per_token(2.0, CONTEXT_8K) / 2


def test_a_negative_or_empty_context_is_refused() -> None:
    spec, _ = _specs("gemma-3-27b")
    with pytest.raises(ValueError, match="context_tokens"):
        spec.kv_cache_bytes(-1)
    with pytest.raises(ValueError, match="context_tokens"):
        spec.kv_bytes_per_token(context_tokens=0)
