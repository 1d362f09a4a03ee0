"""Random-weight model directories and GGUF files, built offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.workers.conftest import TINY_LLAMA, needs_llama_cpp
from workers.architectures import ARCHITECTURES_PATH, architectures_from_csv, load_architectures
from workers.dummy import (
    BOS_ID,
    MIN_VOCAB,
    build_model_dir,
    shrink_architecture,
    vocabulary,
)
from workers.errors import InvalidSpec
from workers.prompts import HfTokenizer

REPO = Path(__file__).resolve().parents[2]
CATALOG_CSV = REPO / "apps" / "catalog" / "data" / "models.csv"


def test_tiny_llama_loads_in_transformers_and_generates_to_max_tokens(tiny_llama_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    inputs = tokenizer("time year people", return_tensors="pt")

    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)

    assert out.shape[1] - inputs["input_ids"].shape[1] == 12  # no EOS anywhere: runs to max_new_tokens
    assert model.config.eos_token_id is None
    assert model.generation_config.eos_token_id is None
    assert sum(p.numel() for p in model.parameters()) > 0


def test_greedy_output_is_whole_filler_tokens(tiny_llama_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ids = torch.tensor([[BOS_ID, 110, 111, 112]])

    with torch.no_grad():
        generated = model.generate(ids, max_new_tokens=20, do_sample=False)[0, 4:].tolist()

    # fillers decode to whole words, so streams carry exactly one event per token
    assert all(token >= MIN_VOCAB - 1 for token in generated)


def test_tokenizer_counts_one_token_per_ascii_byte_plus_bos(tiny_llama_dir: Path) -> None:
    tokenizer = HfTokenizer(tiny_llama_dir / "tokenizer.json")

    ids = tokenizer.encode("time year", add_special_tokens=True)

    assert ids[0] == BOS_ID
    assert len(ids) == 1 + len("time year")
    assert tokenizer.decode(ids) == "time year"


def test_vocabulary_is_unique_and_sized() -> None:
    tokens = vocabulary(1000)

    assert len(tokens) == 1000
    assert len(set(tokens)) == 1000
    with pytest.raises(InvalidSpec):
        vocabulary(MIN_VOCAB - 1)


def test_engine_dummy_load_gets_config_and_tokenizer_only(tmp_path: Path) -> None:
    built = build_model_dir(tmp_path / "m", architecture=TINY_LLAMA, weights=False, quantization="awq-int4")

    assert not list((tmp_path / "m").glob("*.safetensors"))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "awq"
    assert (tmp_path / "m" / "tokenizer.json").is_file()
    assert built.parameter_count > 0


def test_random_awq_weights_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="dummy load format"):
        build_model_dir(tmp_path / "m", architecture=TINY_LLAMA, quantization="awq-int4")


def test_any_config_json_can_be_shrunk_and_built(tmp_path: Path) -> None:
    source = build_model_dir(tmp_path / "src", architecture=TINY_LLAMA | {"layers": 6}, weights=False)

    built = build_model_dir(
        tmp_path / "copy", config_json=tmp_path / "src" / "config.json", shrink={"layers": 1}
    )

    assert source.config["num_hidden_layers"] == 6
    assert built.config["num_hidden_layers"] == 1
    assert (tmp_path / "copy" / "model.safetensors").is_file()


@pytest.mark.parametrize("slug", sorted(load_architectures()))
def test_every_catalog_architecture_builds_shrunk(slug: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    arch = load_architectures()[slug]

    built = build_model_dir(tmp_path / slug, architecture=arch, shrink=True, dtype="float32")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / slug)

    assert built.model_type == arch["model_type"]
    assert model.config.num_hidden_layers == 2
    assert model.config.vocab_size == 512
    if arch["num_experts"]:
        assert built.config.get("num_local_experts") == 4


def test_shrink_keeps_dense_models_dense_and_caps_context() -> None:
    shrunk = shrink_architecture(TINY_LLAMA | {"max_context": 1024, "num_experts": 0})

    assert shrunk["num_experts"] == 0
    assert shrunk["max_context"] == 1024


def test_shipped_architectures_match_the_catalog_csv() -> None:
    if not CATALOG_CSV.is_file():
        pytest.skip("catalog CSV not in this checkout")
    regenerate = "python -m workers.architectures apps/catalog/data/models.csv > workers/architectures.json"
    assert architectures_from_csv(CATALOG_CSV) == json.loads(ARCHITECTURES_PATH.read_text()), regenerate


@needs_llama_cpp
def test_gguf_files_hold_the_requested_quantizations(tiny_gguf_files: dict[str, Path]) -> None:
    import gguf

    kinds = {}
    for name, path in tiny_gguf_files.items():
        reader = gguf.GGUFReader(path)
        kinds[name] = {t.tensor_type.name for t in reader.tensors}

    assert kinds["f16"] == {"F16", "F32"}
    assert "Q8_0" in kinds["q8_0"]
    assert "Q4_K" in kinds["q4_k_m"]
    sizes = {name: path.stat().st_size for name, path in tiny_gguf_files.items()}
    assert sizes["q4_k_m"] < sizes["q8_0"] < sizes["f16"]


@needs_llama_cpp
def test_llama_cpp_tokenizes_like_the_hf_tokenizer(tiny_gguf_files: dict[str, Path], tmp_path: Path) -> None:
    from workers.prompts import GgufTokenizer

    hf = HfTokenizer(tiny_gguf_files["f16"].parent / "hf" / "tokenizer.json")
    gg = GgufTokenizer(tiny_gguf_files["q4_k_m"])

    for text in ("time year people", "a  b\nc", "ünïcödé"):
        assert gg.encode(text, add_special_tokens=True) == hf.encode(text, add_special_tokens=True), text


def test_weight_building_reports_progress_and_can_be_stopped(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []

    build_model_dir(
        tmp_path / "m", architecture=TINY_LLAMA, on_progress=lambda done, total: calls.append((done, total))
    )

    assert calls[-1][0] == calls[-1][1] > 0
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    class Stop(Exception):
        pass

    def stop(_done: int, _total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        build_model_dir(tmp_path / "n", architecture=TINY_LLAMA, on_progress=stop)
