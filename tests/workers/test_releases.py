"""The pinned engine releases as data, and the contract that every flag the project emits exists in them.

SGLang, TGI and TensorRT-LLM cannot run here: their flags are held against the flag lists that
scripts/extract_engine_flags.py read from each release's own parser (vLLM and llama.cpp also start for real in
test_vllm_cpu.py and test_real_engines.py).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from workers.engines import (
    ENGINES,
    ServeConfig,
    UnsupportedCandidate,
    check_supported,
    engine_files,
    serve_args,
    trtllm_options,
)
from workers.releases import DATA_DIR, all_facts, release, unknown_flags, unknown_llm_api_options

ROOT = Path(__file__).resolve().parents[2]
PINNED = [(engine, version) for engine, facts in all_facts().items() for version in facts.releases]


def _configs(engine: str, version: str) -> list[ServeConfig]:
    """Every shape of candidate the planner and the workers can hand the engine."""
    definition = ENGINES[engine]
    configs = []
    for quant, on_load, prefix, tp, device in itertools.product(
        definition.quantizations, (False, True), (True, False), (1, 4), ("cuda", "cpu")
    ):
        if on_load and quant not in definition.quantize_on_load:
            continue
        if device == "cpu" and ("cpu" not in definition.accelerators or tp > 1):
            continue
        configs.append(
            ServeConfig(
                engine=engine,
                model_path="/models/m.gguf" if engine == "llamacpp" else "org/model",
                served_name="model",
                quantization=quant,
                quantize_on_load=on_load,
                prefix_caching=prefix,
                tensor_parallel=tp,
                device=device,
                dummy_weights=definition.supports_dummy_weights and prefix,
                engine_version=version,
            )
        )
    return configs + _parallel_configs(engine, version)


# The layouts the planner proposes beyond plain TP (apps/planner/pipeline/candidates.py parallel_layouts), on
# every host of the replica, and pipeline stages on one host: (tp, pp, dp, ep, nnodes).
PARALLEL_LAYOUTS = ((8, 1, 1, 8, 1), (1, 1, 8, 8, 1), (4, 2, 1, 1, 1), (8, 2, 1, 1, 2), (1, 1, 16, 16, 2))
NODE_RANKS = ("0", "$(LWS_WORKER_INDEX)")


def _parallel_configs(engine: str, version: str) -> list[ServeConfig]:
    configs = []
    for (tp, pp, dp, ep, nnodes), rank, prefix in itertools.product(
        PARALLEL_LAYOUTS, NODE_RANKS, (True, False)
    ):
        if nnodes == 1 and rank != "0":
            continue
        config = ServeConfig(
            engine=engine,
            model_path="org/model",
            served_name="model",
            quantization="fp8",
            prefix_caching=prefix,
            tensor_parallel=tp,
            pipeline_parallel=pp,
            data_parallel=dp,
            expert_parallel=ep,
            nnodes=nnodes,
            node_rank=rank,
            leader_address="$(LWS_LEADER_ADDRESS)" if nnodes > 1 else None,
            engine_version=version,
        )
        try:
            check_supported(config)
        except UnsupportedCandidate:
            continue  # refused with its reason: tests/workers/test_engines_parallel.py
        configs.append(config)
    return configs


@pytest.mark.parametrize(("engine", "version"), PINNED)
def test_every_emitted_flag_exists_in_the_pinned_release(engine: str, version: str) -> None:
    # given every candidate shape, for this pinned release
    configs = _configs(engine, version)
    assert configs

    # then each argument list holds only options (and choice values) the release's parser accepts, and each
    # options file only keys the release's LLM API has
    for config in configs:
        assert unknown_flags(engine, serve_args(config), version) == [], config
        if engine == "trtllm":
            assert unknown_llm_api_options(engine, trtllm_options(config), version) == [], config


@pytest.mark.parametrize(("engine", "version"), [p for p in PINNED if p[0] in ("vllm", "sglang", "trtllm")])
def test_the_parallel_layouts_reach_the_flag_check(engine: str, version: str) -> None:
    # The expert-, data-, pipeline-parallel and multi-host shapes are among the checked configs above.
    shapes = {
        (c.pipeline_parallel, c.data_parallel, c.expert_parallel, c.nnodes)
        for c in _parallel_configs(engine, version)
    }
    assert {(1, 1, 8, 1), (1, 8, 8, 1), (2, 1, 1, 1)} <= {(p, d, e, 1) for p, d, e, _ in shapes}
    assert any(nnodes == 2 for *_, nnodes in shapes) == (engine != "trtllm")


def test_the_checker_catches_the_flags_that_broke_earlier_pins() -> None:
    # TGI never shipped --served-model-name; vLLM 0.33 turned --no-enable-x into --disable-x.
    assert unknown_flags("tgi", ["--model-id", "m", "--served-model-name", "m"]) == [
        "--served-model-name is not an option of tgi 3.3.7"
    ]
    assert unknown_flags("vllm", ["--no-enable-prefix-caching"], "0.33.0")
    assert unknown_flags("vllm", ["--no-enable-prefix-caching"], "0.32.0") == []
    assert unknown_flags("sglang", ["--quantization", "awq_marlinn"]) == [
        f"--quantization awq_marlinn is not one of sglang 0.5.23's "
        f"{', '.join(release('sglang').flag_list.choices['--quantization'])}"
    ]
    assert unknown_flags("llamacpp", ["--port=8080", "--n-gpu-layers", "-1", "--no-such-flag"]) == [
        "--no-such-flag is not an option of llamacpp b11312"
    ]


def test_tgi_is_launched_without_a_served_model_name() -> None:
    config = ServeConfig(engine="tgi", model_path="org/model", served_name="model")
    assert "--served-model-name" not in serve_args(config)
    assert "--served-model-name" not in release("tgi").flag_list.flags


def test_trtllm_turns_its_prometheus_endpoint_and_queue_gauges_on() -> None:
    # given a TensorRT-LLM candidate
    config = ServeConfig(engine="trtllm", model_path="nvidia/Llama-3.1-8B-Instruct-FP8", served_name="m")

    # when it is launched
    args = serve_args(config)
    files = engine_files(config)

    # then it reads an options file that enables the collector behind /prometheus/metrics and iteration stats
    path = args[args.index("--extra_llm_api_options") + 1]
    assert path in files
    assert "return_perf_metrics: true" in files[path]
    assert "enable_iter_perf_stats: true" in files[path]
    facts = all_facts()["trtllm"]
    assert facts.metrics_path == "/prometheus/metrics"
    assert facts.queue_metric == "trtllm_num_requests_waiting"


def test_vllm_prefix_caching_off_is_spelled_as_each_release_spells_it() -> None:
    def off(version: str | None) -> list[str]:
        return serve_args(
            ServeConfig(
                engine="vllm", model_path="m", served_name="m", prefix_caching=False, engine_version=version
            )
        )

    assert "--disable-prefix-caching" in off(None)  # 0.33.0, the current pin
    assert "--no-enable-prefix-caching" in off("0.32.0")


def test_llamacpp_flags_exist_in_the_pinned_build() -> None:
    # b6715 had no --no-cache-prompt; the pinned build does, and the contract above covers every flag.
    config = ServeConfig(
        engine="llamacpp",
        model_path="/m.gguf",
        served_name="m",
        quantization="gguf-q4_k_m",
        prefix_caching=False,
    )
    assert "--no-cache-prompt" in serve_args(config)
    assert unknown_flags("llamacpp", serve_args(config)) == []


def test_only_pre_quantized_or_load_time_quantization_is_emitted() -> None:
    # A quantization method flag on a 16-bit checkpoint is what made awq_marlin/modelopt_fp4 refuse to load.
    for engine in ("vllm", "sglang", "tgi"):
        prequantized = ServeConfig(
            engine=engine, model_path="org/m-AWQ", served_name="m", quantization="awq-int4"
        )
        assert not {"--quantization", "--quantize"} & set(serve_args(prequantized))
        on_load = ServeConfig(
            engine=engine, model_path="org/m", served_name="m", quantization="fp8", quantize_on_load=True
        )
        args = serve_args(on_load)
        flag = "--quantize" if engine == "tgi" else "--quantization"
        assert args[args.index(flag) + 1] == "fp8"


@pytest.mark.parametrize(("engine", "version"), PINNED)
def test_each_flag_list_names_its_source(engine: str, version: str) -> None:
    flag_list = release(engine, version).flag_list
    assert flag_list.tag
    assert flag_list.method
    source = flag_list.source
    assert source.get("artifact") or source.get("file")
    # A checksum wherever the artifact or file was on this machine; the one exception says why not.
    assert source.get("sha256") or source.get("note")
    if source.get("sha256"):
        assert re.fullmatch(r"[0-9a-f]{64}", str(source["sha256"]))


def test_release_data_covers_each_engines_accelerators() -> None:
    for engine, facts in all_facts().items():
        for version, pinned in facts.releases.items():
            assert "cuda" in pinned.images, (engine, version)
            assert set(pinned.images) <= set(facts.accelerators), (engine, version)
            for image in pinned.images.values():
                assert version.lstrip("v") in image or pinned.tag in image, (engine, version, image)
        assert facts.queue_metric in facts.exported_metrics
        assert facts.metrics_source
        assert facts.endpoints_source
    # AMD: the engines that support MI300X and publish ROCm builds of the pin.
    assert {e for e, f in all_facts().items() if "rocm" in f.current.images} == {"vllm", "tgi", "llamacpp"}


def test_the_engine_definitions_are_the_release_data() -> None:
    for engine, facts in all_facts().items():
        definition = ENGINES[engine]
        assert definition.version == facts.current.version
        assert definition.images == facts.current.images
        assert (definition.queue_metric, definition.metrics_path) == (facts.queue_metric, facts.metrics_path)


def test_the_makefile_builds_the_pinned_test_engines() -> None:
    makefile = (ROOT / "Makefile").read_text()

    def value(name: str) -> str:
        match = re.search(rf"^{name} := (\S+)$", makefile, re.M)
        assert match, name
        return match.group(1)

    assert value("VLLM_CPU_VERSION") in all_facts()["vllm"].releases
    llamacpp = all_facts()["llamacpp"].current
    assert f"b{value('LLAMACPP_BUILD')}" == llamacpp.tag
    raw = json.loads((DATA_DIR / "engines.json").read_text())
    assert (
        f"llama-cpp-python=={value('LLAMACPP_PYTHON_VERSION')}"
        in raw["engines"]["llamacpp"]["releases"][llamacpp.version]["source_package"]
    )
