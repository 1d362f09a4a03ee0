"""Every (model, quantization, engine) the planner can emit names a loadable checkpoint or is refused with a reason."""

from __future__ import annotations

import csv
import re

import pytest

from apps.catalog.checkpoints import DATA_FILE, Checkpoint, Refusal, checkpoint_for, known_models
from apps.catalog.specs import load_models, load_quantizations
from workers.engines import ENGINES, ServeConfig, serve_args

CATALOG_MODELS = [m.slug for m in load_models()]
QUANTS = [q.slug for q in load_quantizations()]


def test_every_catalog_model_has_its_published_weights_listed() -> None:
    assert set(CATALOG_MODELS) <= set(known_models())


@pytest.mark.parametrize("model", sorted({*CATALOG_MODELS, *known_models()}))
def test_every_option_is_a_loadable_checkpoint_or_a_refusal_with_a_reason(model: str) -> None:
    for engine, definition in ENGINES.items():
        for quant in QUANTS:
            if quant not in definition.quantizations:
                continue
            found = checkpoint_for(model, quant, engine)
            if isinstance(found, Refusal):
                assert len(found.reason) > 20, found
                continue
            assert found.repo, found
            assert found.source_url.startswith("https://huggingface.co/"), found
            assert found.runs_as
            # the engine really starts from it: load-time quantization only where the release does it
            config = ServeConfig(
                engine=engine,
                model_path=f"/models/{found.file}" if found.file else found.repo,
                served_name=model,
                quantization=quant,
                quantize_on_load=found.quantize_on_load,
            )
            serve_args(config)


def test_quantized_options_load_quantized_checkpoints() -> None:
    # given the options that once pointed the engines at the base BF16 repository
    awq = checkpoint_for("llama-3.1-8b", "awq-int4", "vllm")
    int8 = checkpoint_for("llama-3.1-8b", "int8", "vllm")
    nvfp4 = checkpoint_for("llama-3.3-70b", "nvfp4", "sglang")
    trt_fp8 = checkpoint_for("llama-3.1-70b", "fp8", "trtllm")

    # then each names a checkpoint published in that format
    assert isinstance(awq, Checkpoint)
    assert awq.repo == "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4"
    assert isinstance(int8, Checkpoint)
    assert int8.repo.endswith("quantized.w8a8")
    assert not int8.quantize_on_load
    assert isinstance(nvfp4, Checkpoint)
    assert nvfp4.repo == "nvidia/Llama-3.3-70B-Instruct-FP4"
    assert isinstance(trt_fp8, Checkpoint)
    assert trt_fp8.repo == "nvidia/Llama-3.1-70B-Instruct-FP8"
    assert trt_fp8.method == "prequantized"
    assert trt_fp8.runs_as == "fp8"


def test_fp8_is_made_while_loading_where_no_checkpoint_is_published_and_the_engine_can() -> None:
    found = checkpoint_for("phi-4", "fp8", "vllm")
    assert isinstance(found, Checkpoint)
    assert (found.repo, found.method, found.runs_as) == ("microsoft/phi-4", "quantize_on_load", "fp8")


def test_options_no_engine_can_load_are_refused_with_the_reason() -> None:
    trt_on_load = checkpoint_for("phi-4", "fp8", "trtllm")
    int8 = checkpoint_for("mistral-7b-v0.3", "int8", "vllm")
    r1_bf16 = checkpoint_for("deepseek-r1", "bf16", "vllm")
    gguf = checkpoint_for("phi-4", "gguf-q4_k_m", "llamacpp")
    assert isinstance(trt_on_load, Refusal)
    assert "does not quantize while loading" in trt_on_load.reason
    assert isinstance(int8, Refusal)
    assert "quantizes to fp8 only while loading" in int8.reason
    assert isinstance(r1_bf16, Refusal)
    assert "published in fp8" in r1_bf16.reason
    assert isinstance(gguf, Refusal)
    assert "GGUF" in gguf.reason
    assert isinstance(checkpoint_for("no-such-model", "bf16", "vllm"), Refusal)


def test_the_precision_the_engine_runs_is_the_published_one() -> None:
    gpt_oss = checkpoint_for("gpt-oss-120b", "mxfp4", "vllm")
    r1 = checkpoint_for("deepseek-r1", "nvfp4", "trtllm")
    r1_fp8 = checkpoint_for("deepseek-r1", "fp8", "sglang")
    assert isinstance(gpt_oss, Checkpoint)
    assert gpt_oss.runs_as == "mxfp4"
    assert gpt_oss.method == "native"
    # No 16-bit gpt-oss is published: asking for bf16 is refused, naming what is.
    refused = checkpoint_for("gpt-oss-120b", "bf16", "vllm")
    assert isinstance(refused, Refusal)
    assert "mxfp4" in refused.reason
    # DeepSeek's FP8 is its native block-scaled FP8, and the planner sizes it as such.
    assert isinstance(r1_fp8, Checkpoint)
    assert r1_fp8.runs_as == "fp8-block"
    assert isinstance(r1, Checkpoint)
    assert r1.repo == "nvidia/DeepSeek-R1-0528-FP4"


def test_gguf_options_name_the_file_to_load() -> None:
    found = checkpoint_for("qwen3-32b", "gguf-q8_0", "llamacpp")
    assert isinstance(found, Checkpoint)
    assert (found.repo, found.file) == ("Qwen/Qwen3-32B-GGUF", "Qwen3-32B-Q8_0.gguf")


def test_every_row_keeps_its_source() -> None:
    with DATA_FILE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        assert row["source_url"] == f"https://huggingface.co/{row['repo']}", row
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["checked_on"]), row
        assert row["method"] in {"native", "prequantized"}, row
        assert set(row["engines"].split(";")) <= set(ENGINES), row
        assert row["quant"] in QUANTS, row
        assert (row["file"] != "") == row["quant"].startswith("gguf-"), row
