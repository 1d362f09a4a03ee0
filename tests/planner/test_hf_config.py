"""Importing Hugging Face config.json files: parameter counts against the shipped catalog and known MoE models."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from apps.catalog.hf_config import ConfigError, model_spec_from_hf_config
from apps.catalog.specs import DATA_DIR, CatalogSnapshot, ModelSpec

CONFIGS = sorted((DATA_DIR / "configs").glob("*.json"))

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

# The shape columns of models.csv written back as the config fields each family uses, for the models whose
# config.json is not stored in apps/catalog/data/configs.
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
    "gemma-2-27b": {"model_type": "gemma2", "sliding_window": 4096},
}
# Catalog fields a stored config must reproduce exactly (the rest are names, sources and notes).
SHAPE_FIELDS = (
    "layers", "hidden", "attention_heads", "kv_heads", "head_dim", "vocab", "max_context", "architecture_type",
    "num_experts", "experts_per_token", "attention", "v_head_dim", "q_lora_rank", "kv_lora_rank",
    "qk_rope_head_dim", "local_attention", "local_window", "local_layers", "attention_sinks", "moe_layers",
    "moe_intermediate", "dense_intermediate", "shared_experts", "expert_params", "shared_expert_params",
)  # fmt: skip


def test_llama_31_8b_counts_8_03_billion() -> None:
    spec = model_spec_from_hf_config(LLAMA_31_8B, slug="llama-3.1-8b")

    assert spec.params_total_b == pytest.approx(8.03, rel=0.01)
    assert spec.params_active_b == spec.params_total_b
    assert spec.head_dim == 128  # missing head_dim: hidden / heads
    assert spec.kv_bytes_per_token() == 131072
    assert spec.architecture_type == "dense"


def test_every_shipped_model_without_a_stored_config_is_reproduced_from_its_shape(
    catalog: CatalogSnapshot,
) -> None:
    stored = {path.stem for path in CONFIGS}
    for model in catalog.models:
        if model.slug in stored:
            continue
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
        assert (spec.local_layers, spec.local_window) == (model.local_layers, model.local_window), model.slug


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_every_stored_config_reproduces_its_catalog_row(path: Any, catalog: CatalogSnapshot) -> None:
    model = catalog.model(path.stem)

    spec = model_spec_from_hf_config(json.loads(path.read_text()), slug=model.slug)

    assert {f: getattr(spec, f) for f in SHAPE_FIELDS} == {f: getattr(model, f) for f in SHAPE_FIELDS}
    assert spec.intermediate == model.intermediate
    # models.csv rounds to 3 decimals (2 for the rows that predate the stored configs)
    assert spec.params_total_b == pytest.approx(model.params_total_b, abs=0.005)
    assert spec.params_active_b == pytest.approx(model.params_active_b, abs=0.005)
    # NVIDIA's copy of the DeepSeek-V3.1 config drops DeepSeek's FP8 quantization_config (configs/README.md)
    if model.slug != "deepseek-v3.1":
        assert (spec.native_quant, spec.native_quant_scope) == (model.native_quant, model.native_quant_scope)


def test_card_parameter_counts_agree_with_the_computed_ones(catalog: CatalogSnapshot) -> None:
    """Cards and model names round (Llama-2-7B computes 6.74B); within 5%, except gpt-oss's active figure,
    which its card gives without the embedding table."""
    carded = [model for model in catalog.models if model.params_card_total_b is not None]
    assert len(carded) >= 13
    for model in carded:
        assert model.params_total_b == pytest.approx(model.params_card_total_b, rel=0.05), model.slug
        active = model.params_active_b
        if model.slug.startswith("gpt-oss"):
            active -= model.vocab * model.hidden / 1e9
        assert active == pytest.approx(model.params_card_active_b, rel=0.05), model.slug


def _stored(slug: str) -> ModelSpec:
    return model_spec_from_hf_config(
        json.loads((DATA_DIR / "configs" / f"{slug}.json").read_text()), slug=slug
    )


def test_gpt_oss_reads_layer_types_sinks_and_mxfp4_experts() -> None:
    spec = _stored("gpt-oss-20b")

    assert (spec.layers, spec.local_layers, spec.local_window) == (24, 12, 128)
    assert spec.attention_sinks
    assert (spec.num_experts, spec.experts_per_token, spec.moe_layers, spec.shared_experts) == (32, 4, 24, 0)
    assert (spec.native_quant, spec.native_quant_scope) == ("mxfp4", "experts")
    # one expert: gate+up (2 x 2,880 x 2,880 with biases) and down (2,880 x 2,880 with bias)
    assert spec.expert_params == 3 * 2880 * 2880 + 2 * 2880 + 2880


def test_deepseek_r1_reads_dense_layers_shared_expert_and_fp8_blocks() -> None:
    spec = _stored("deepseek-r1")

    assert (spec.moe_layers, spec.dense_layers, spec.dense_intermediate, spec.moe_intermediate) == (
        58,
        3,
        18432,
        2048,
    )
    assert (spec.shared_experts, spec.shared_expert_params) == (1, 3 * 7168 * 2048)
    assert spec.expert_params == 3 * 7168 * 2048
    assert (spec.native_quant, spec.native_quant_scope) == ("fp8-block", "linear")
    assert (spec.q_lora_rank, spec.kv_lora_rank, spec.qk_rope_head_dim, spec.v_head_dim) == (
        1536,
        512,
        64,
        128,
    )
    # what expert parallelism spreads: 58 layers x 256 experts
    assert spec.routed_expert_params_total == 58 * 256 * spec.expert_params


def test_llama_4_reads_chunked_attention_and_interleaved_moe() -> None:
    scout, maverick = _stored("llama-4-scout"), _stored("llama-4-maverick")

    # every 4th layer is NoPE with global attention; the other three attend within 8,192-token chunks
    assert (scout.local_attention, scout.local_window, scout.local_layers) == ("chunked", 8192, 36)
    assert (scout.moe_layers, scout.num_experts, scout.experts_per_token, scout.shared_experts) == (
        48,
        16,
        1,
        1,
    )
    # Maverick alternates dense (16,384-wide MLP) and MoE layers
    assert (maverick.moe_layers, maverick.dense_layers, maverick.dense_intermediate) == (24, 24, 16384)
    assert maverick.num_experts == 128


def test_gemma_3_and_qwen3_moe_shapes() -> None:
    gemma, qwen = _stored("gemma-3-27b"), _stored("qwen3-30b-a3b")

    assert (gemma.local_attention, gemma.local_layers, gemma.local_window, gemma.vocab) == (
        "sliding",
        52,
        1024,
        262208,
    )
    assert (qwen.num_experts, qwen.experts_per_token, qwen.shared_experts, qwen.moe_intermediate) == (
        128,
        8,
        0,
        768,
    )
    assert qwen.expert_params_per_token == 48 * 8 * 3 * 2048 * 768


def test_spec_fields_all_have_defaults_after_the_original_ones() -> None:
    """Existing callers build ModelSpec with the original fields only; the added ones must stay optional."""
    required = [f.name for f in dataclasses.fields(ModelSpec) if f.default is dataclasses.MISSING]

    assert required[-1] == "notes"


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
    assert (spec.attention, spec.kv_lora_rank, spec.qk_rope_head_dim) == ("mla", 512, 64)
    assert spec.head_dim == 128 + 64  # query/key head: qk_nope_head_dim + qk_rope_head_dim


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
