"""The performance model: physics sanity (property-based), precision rules, memory fit and the simulation."""

from __future__ import annotations

import csv
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.catalog.specs import DATA_DIR, CatalogSnapshot
from apps.planner.perf.batching import LengthStats, LoadSpec, RequestSet, sample_lengths, simulate
from apps.planner.perf.calibration import Band
from apps.planner.perf.deployment import Deployment, UnsupportedCombination, check_supported
from apps.planner.perf.efficiency import Efficiency
from apps.planner.perf.memory import kv_bytes_per_token_gpu, memory_fit
from apps.planner.perf.predict import predict
from apps.planner.perf.steady import FixedLengths, fixed_lengths
from apps.planner.perf.step import StepModel, build_step_model
from apps.planner.pipeline.capacity import max_rate_analytic, max_rate_simulated
from apps.planner.pipeline.workload import LatencySlo

EFF = Efficiency(
    mbu=0.6,
    expert_mbu_ratio=1.0,
    mfu=0.5,
    attention_mbu=0.8,
    step_overhead_ms=1.0,
    seq_overhead_us=20.0,
    link_latency_us=10.0,
    link_efficiency=0.7,
    request_overhead_ms=15.0,
    calibration_key="test/test/test",
    basis="prior",
)
BANDS = {"output_tokens_per_s": Band(0.1, 0.3, 50, "test"), "ttft_ms": Band(0.2, 0.5, 20, "test"),
         "tpot_ms": Band(0.1, 0.3, 20, "test")}  # fmt: skip
FAST = settings(max_examples=40, deadline=None)


def build_perf_model(dep: Deployment, eff: Efficiency, **kwargs: int) -> StepModel:
    return build_step_model(dep, eff, **kwargs)


def steady_state(step: StepModel, isl: int, osl: int, concurrency: int | None = None) -> FixedLengths:
    return fixed_lengths(step, [isl], [osl], [math.inf if concurrency is None else concurrency])


def deployment(
    catalog: CatalogSnapshot, model: str, gpu: str, quant: str, engine: str = "vllm", tp: int = 1
) -> Deployment:
    return Deployment(catalog.model(model), catalog.gpu(gpu), catalog.quantization(quant), engine, tp)


# --- physics sanity, property-based ---------------------------------------------------------------------


@FAST
@given(
    bandwidth_tbps=st.floats(0.2, 8.0),
    factor=st.floats(1.0, 3.0),
    isl=st.integers(16, 8000),
    osl=st.integers(2, 2000),
    concurrency=st.one_of(st.none(), st.integers(1, 256)),
)
def test_more_bandwidth_never_lowers_decode_throughput(
    catalog: CatalogSnapshot,
    bandwidth_tbps: float,
    factor: float,
    isl: int,
    osl: int,
    concurrency: int | None,
) -> None:
    base = deployment(catalog, "llama-3.1-8b", "h100-sxm", "bf16")
    slow = replace(base, gpu=replace(base.gpu, memory_bandwidth_tbps=bandwidth_tbps))
    fast = replace(base, gpu=replace(base.gpu, memory_bandwidth_tbps=bandwidth_tbps * factor))
    slow_perf = build_perf_model(slow, EFF, context_tokens=isl + osl)
    fast_perf = build_perf_model(fast, EFF, context_tokens=isl + osl)

    slow_tps = steady_state(slow_perf, isl, osl, concurrency).output_tokens_per_s[0]
    fast_tps = steady_state(fast_perf, isl, osl, concurrency).output_tokens_per_s[0]

    assert fast_tps >= slow_tps * (1 - 1e-9)
    assert fast_perf.step_s(32, 32 * isl, 0, 0.0) <= slow_perf.step_s(32, 32 * isl, 0, 0.0)


@FAST
@given(
    model=st.sampled_from(["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "gemma-2-27b", "phi-4"]),
    gpu=st.sampled_from(["h100-sxm", "a100-80gb", "l40s", "h200", "mi300x"]),
    tp=st.sampled_from([1, 2, 4, 8]),
    short=st.integers(1, 60_000),
    extra=st.integers(0, 60_000),
)
def test_longer_contexts_never_raise_the_concurrent_sequence_limit(
    catalog: CatalogSnapshot, model: str, gpu: str, tp: int, short: int, extra: int
) -> None:
    dep = deployment(catalog, model, gpu, "bf16", tp=tp)

    shorter = memory_fit(dep, short)
    longer = memory_fit(dep, short + extra)

    assert longer.max_concurrent_sequences <= shorter.max_concurrent_sequences
    if (
        dep.model.local_layers
    ):  # windowed layers hold at most their window: a longer context costs less per token
        assert longer.kv_capacity_tokens >= shorter.kv_capacity_tokens
    else:
        assert longer.kv_capacity_tokens == shorter.kv_capacity_tokens
    if longer.fits:
        assert shorter.fits


@FAST
@given(params_b=st.floats(1.0, 2000.0), quant=st.sampled_from(["bf16", "fp8", "awq-int4"]))
def test_a_model_larger_than_memory_at_tp1_does_not_fit(
    catalog: CatalogSnapshot, params_b: float, quant: str
) -> None:
    gpu = catalog.gpu("h100-sxm")
    q = catalog.quantization(quant)
    model = replace(catalog.model("llama-3.1-70b"), params_total_b=params_b, params_active_b=params_b)
    dep = Deployment(model, gpu, q, "vllm", 1)

    fit = memory_fit(dep, 4096)

    if params_b * q.weight_bytes_per_param > gpu.memory_gb:
        assert not fit.fits
        assert f"leaves {fit.have_gb:.1f} GB" in fit.reason
        assert fit.need_gb > fit.have_gb


@FAST
@given(batch=st.integers(1, 512), context=st.integers(1, 32_000))
def test_step_time_grows_with_batch_and_context(catalog: CatalogSnapshot, batch: int, context: int) -> None:
    perf = build_perf_model(deployment(catalog, "llama-3.1-8b", "h100-sxm", "fp8"), EFF, context_tokens=1024)

    t = perf.step_s(batch, batch * context, 0, 0.0)

    assert perf.step_s(batch + 1, (batch + 1) * context, 0, 0.0) >= t
    assert perf.step_s(batch, batch * (context + 100), 0, 0.0) >= t
    # One step serves the batch: per-token cost falls with batch size (weights are read once per step).
    assert perf.step_s(2 * batch, 2 * batch * context, 0, 0.0) <= 2 * t


# --- memory and bytes -----------------------------------------------------------------------------------


def test_kv_bytes_per_token_match_the_catalog_column(catalog: CatalogSnapshot) -> None:
    with (DATA_DIR / "models.csv").open(newline="") as handle:
        published = {row["slug"]: float(row["kv_bytes_per_token_bf16"]) for row in csv.DictReader(handle)}

    for model in catalog.models:
        if model.slug in published:
            assert kv_bytes_per_token_gpu(model, 1, 2.0) == published[model.slug], model.slug


def test_kv_heads_split_across_gpus_and_replicate_beyond_their_count(catalog: CatalogSnapshot) -> None:
    phi = catalog.model("phi-4")  # 10 KV heads
    one = kv_bytes_per_token_gpu(phi, 1, 2.0)

    assert kv_bytes_per_token_gpu(phi, 2, 2.0) == one / 2
    assert kv_bytes_per_token_gpu(phi, 4, 2.0) == pytest.approx(
        one * 3 / 10
    )  # ceil(10 / 4) = 3 heads per GPU


def test_memory_fit_counts_every_expert_of_a_moe(catalog: CatalogSnapshot) -> None:
    dep = deployment(catalog, "mixtral-8x7b", "h100-sxm", "bf16")

    fit = memory_fit(dep, 4096)

    assert fit.weights_per_gpu_gb == pytest.approx(46.7 * 2.0)
    assert not fit.fits
    assert "weights need 93.4 GB" in fit.reason


def test_moe_reads_more_experts_as_the_batch_grows_and_computes_with_active_parameters(
    catalog: CatalogSnapshot,
) -> None:
    perf = build_perf_model(
        deployment(catalog, "mixtral-8x7b", "h100-sxm", "fp8", tp=2), EFF, context_tokens=2048
    )

    one, many = perf.weight_bytes_read(1), perf.weight_bytes_read(512)

    assert one < many
    assert many == pytest.approx(46.7e9 * 1.0 / 2, rel=1e-3)  # every expert touched
    assert one == pytest.approx(12.88e9 * 1.0 / 2, rel=1e-3)  # top-2 of 8: exactly the active weights
    per_token = perf.dense_flops_per_token + perf.expert_flops_per_token
    assert per_token == pytest.approx(2 * 12.88e9 / 2, rel=1e-6)


def test_tensor_parallel_costs_per_gpu_throughput_at_small_batch(catalog: CatalogSnapshot) -> None:
    per_gpu = {}
    for tp in (1, 2, 4, 8):
        perf = build_perf_model(
            deployment(catalog, "llama-3.1-8b", "h100-sxm", "bf16", tp=tp), EFF, context_tokens=2048
        )
        per_gpu[tp] = steady_state(perf, 512, 256, 1).output_tokens_per_s[0] / tp

    assert per_gpu[1] > per_gpu[2] > per_gpu[4] > per_gpu[8]


def test_decode_turns_compute_bound_at_large_batch(catalog: CatalogSnapshot) -> None:
    perf = build_perf_model(
        deployment(catalog, "llama-3.1-70b", "h100-sxm", "fp8", tp=4), EFF, context_tokens=2048
    )

    small = perf.step_s(2, 0, 0, 0.0) / perf.step_s(1, 0, 0, 0.0)
    large = perf.step_s(8192, 0, 0, 0.0) / perf.step_s(4096, 0, 0, 0.0)

    assert small < 1.05  # memory-bound: twice the batch costs nearly nothing
    assert large > 1.8  # compute-bound: twice the tokens take nearly twice as long


# --- what each GPU and engine supports ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "quant", "engine", "reason"),
    [
        ("a100-80gb", "fp8", "sglang", "precision_unsupported"),
        ("h100-sxm", "nvfp4", "vllm", "precision_unsupported"),
        ("t4", "bf16", "vllm", "precision_unsupported"),
        ("h100-sxm", "gguf-q4_k_m", "vllm", "engine_cannot_serve_quant"),
        ("cpu", "bf16", "sglang", "engine_cannot_run_on_accelerator"),
        ("mi300x", "fp8", "trtllm", "engine_cannot_run_on_accelerator"),
        ("h100-sxm", "fp8", "transformers", "engine_cannot_serve_quant"),
    ],
)
def test_impossible_combinations_raise_naming_why(
    catalog: CatalogSnapshot, gpu: str, quant: str, engine: str, reason: str
) -> None:
    with pytest.raises(UnsupportedCombination) as raised:
        check_supported(deployment(catalog, "llama-3.1-8b", gpu, quant, engine))

    assert raised.value.reason == reason
    assert gpu in str(raised.value) or quant in str(raised.value)


@pytest.mark.parametrize(
    ("gpu", "quant", "engine"),
    [
        ("b200", "nvfp4", "trtllm"),
        ("l40s", "fp8", "vllm"),
        ("mi300x", "fp8", "vllm"),
        ("t4", "fp16", "vllm"),
        ("cpu", "gguf-q4_k_m", "llamacpp"),
        ("cpu", "bf16", "transformers"),
        ("h100-sxm", "gguf-q8_0", "llamacpp"),
        ("a100-80gb", "fp8", "vllm"),  # weight-only W8A16 through vLLM's FP8 Marlin
    ],
)
def test_supported_combinations_pass(catalog: CatalogSnapshot, gpu: str, quant: str, engine: str) -> None:
    check_supported(deployment(catalog, "llama-3.1-8b", gpu, quant, engine))


def test_tp_must_divide_attention_heads(catalog: CatalogSnapshot) -> None:
    with pytest.raises(UnsupportedCombination, match="28 attention heads"):
        check_supported(deployment(catalog, "qwen2.5-7b", "h100-sxm", "bf16", tp=8))


# --- predictions carry provenance -----------------------------------------------------------------------


def test_prediction_is_labelled_predicted_with_key_and_band(catalog: CatalogSnapshot) -> None:
    dep = deployment(catalog, "llama-3.1-8b", "h100-sxm", "fp8")

    result = predict(dep, EFF, BANDS, isl=1000, osl=1000, gpu_count=4)
    single = predict(dep, EFF, BANDS, isl=1000, osl=1000)

    assert result.source == "predicted"
    assert result.calibration_key == EFF.calibration_key
    assert result.error_band_rel == BANDS["output_tokens_per_s"].p90_ape
    assert result.to_dict()["error_bands"]["output_tokens_per_s"]["rows"] == 50
    assert result.replicas == 4
    assert result.output_tokens_per_s == pytest.approx(4 * single.output_tokens_per_s)


def test_prediction_that_does_not_fit_says_so_with_numbers(catalog: CatalogSnapshot) -> None:
    result = predict(deployment(catalog, "llama-3.1-405b", "l4", "fp16"), EFF, BANDS, isl=100, osl=100)

    assert not result.fits
    assert result.output_tokens_per_s == 0
    assert result.memory is not None
    assert "need" in result.memory.reason
    assert result.memory.need_gb > result.memory.have_gb


# --- lengths and simulation -----------------------------------------------------------------------------


def test_sampled_lengths_follow_the_stated_percentiles_and_max() -> None:
    stats = LengthStats(mean=800, p50=600, p95=2400, max=8000)

    values = sample_lengths(stats, 2000, np.random.default_rng(0))

    assert np.median(values) == pytest.approx(600, rel=0.03)
    assert np.percentile(values, 95) == pytest.approx(2400, rel=0.10)
    assert values.max() <= 8000
    assert values.min() >= 1
    assert values.mean() == pytest.approx(800, rel=0.10)


def test_simulation_is_deterministic_for_a_seed(catalog: CatalogSnapshot) -> None:
    perf = build_perf_model(deployment(catalog, "llama-3.1-8b", "l40s", "fp8"), EFF, context_tokens=9000)
    prompt, output = LengthStats(800, 600, 2400, 8000), LengthStats(200, 150, 600, 1000)

    first = simulate(perf, RequestSet.draw(prompt, output, 200, seed=7), LoadSpec("poisson", rate_per_s=2.0))
    second = simulate(perf, RequestSet.draw(prompt, output, 200, seed=7), LoadSpec("poisson", rate_per_s=2.0))

    assert first == second
    assert first.completed == 200


def test_simulation_agrees_with_the_steady_state_in_closed_loop(catalog: CatalogSnapshot) -> None:
    perf = build_perf_model(
        deployment(catalog, "llama-3.3-70b", "h100-sxm", "fp8", "trtllm", 2), EFF, context_tokens=6000
    )

    for concurrency in (1, 16, 64):
        analytic = steady_state(perf, 2000, 400, concurrency)
        simulated = simulate(
            perf, RequestSet.fixed(2000, 400, 400), LoadSpec("closed", concurrency=concurrency)
        )
        assert simulated.output_tokens_per_s == pytest.approx(analytic.output_tokens_per_s[0], rel=0.15)
        assert simulated.tpot_ms["p50"] == pytest.approx(analytic.tpot_s[0] * 1e3, rel=0.15)


def test_poisson_latency_rises_with_the_rate(catalog: CatalogSnapshot) -> None:
    perf = build_perf_model(deployment(catalog, "llama-3.1-8b", "l4", "fp8"), EFF, context_tokens=9000)
    requests = RequestSet.draw(
        LengthStats(800, 600, 2400, 8000), LengthStats(200, 150, 600, 1000), 300, seed=1
    )

    results = [simulate(perf, requests, LoadSpec("poisson", rate_per_s=r)) for r in (0.1, 0.5, 1.0, 2.0)]

    ttft = [r.ttft_ms["p95"] for r in results]
    assert ttft == sorted(ttft)
    assert results[-1].mean_batch > results[0].mean_batch


def test_offline_simulation_is_limited_by_kv_cache(catalog: CatalogSnapshot) -> None:
    perf = build_perf_model(deployment(catalog, "llama-3.1-8b", "l4", "bf16"), EFF, context_tokens=3000)

    result = simulate(perf, RequestSet.fixed(2000, 1000, 300), LoadSpec("offline"))

    assert result.mean_batch <= perf.sequences_at(2000 + 1000 / 2) + 1e-9
    assert result.completed == 300


def test_max_rate_search_finds_a_rate_that_holds_and_one_above_that_does_not(
    catalog: CatalogSnapshot,
) -> None:
    perf = build_perf_model(deployment(catalog, "llama-3.1-8b", "l40s", "fp8"), EFF, context_tokens=9000)
    requests = RequestSet.draw(
        LengthStats(800, 600, 2400, 8000), LengthStats(200, 150, 600, 1000), 300, seed=3
    )
    slo = LatencySlo(ttft_p95_ms=1000, itl_p95_ms=60)

    found = max_rate_simulated(perf, requests, slo)

    assert found.max_rate_per_s > 0
    at = simulate(perf, requests, LoadSpec("poisson", rate_per_s=found.max_rate_per_s))
    above = simulate(perf, requests, LoadSpec("poisson", rate_per_s=found.max_rate_per_s * 1.1))
    assert at.ttft_ms["p95"] <= slo.ttft_p95_ms
    assert at.itl_ms["p95"] <= slo.itl_p95_ms
    assert above.ttft_ms["p95"] > slo.ttft_p95_ms or above.itl_ms["p95"] > slo.itl_p95_ms
    analytic = max_rate_analytic(
        perf, LengthStats(800, 600, 2400, 8000), LengthStats(200, 150, 600, 1000), slo
    )
    assert analytic.max_rate_per_s == pytest.approx(found.max_rate_per_s, rel=0.35)


def test_an_slo_below_one_idle_step_is_unreachable(catalog: CatalogSnapshot) -> None:
    perf = build_perf_model(
        deployment(catalog, "llama-3.1-70b", "h100-sxm", "fp8", tp=2), EFF, context_tokens=9000
    )
    requests = RequestSet.draw(LengthStats(800, 600, 2400, 8000), LengthStats(200, 150, 600, 1000), 100)

    found = max_rate_simulated(perf, requests, LatencySlo(ttft_p95_ms=5000, itl_p95_ms=2))

    assert found.max_rate_per_s == 0
    assert found.idle_itl_p95_ms > 2
    assert math.isfinite(found.idle_ttft_p95_ms)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "mixtral-8x7b"])
def test_step_time_on_arrays_matches_the_scalar_one(catalog: CatalogSnapshot, model: str) -> None:
    perf = build_perf_model(deployment(catalog, model, "h100-sxm", "fp8", tp=2), EFF, context_tokens=4096)
    chunks = np.array([1.0, 17.0, 512.0, 4000.0])
    pairs = chunks * 300.0

    vector = perf.step_s(24, 24 * 900.0, chunks, pairs)

    scalar = [perf.step_s(24, 24 * 900.0, float(c), p) for c, p in zip(chunks, pairs, strict=True)]
    assert vector == pytest.approx(scalar)


@FAST
@given(
    layout=st.sampled_from(
        [
            ("llama-3.1-8b", {}),
            ("mixtral-8x7b", {"tp": 2}),
            ("deepseek-r1", {"tp": 1, "dp": 8, "ep": 8}),
            ("llama-3.1-70b", {"tp": 4, "pp": 2}),
            ("qwen3-30b-a3b", {"tp": 2, "ep": 2}),
        ]
    ),
    n_decode=st.integers(0, 512),
    context=st.floats(0, 1e6),
    n_prefill=st.integers(0, 8192),
    pairs=st.floats(0, 1e8),
)
def test_the_simulations_scalar_step_time_is_step_s(
    catalog: CatalogSnapshot,
    layout: tuple[str, dict[str, int]],
    n_decode: int,
    context: float,
    n_prefill: int,
    pairs: float,
) -> None:
    model, parallel = layout
    dep = Deployment(
        catalog.model(model), catalog.gpu("h200"), catalog.quantization("fp8"), "sglang", **parallel
    )
    step = build_step_model(dep, EFF, context_tokens=4096)

    fast = step.scalar_step()

    assert fast(n_decode, context, n_prefill, pairs) == pytest.approx(
        float(step.step_s(n_decode, context, n_prefill, pairs)), rel=1e-9, abs=1e-15
    )
