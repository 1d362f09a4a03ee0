"""Requests and parsed bundles for the manifest tests (plain functions, no Django)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from apps.manifests import yamlio
from apps.manifests.build import BundleRequest, OverflowTarget, build_bundle

ENGINES = ("vllm", "sglang", "tgi", "llamacpp", "trtllm")
ALL_ENGINES = (*ENGINES, "transformers")
QUANT_FOR = {"llamacpp": "gguf-q4_k_m", "transformers": "bf16"}
# Quiet nights, a morning ramp, a business-hours plateau, an evening tail (UTC).
BUSINESS_HOURS = (1, 1, 1, 1, 1, 1, 1, 2, 4, 6, 6, 6, 6, 6, 6, 6, 6, 4, 2, 1, 1, 1, 1, 1)
OVERFLOW = OverflowTarget(
    provider="OpenAI", model="GPT-4o-mini", litellm_model="openai/gpt-4o-mini", api_key_env="OPENAI_API_KEY"
)


def make_request(engine: str = "vllm", **changes: Any) -> BundleRequest:
    base = BundleRequest(
        workload_name="support-chat",
        model_slug="llama-3.1-8b",
        model_path="/models/llama-3.1-8b-Q4_K_M.gguf"
        if engine == "llamacpp"
        else "meta-llama/Llama-3.1-8B-Instruct",
        served_name="llama-3.1-8b",
        engine=engine,
        quant=QUANT_FOR.get(engine, "fp8"),
        gpu="h100-sxm",
        tp=2,
        replicas_by_hour=BUSINESS_HOURS,
        max_model_len=9024,
        max_num_seqs=128,
        weights_gb=16.06,
        gpu_memory_fraction=0.85,
        prefix_caching=True,
        provider="aws",
        instance_type="p5.48xlarge",
        instance_vcpus=192,
        instance_memory_gib=2048,
        instance_gpu_count=8,
        max_requests_per_s_per_replica=2.0,
    )
    return replace(base, **changes)


def k8s(files: dict[str, str], name: str) -> dict[str, Any]:
    """The single document of k8s/NN-<name>.yaml."""
    matches = [path for path in files if re.fullmatch(rf"k8s/\d\d-{re.escape(name)}\.yaml", path)]
    assert len(matches) == 1, f"{name}: {matches}"
    docs = yamlio.load_all(files[matches[0]])
    assert len(docs) == 1
    document: dict[str, Any] = docs[0]
    return document


def engine_container(files: dict[str, str]) -> dict[str, Any]:
    container: dict[str, Any] = k8s(files, "deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def compose(files: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = yamlio.load(files["compose.yaml"])
    return document


def compose_engine(files: dict[str, str], engine: str) -> dict[str, Any]:
    service: dict[str, Any] = compose(files)["services"][engine]
    return service


def flag_value(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def bundle(engine: str = "vllm", **changes: Any) -> dict[str, str]:
    return build_bundle(make_request(engine, **changes))


def listening_locally(args: tuple[str, ...] | list[str], host: str, port: int) -> list[str]:
    """A bundle's engine arguments with only where to listen changed, as a test starts the engine here."""
    local = {"--host": host, "--port": str(port)}
    return [local.get(previous, arg) for previous, arg in zip(["", *args[:-1]], args, strict=True)]
