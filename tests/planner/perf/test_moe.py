"""Mixture-of-experts models, latent and sliding-window attention, expert parallelism and multi-node replicas."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.calibration import Calibration
from apps.planner.perf.deployment import Deployment
from apps.planner.perf.memory import kv_bytes_per_token_gpu, memory_fit, weight_bytes_per_gpu
from apps.planner.perf.step import build_step_model, levels_of
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import workload_spec_from_dict
from tests.planner.pipeline.test_plan import workload


def dep(
    catalog: CatalogSnapshot, model: str, gpu: str, quant: str, engine: str = "vllm", **layout: int
) -> Deployment:
    return Deployment(catalog.model(model), catalog.gpu(gpu), catalog.quantization(quant), engine, **layout)


def predict_json(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("predict", *args, "--isl", "1000", "--osl", "1000", "--json", stdout=out)
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_mla_cache_is_the_latent_on_every_tensor_parallel_rank(catalog: CatalogSnapshot) -> None:
    r1 = catalog.model("deepseek-r1")

    # 61 layers x (kv_lora_rank 512 + rope 64) x 1 byte of FP8 cache: one latent per token, not per head.
    assert kv_bytes_per_token_gpu(r1, 1, 1.0) == pytest.approx(61 * 576)
    assert kv_bytes_per_token_gpu(r1, 8, 1.0) == pytest.approx(61 * 576)


def test_sliding_window_layers_hold_at_most_their_window(catalog: CatalogSnapshot) -> None:
    oss = catalog.model("gpt-oss-120b")  # 18 full layers, 18 of 128-token window; 8 KV heads of 64 dims

    per_layer = 8 * (64 + 64) * 2.0
    at_8k = kv_bytes_per_token_gpu(oss, 1, 2.0, context_tokens=8192)
    assert at_8k == pytest.approx((18 * 8192 + 18 * 128) * per_layer / 8192)
    fit = memory_fit(dep(catalog, "gpt-oss-120b", "h100-sxm", "mxfp4"), 8192)
    assert fit.kv_bytes_per_token == pytest.approx(at_8k)


def test_gpt_oss_keeps_attention_in_bf16_and_its_experts_in_mxfp4(catalog: CatalogSnapshot) -> None:
    oss = dep(catalog, "gpt-oss-120b", "h100-sxm", "mxfp4")
    model = oss.model

    expected = (
        model.params_total_b * 1e9 - model.routed_expert_params_total
    ) * 2.0 + model.routed_expert_params_total * 0.53125
    assert weight_bytes_per_gpu(oss) == pytest.approx(expected)


def test_gpt_oss_120b_fits_on_one_h100_at_mxfp4(catalog: CatalogSnapshot) -> None:
    assert memory_fit(dep(catalog, "gpt-oss-120b", "h100-sxm", "mxfp4"), 2000).fits
    assert not memory_fit(dep(catalog, "gpt-oss-120b", "h100-sxm", "bf16"), 2000).fits


def test_deepseek_r1_at_fp8_needs_eight_h200_or_two_h100_nodes(catalog: CatalogSnapshot) -> None:
    layouts: list[dict[str, int]] = [{"tp": 4}, {"tp": 8}, {"tp": 8, "ep": 8}, {"tp": 1, "dp": 8, "ep": 8}]
    for layout in layouts:
        assert not memory_fit(
            dep(catalog, "deepseek-r1", "h100-sxm", "fp8-block", "vllm", **layout), 2000
        ).fits, layout
    assert not memory_fit(dep(catalog, "deepseek-r1", "h200", "fp8-block", tp=4), 2000).fits
    assert memory_fit(dep(catalog, "deepseek-r1", "h200", "fp8-block", tp=8), 2000).fits
    assert memory_fit(dep(catalog, "deepseek-r1", "h100-sxm", "fp8-block", tp=8, pp=2, nodes=2), 2000).fits
    assert memory_fit(dep(catalog, "deepseek-r1", "h100-sxm", "fp8-block", dp=16, ep=16, nodes=2), 2000).fits


def test_expert_parallelism_reads_only_the_routed_experts_of_the_step(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    d = dep(catalog, "deepseek-r1", "h200", "fp8-block", "sglang", tp=8, ep=8)
    step = build_step_model(d, calibration.efficiency(levels_of(d)), context_tokens=2000)

    one, many = step.weight_bytes_read(1), step.weight_bytes_read(4096)
    assert one < 0.2 * many  # a single token touches 8 of 256 experts (+ the shared one)
    assert step.local_experts == 32
    assert step.alltoalls_per_stage == pytest.approx(2 * 58)  # dispatch and combine on each MoE layer


@pytest.mark.django_db
def test_predict_takes_expert_parallelism_and_nodes() -> None:
    common = ["--model", "deepseek-r1", "--gpu", "h100-sxm", "--engine", "sglang", "--quant", "fp8-block"]

    one_node = predict_json(*common, "--tp", "8", "--ep", "8")
    two_nodes = predict_json(*common, "--dp", "16", "--ep", "16", "--nodes", "2", "--concurrency", "64")

    assert one_node["fits"] is False
    assert "does not fit" in one_node["memory"]["reason"]
    assert one_node["experts_per_gpu"] == 32
    assert two_nodes["fits"] is True
    assert (two_nodes["gpu_count"], two_nodes["nodes"], two_nodes["experts_per_gpu"]) == (16, 2, 16)
    assert two_nodes["output_tokens_per_s"] > 0


def test_a_deepseek_plan_offers_expert_parallel_layouts_and_says_why(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    document = workload(
        model="deepseek-r1",
        prompt_tokens={"mean": 1000, "p50": 800, "p95": 3000, "max": 8000},
        output_tokens={"mean": 1000, "p50": 800, "p95": 3000, "max": 8000},
        slo={"ttft_p95_ms": 3000, "itl_p95_ms": 100},
        quality={"allowed_quantizations": ["fp8-block"]},
        constraints={"gpus": ["h100-sxm", "h200"], "max_gpus_per_replica": 16, "engines": ["sglang", "vllm"]},
    )

    result = plan(workload_spec_from_dict(document), catalog, calibration=calibration)

    options = result["options"]
    assert options
    assert any(o["ep"] > 1 for o in options)
    expert_parallel = next(o for o in options if o["ep"] > 1)
    assert "Experts are split over" in expert_parallel["why"]
    assert "Plain TP" in expert_parallel["why"]
    h100 = [r for r in result["rejected"] if r["gpu"] == "h100-sxm" and r["reason_code"] == "does_not_fit"]
    assert any(r["parallelism"] == "TP8" for r in h100)
    assert all("weights need" in r["reason"] for r in h100)
