"""From the planner's plan dict to a BundleRequest, and every option of a real plan to a valid bundle."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from apps.catalog.checkpoints import Checkpoint, Refusal, checkpoint_for
from apps.catalog.specs import load_snapshot
from apps.manifests.build import ManifestError, OverflowTarget, build_bundle, request_from_plan
from apps.manifests.validate import validate_bundle
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import workload_spec_from_dict
from tests.manifests.helpers import engine_container, flag_value, k8s

WORKLOAD: dict[str, Any] = {
    "name": "support-chat",
    "model": "llama-3.1-8b",
    "traffic": {"hourly_requests_per_s": [0.5] * 6 + [1, 2, 4] + [6] * 8 + [4, 2, 1, 1, 0.5, 0.5, 0.5]},
    "prompt_tokens": {"mean": 800, "p50": 600, "p95": 2400, "max": 8000},
    "output_tokens": {"mean": 200, "p50": 150, "p95": 600, "max": 1024},
    "slo": {"ttft_p95_ms": 800, "itl_p95_ms": 60},
    "quality": {"allowed_quantizations": ["bf16", "fp8", "awq-int4"]},
    "constraints": {"gpus": [], "providers": [], "max_gpus_per_replica": 8, "spot": False, "min_replicas": 1},
}


@pytest.fixture(scope="module")
def planned() -> dict[str, Any]:
    result = plan(workload_spec_from_dict(WORKLOAD), load_snapshot())
    assert result["options"], result["rejected_summary"]
    return result


def test_the_option_becomes_the_request(planned: dict[str, Any]) -> None:
    option = planned["options"][0]
    request = request_from_plan(option, WORKLOAD, planned)

    assert (request.engine, request.quant, request.gpu, request.tp) == (
        option["engine"], option["quant"], option["gpu"], option["tp"],
    )  # fmt: skip
    assert request.replicas_by_hour == tuple(option["replicas_by_hour"])
    assert request.max_model_len == 8000 + 1024
    assert request.max_num_seqs == option["serve"]["max_num_seqs"]
    # the checkpoint the engine loads for that precision, with where it is published
    checkpoint = checkpoint_for(option["model"], option["quant"], option["engine"])
    assert isinstance(checkpoint, Checkpoint)
    assert request.model_path == checkpoint.repo
    assert request.checkpoint_source == checkpoint.source_url
    assert request.quantize_on_load == checkpoint.quantize_on_load
    assert request.workload_name == "support-chat"
    assert request.overflow is None
    # 1024 output tokens at the 60 ms ITL target, with margin: the drain the grace period must allow.
    assert request.drain_s >= 1024 * 0.060


def test_every_option_of_a_real_plan_builds_a_valid_bundle_or_is_refused_with_the_reason(
    planned: dict[str, Any],
) -> None:
    for option in planned["options"]:
        found = checkpoint_for(option["model"], option["quant"], option["engine"])
        if isinstance(found, Refusal):
            # Until the planner drops these itself (it can call checkpoint_for), the bundle says why not.
            with pytest.raises(ManifestError, match=re.escape(found.reason)):
                request_from_plan(option, WORKLOAD, planned, overflow=True)
            continue
        files = build_bundle(request_from_plan(option, WORKLOAD, planned, overflow=True))
        assert validate_bundle(files) == [], option["rank"]
        args = engine_container(files)["args"]
        assert str(option["serve"]["max_model_len"]) in args or option["engine"] == "llamacpp"


def test_overflow_defaults_to_the_closest_hosted_model(planned: dict[str, Any]) -> None:
    request = request_from_plan(planned["options"][0], WORKLOAD, planned, overflow=True)
    # The planner lists same-model-size APIs first; the cheapest of those LiteLLM can call wins.
    assert request.overflow == OverflowTarget(
        provider="DeepInfra",
        model="Meta-Llama-3.1-8B-Instruct",
        litellm_model="deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct",
        api_key_env="DEEPINFRA_API_KEY",
    )


def test_overflow_can_be_named_explicitly(planned: dict[str, Any]) -> None:
    explicit = {"provider": "Acme", "model": "acme-large", "litellm_model": "openai/acme-large",
                "api_key_env": "ACME_KEY", "api_base": "https://llm.acme.example/v1"}  # fmt: skip
    request = request_from_plan(planned["options"][0], WORKLOAD, planned, overflow=explicit)
    assert request.overflow is not None
    assert request.overflow.api_base == "https://llm.acme.example/v1"
    files = build_bundle(request)
    assert "ACME_KEY" in files["compose.yaml"]
    assert validate_bundle(files) == []


def test_an_unmappable_overflow_is_refused(planned: dict[str, Any]) -> None:
    with pytest.raises(ManifestError, match="no LiteLLM model id"):
        request_from_plan(
            planned["options"][0], WORKLOAD, planned, overflow={"provider": "Nobody", "model": "x"}
        )


def test_a_context_beyond_the_model_is_refused(planned: dict[str, Any]) -> None:
    workload = copy.deepcopy(WORKLOAD)
    workload["prompt_tokens"]["max"] = 200_000
    with pytest.raises(ManifestError, match="tokens of context"):
        request_from_plan(planned["options"][0], workload, planned)


def test_gpus_the_engine_would_not_use_are_refused(planned: dict[str, Any]) -> None:
    option = {**planned["options"][0], "gpus_per_replica": 2, "tp": 1}
    with pytest.raises(ManifestError, match="gpus_per_replica"):
        request_from_plan(option, WORKLOAD, planned)


def test_missing_fields_are_one_clear_error() -> None:
    with pytest.raises(ManifestError, match="missing a field"):
        request_from_plan({"model": "llama-3.1-8b"}, WORKLOAD)


def test_llamacpp_defaults_to_the_published_gguf_file_on_the_volume(planned: dict[str, Any]) -> None:
    option = {**planned["options"][0], "engine": "llamacpp", "quant": "gguf-q4_k_m"}
    files = build_bundle(request_from_plan(option, WORKLOAD, planned))
    model = "/models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    assert flag_value(engine_container(files)["args"], "--model") == model
    assert (
        "`Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf` from https://huggingface.co/bartowski/"
        in files["README.md"]
    )


def test_an_option_no_engine_can_load_is_refused_with_the_reason(planned: dict[str, Any]) -> None:
    option = {**planned["options"][0], "engine": "trtllm", "quant": "awq-int4"}
    with pytest.raises(
        ManifestError, match=re.escape("trtllm cannot serve llama-3.1-8b at awq-int4: no awq-int4 checkpoint")
    ):
        request_from_plan(option, WORKLOAD, planned)


def test_a_quantized_option_names_the_quantized_checkpoint(planned: dict[str, Any]) -> None:
    awq = request_from_plan(
        {**planned["options"][0], "engine": "vllm", "quant": "awq-int4"}, WORKLOAD, planned
    )
    fp8 = request_from_plan({**planned["options"][0], "engine": "tgi", "quant": "fp8"}, WORKLOAD, planned)
    assert awq.model_path == "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4"
    assert "--quantization" not in engine_container(build_bundle(awq))["args"]
    assert fp8.model_path == "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8"


def test_an_operator_model_path_and_namespace_are_used(planned: dict[str, Any]) -> None:
    request = request_from_plan(
        planned["options"][0],
        WORKLOAD,
        planned,
        model_path="/root/.cache/weights/llama",
        namespace="inference",
    )
    files = build_bundle(request)
    assert k8s(files, "deployment")["metadata"]["namespace"] == "inference"
    assert "/root/.cache/weights/llama" in engine_container(files)["args"]


def test_an_undeployable_option_fails_when_the_request_is_made(planned: dict[str, Any]) -> None:
    # No ROCm image of the pinned SGLang: the caller learns it before building anything.
    option = {**planned["options"][0], "engine": "sglang", "quant": "bf16", "gpu": "mi300x"}
    with pytest.raises(ManifestError, match=re.escape("SGLang 0.5.23 publishes no ROCM image")):
        request_from_plan(option, WORKLOAD, planned)


# Per engine: the argument (or options-file line) that turns the prefix cache on and the one that turns it off.
PREFIX_SWITCHES = {
    "vllm": ("--enable-prefix-caching", "--disable-prefix-caching"),
    "sglang": (None, "--disable-radix-cache"),
    "trtllm": ("  enable_block_reuse: true", "  enable_block_reuse: false"),
}


def _prefix_switches(files: dict[str, str], engine: str) -> str:
    if engine == "trtllm":
        return files["engine-config/trtllm-extra-llm-api-options.yaml"]
    return " ".join(engine_container(files)["args"])


@pytest.mark.parametrize("engine", sorted(PREFIX_SWITCHES))
@pytest.mark.parametrize("cached", [True, False])
def test_prefix_caching_follows_the_plan_option(planned: dict[str, Any], engine: str, cached: bool) -> None:
    # given an option whose serve settings say whether the planner credited the prefix cache
    base = next((o for o in planned["options"] if o["engine"] == engine), None)
    if base is None:
        pytest.skip(f"the plan has no {engine} option")
    option = copy.deepcopy(base)
    option["serve"]["prefix_caching"] = cached

    # when the bundle is built
    request = request_from_plan(option, WORKLOAD, planned)
    files = build_bundle(request)

    # then the engine runs with its prefix cache exactly as planned
    assert request.prefix_caching is cached
    on, off = PREFIX_SWITCHES[engine]
    text = _prefix_switches(files, engine)
    assert (off in text) is not cached
    if on is not None:
        assert (on in text) is cached
    assert validate_bundle(files) == []


def test_the_option_carries_its_parallel_degrees(planned: dict[str, Any]) -> None:
    option = copy.deepcopy(planned["options"][0])
    option.update(model="qwen3-30b-a3b", engine="vllm", quant="bf16", tp=2, pp=1, dp=2, ep=4, nodes=1)
    option["gpus_per_replica"] = 4
    request = request_from_plan(option, WORKLOAD, planned)
    assert (request.tp, request.pp, request.dp, request.ep, request.nodes, request.gpus) == (2, 1, 2, 4, 1, 4)

    with pytest.raises(ManifestError) as refused:
        request_from_plan({**option, "ep": 3}, WORKLOAD, planned)
    assert "ep 3 must divide tp x dp (4)" in str(refused.value)
    with pytest.raises(ManifestError, match="tp x pp x dp"):
        request_from_plan({**option, "gpus_per_replica": 8}, WORKLOAD, planned)
    with pytest.raises(ManifestError, match="do not split evenly over 3 nodes"):
        request_from_plan({**option, "nodes": 3}, WORKLOAD, planned)
