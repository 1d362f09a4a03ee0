"""Importing Hugging Face config.json files: parameter counts against the shipped catalog and known MoE models."""

from __future__ import annotations

from typing import Any

import pytest

from apps.catalog.hf_config import ConfigError, model_spec_from_hf_config
from apps.catalog.specs import CatalogSnapshot

LLAMA_31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "rope_scaling": {"factor": 8.0, "rope_type": "llama3"},
}

# The shape columns of models.csv written back as the config fields each family uses.
FAMILY_FIELDS: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": {"model_type": "llama"},
    "llama-3.1-70b": {"model_type": "llama"},
    "llama-3.3-70b": {"model_type": "llama"},
    "llama-3.1-405b": {"model_type": "llama"},
    "deepseek-r1-distill-llama-70b": {"model_type": "llama"},
    "mistral-7b-v0.3": {"model_type": "mistral"},
    "mixtral-8x7b": {"model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2},
    "qwen2.5-7b": {"model_type": "qwen2", "tie_word_embeddings": False},
    "qwen2.5-72b": {"model_type": "qwen2", "tie_word_embeddings": False},
    "qwen3-32b": {"model_type": "qwen3", "tie_word_embeddings": False},
    "phi-4": {"model_type": "phi3", "tie_word_embeddings": False},
    "gemma-2-27b": {"model_type": "gemma2"},
}


def test_llama_31_8b_counts_8_03_billion() -> None:
    spec = model_spec_from_hf_config(LLAMA_31_8B, slug="llama-3.1-8b")

    assert spec.params_total_b == pytest.approx(8.03, rel=0.01)
    assert spec.params_active_b == spec.params_total_b
    assert spec.head_dim == 128  # missing head_dim: hidden / heads
    assert spec.kv_bytes_per_token() == 131072
    assert spec.architecture_type == "dense"


def test_every_shipped_model_is_reproduced_from_its_shape(catalog: CatalogSnapshot) -> None:
    for model in catalog.models:
        config = {
            "hidden_size": model.hidden,
            "num_hidden_layers": model.layers,
            "num_attention_heads": model.attention_heads,
            "num_key_value_heads": model.kv_heads,
            "head_dim": model.head_dim,
            "intermediate_size": model.intermediate,
            "vocab_size": model.vocab,
            "max_position_embeddings": model.max_context,
            **FAMILY_FIELDS[model.slug],
        }

        spec = model_spec_from_hf_config(config, slug=model.slug)

        assert spec.params_total_b == pytest.approx(model.params_total_b, rel=0.01), model.slug
        assert spec.params_active_b == pytest.approx(model.params_active_b, rel=0.01), model.slug
        assert spec.kv_bytes_per_token() == model.kv_bytes_per_token(), model.slug


@pytest.mark.parametrize(
    ("config", "total_b", "active_b"),
    [
        (  # Qwen3-30B-A3B: 128 routed experts, 8 per token
            {"model_type": "qwen3_moe", "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32,
             "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 6144, "moe_intermediate_size": 768,
             "num_experts": 128, "num_experts_per_tok": 8, "vocab_size": 151936, "decoder_sparse_step": 1,
             "mlp_only_layers": [], "tie_word_embeddings": False},
            30.5, 3.3,
        ),
        (  # Qwen1.5-MoE-A2.7B: 60 experts, top-4, one gated shared expert
            {"model_type": "qwen2_moe", "hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16,
             "num_key_value_heads": 16, "intermediate_size": 5632, "moe_intermediate_size": 1408,
             "num_experts": 60, "num_experts_per_tok": 4, "shared_expert_intermediate_size": 5632,
             "vocab_size": 151936, "tie_word_embeddings": False},
            14.3, 2.7,
        ),
        (  # DeepSeek-V3: MLA, 256 routed + 1 shared expert, first 3 layers dense (without the MTP module)
            {"model_type": "deepseek_v3", "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128,
             "num_key_value_heads": 128, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
             "qk_nope_head_dim": 128, "v_head_dim": 128, "intermediate_size": 18432,
             "moe_intermediate_size": 2048, "n_routed_experts": 256, "n_shared_experts": 1,
             "num_experts_per_tok": 8, "first_k_dense_replace": 3, "moe_layer_freq": 1, "vocab_size": 129280,
             "tie_word_embeddings": False},
            671.0, 37.5,
        ),
    ],
)  # fmt: skip
def test_mixture_of_experts_counts_total_and_active(
    config: dict[str, Any], total_b: float, active_b: float
) -> None:
    spec = model_spec_from_hf_config(config, slug="moe")

    assert spec.architecture_type == "moe"
    assert spec.params_total_b == pytest.approx(total_b, rel=0.02)
    assert spec.params_active_b == pytest.approx(active_b, rel=0.03)
    assert spec.experts_per_token == config["num_experts_per_tok"]


def test_deepseek_latent_cache_is_counted_as_the_compressed_latent() -> None:
    config = {"model_type": "deepseek_v3", "hidden_size": 7168, "num_hidden_layers": 61,
              "num_attention_heads": 128, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
              "qk_nope_head_dim": 128, "v_head_dim": 128, "intermediate_size": 18432, "vocab_size": 129280}  # fmt: skip

    spec = model_spec_from_hf_config(config, slug="dsv3")

    assert spec.kv_bytes_per_token(2.0) == 61 * (512 + 64) * 2


def test_tied_embeddings_are_counted_once() -> None:
    untied = model_spec_from_hf_config(LLAMA_31_8B, slug="a")
    tied = model_spec_from_hf_config({**LLAMA_31_8B, "tie_word_embeddings": True}, slug="b")

    assert untied.params_total_b - tied.params_total_b == pytest.approx(128256 * 4096 / 1e9)


def test_multimodal_wrappers_use_the_text_config() -> None:
    wrapped = {"model_type": "llava", "text_config": LLAMA_31_8B, "vision_config": {"hidden_size": 1024}}

    spec = model_spec_from_hf_config(wrapped, slug="llava", name="LLaVA test")

    assert spec.params_total_b == pytest.approx(8.03, rel=0.01)
    assert spec.name == "LLaVA test"


def test_a_config_without_shapes_is_refused() -> None:
    with pytest.raises(ConfigError, match="hidden_size"):
        model_spec_from_hf_config({"model_type": "llama"}, slug="broken")
