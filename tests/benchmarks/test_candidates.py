"""Pure parts: which candidates exist and which a host can run; reading provenance out of result.json."""

from __future__ import annotations

import pytest

from apps.benchmarks.candidates import (
    Candidate,
    HostCapability,
    candidate_space,
    smallest_fitting_tp,
    verdict,
)
from apps.benchmarks.provenance import accelerator_slug, level_fields, weights_description
from apps.catalog.specs import load_snapshot
from tests.benchmarks.conftest import level

CATALOG = load_snapshot()
CPU_HOST = HostCapability(
    name="cpu-1", accelerator="cpu", device_count=1, engines=frozenset({"transformers"})
)
H100_HOST = HostCapability(name="h100-2", accelerator="h100-sxm", device_count=2, engines=frozenset({"vllm"}))


def test_the_smallest_tp_that_holds_the_model_is_chosen() -> None:
    model, gpu, bf16 = CATALOG.model("llama-3.3-70b"), CATALOG.gpu("h100-sxm"), CATALOG.quantization("bf16")

    tp = smallest_fitting_tp(
        model=model, gpu=gpu, quant=bf16, engine="vllm", context_tokens=4096, max_tp=8, shrink=False
    )

    # 141 GB of bf16 weights: one 80 GB H100 cannot hold them, two leave no room for runtime and KV cache at
    # vLLM's 0.9 memory fraction (the planner's memory_fit), so the first TP that fits is 4.
    assert tp == 4


def test_a_shrunk_model_fits_on_cpu_where_the_full_one_would_not_matter() -> None:
    space = candidate_space(
        model=CATALOG.model("llama-3.1-8b"),
        gpus=[CATALOG.gpu("cpu"), CATALOG.gpu("t4")],
        quants=[CATALOG.quantization("bf16"), CATALOG.quantization("fp8")],
        engines=["transformers", "vllm"],
        context_tokens=1024,
        max_tp=8,
        shrink_on_cpu=True,
    )

    assert space == [
        Candidate("cpu", "transformers", "bf16", 1),
        Candidate("cpu", "vllm", "bf16", 1),  # vLLM's CPU build
        # t4 has no bf16; vLLM runs FP8 checkpoints there as weight-only W8A16 (FP8 Marlin)
        Candidate("t4", "vllm", "fp8", 1),
    ]


@pytest.mark.parametrize(
    ("candidate", "runnable", "reason"),
    [
        (Candidate("cpu", "transformers", "bf16", 1), True, ""),
        (Candidate("cpu", "llamacpp", "bf16", 1), False, "no live cpu worker has llamacpp installed"),
        (Candidate("h100-sxm", "vllm", "fp8", 2), True, ""),
        (Candidate("h100-sxm", "vllm", "fp8", 4), False, "tp 4 needs 4 GPUs; the largest live worker has 2"),
        (Candidate("b200", "vllm", "fp8", 1), False, "no live worker with b200"),
    ],
)
def test_a_candidate_is_runnable_only_on_a_live_host_that_has_what_it_needs(
    candidate: Candidate, runnable: bool, reason: str
) -> None:
    found = verdict(candidate, hosts=[CPU_HOST, H100_HOST])

    assert (found.runnable, found.reason) == (runnable, reason)


@pytest.mark.parametrize(
    ("name", "count", "slug"),
    [
        ("NVIDIA H100 80GB HBM3", 8, "h100-sxm"),
        ("NVIDIA H100 PCIe", 1, "h100-pcie"),
        ("NVIDIA H100 NVL", 2, "h100-nvl"),
        ("NVIDIA H200", 8, "h200"),
        ("NVIDIA A100-SXM4-80GB", 8, "a100-80gb"),
        ("NVIDIA A100-SXM4-40GB", 8, "a100-40gb"),
        ("NVIDIA L40S", 4, "l40s"),
        ("NVIDIA L4", 1, "l4"),
        ("NVIDIA A10G", 1, "a10g"),
        ("Tesla T4", 1, "t4"),
        ("NVIDIA GeForce RTX 4090", 1, "rtx-4090"),
        ("AMD Instinct MI300X", 8, "mi300x"),
        ("Some Future Accelerator", 1, None),
        ("AMD EPYC 9654", 0, "cpu"),
    ],
)
def test_probed_names_map_to_catalog_slugs(name: str, count: int, slug: str | None) -> None:
    hardware = {
        "accelerator": "cuda" if count else "cpu",
        "accelerator_model": name,
        "accelerator_count": count,
    }

    assert accelerator_slug(hardware) == slug


def test_weights_say_whether_a_measurement_stands_for_the_model() -> None:
    architecture = {"layers": 32, "hidden": 4096, "attention_heads": 32, "kv_heads": 8, "head_dim": 128}

    shrunk, is_shrunk = weights_description(
        {"dummy_weights": True, "shrunk": True, "architecture": architecture, "parameter_count": 139584}
    )
    full, full_shrunk = weights_description(
        {"dummy_weights": True, "shrunk": False, "architecture": architecture}
    )
    real, _ = weights_description({"dummy_weights": False, "path": "/models/llama"})

    assert is_shrunk
    assert not full_shrunk
    assert shrunk == (
        "random weights, shrunk to 2 layers, hidden 256, 139,584 parameters (the full model has 32 layers); "
        "not representative"
    )
    assert full == "random weights at the full architecture (32 layers)"
    assert real == "real weights from /models/llama"


def test_level_fields_keep_rate_levels_and_missing_percentiles() -> None:
    rate = level(None, rate=2.5, ok=0, failed=3)
    rate["ttft_ms"] = {"p50": None, "p90": None, "p95": None, "p99": None}

    fields = level_fields(rate)

    assert (fields["concurrency"], fields["rate_per_s"], fields["requests_failed"]) == (None, 2.5, 3)
    assert fields["ttft_p50_ms"] is None
    assert "samples" not in fields["level_summary"]
