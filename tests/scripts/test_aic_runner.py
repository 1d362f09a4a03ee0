"""The AIConfigurator runner's reading of corpus rows; its AIC calls are exercised in test_compare_aiconfigurator."""

from __future__ import annotations

from types import ModuleType

import pytest

DATABASES = {
    "h200_sxm": {"trtllm": ["1.3.0rc20", "1.3.0rc23"], "vllm": ["0.24.0", "0.27.0"], "sglang": ["0.5.14"]},
    "b200_sxm": {"trtllm": ["1.3.0rc20", "1.3.0rc23"]},
}


def corpus_row(**overrides: str) -> dict[str, str]:
    row = {
        "id": "src-1",
        "engine": "trtllm",
        "engine_version": "1.0.0",
        "model_slug": "llama-3.3-70b",
        "gpu_slug": "h200",
        "gpu_count": "1",
        "tp": "1",
        "pp": "1",
        "ep": "1",
        "dp": "1",
        "weight_precision": "fp8",
        "kv_precision": "unstated",
        "isl": "1000",
        "osl": "1000",
        "load": "offline",
        "concurrency": "",
        "metric": "output_tokens_per_s",
        "statistic": "total",
        "value": "4000",
        "notes": "",
    }
    return row | overrides


@pytest.mark.parametrize(
    ("layout", "moe", "expected"),
    [
        # TensorRT-LLM "DEP4": tp 4 with attention DP 4 on 4 GPUs is attention TP 1, 4 DP ranks, EP 4.
        ((4, 4, 1, 4, 4), True, (1, 1, 4, 1, 4, 4, 1)),
        # MLPerf DeepSeek-R1 on 72 GB200: 9 instances of TP8/EP8 with attention DP (dp counts all 72 ranks).
        ((72, 8, 1, 8, 72), True, (1, 1, 8, 1, 8, 8, 9)),
        # SGLang TP8 + EP8 without attention DP.
        ((8, 8, 1, 8, 1), True, (8, 1, 1, 1, 8, 8, 1)),
        # Wide-EP: DP attention 8 inside one EP8 instance.
        ((8, 1, 1, 8, 8), True, (1, 1, 8, 1, 8, 8, 1)),
        # Dense: 18 replicas of TP2 PP2, and 8 replicas of TP1.
        ((72, 2, 2, 1, 18), False, (2, 2, 1, None, None, 4, 18)),
        ((8, 1, 1, 1, 8), False, (1, 1, 1, None, None, 1, 8)),
        # MoE without EP: the experts split by TP.
        ((8, 8, 1, 1, 1), True, (8, 1, 1, 8, 1, 8, 1)),
    ],
)
def test_layout_reads_replicas_and_attention_dp(
    runner: ModuleType, layout: tuple[int, ...], moe: bool, expected: tuple[int | None, ...]
) -> None:
    gpus, tp, pp, ep, dp = (str(n) for n in layout)
    got = runner.interpret_layout(corpus_row(gpu_count=gpus, tp=tp, pp=pp, ep=ep, dp=dp), moe=moe)
    assert (
        got.tp,
        got.pp,
        got.attention_dp,
        got.moe_tp,
        got.moe_ep,
        got.instance_gpus,
        got.replicas,
    ) == expected


def test_layout_that_reads_no_way_is_skipped(runner: ModuleType) -> None:
    with pytest.raises(runner.Skip, match="cannot read"):
        runner.interpret_layout(corpus_row(gpu_count="4", tp="4", dp="4"), moe=False)


@pytest.mark.parametrize(
    ("stated", "expected"),
    [
        ("v0.21", "1.3.0rc20"),  # older than every slot: the oldest
        ("1.3.0rc23", "1.3.0rc23"),
        ("2.0 (doc)", "1.3.0rc23"),  # newer than every slot: the newest at or below it
        ("1.2.0rc2 (image nvcr.io#nvidia/tensorrt-llm/release:1.2.0rc2)", "1.3.0rc20"),
    ],
)
def test_engine_version_maps_to_nearest_slot(runner: ModuleType, stated: str, expected: str) -> None:
    assert runner.nearest_db_version(runner.stated_release(stated), ["1.3.0rc23", "1.3.0rc20"]) == expected


@pytest.mark.parametrize(
    ("stated", "release"),
    [
        ("v0.5.5.post3 (image lmsysorg/sglang:v0.5.5.post3-rocm700-mi30x)", "0.5.5.post3"),
        ("commit 4ea48fb35cf6 (v0.7.3-era, ROCm)", "0.7.3"),
        ("unstated (NVIDIA MLPerf TensorRT-LLM harness; TensorRT 10.11, CUDA 12.9)", None),
        ("b6715", None),
    ],
)
def test_release_is_read_from_the_stated_version_only(
    runner: ModuleType, stated: str, release: str | None
) -> None:
    assert runner.stated_release(stated) == release


@pytest.mark.parametrize(
    ("overrides", "category"),
    [
        ({"engine": "llamacpp"}, "engine"),
        ({"engine": "tgi"}, "engine"),
        ({"gpu_slug": "mi300x"}, "gpu"),
        ({"gpu_slug": "l40s"}, "gpu"),  # a system AIC knows, but no database in this fixture
        ({"notes": "P/D DISAGGREGATED: 4 prefill nodes"}, "disaggregated"),
        ({"model_slug": "mistral-7b-v0.3"}, "model"),
        ({"weight_precision": "gguf-q4_k_m"}, "precision"),
        ({"load": "rate", "request_rate": "2"}, "load"),
        ({"load": "concurrency", "concurrency": "unstated"}, "load"),
        ({"load": "concurrency", "concurrency": "8", "metric": "ttft_ms", "statistic": "p99"}, "metric"),
        ({"metric": "ttft_ms", "statistic": "mean"}, "metric"),  # offline TTFT is queue wait
        ({"load": "concurrency", "concurrency": "8", "metric": "prefill_tokens_per_s"}, "metric"),
    ],
)
def test_rows_aic_cannot_answer_say_why(runner: ModuleType, overrides: dict[str, str], category: str) -> None:
    with pytest.raises(runner.Skip) as raised:
        runner.build_question(corpus_row(**overrides), DATABASES)
    assert raised.value.category == category
    assert raised.value.reason


def test_not_disaggregated_note_does_not_skip(runner: ModuleType) -> None:
    question, _ = runner.build_question(corpus_row(notes="Single node, not disaggregated."), DATABASES)
    assert question.mode == "offline"


def test_fixed_concurrency_is_split_over_replicas_and_dp_ranks(runner: ModuleType) -> None:
    row = corpus_row(
        model_slug="deepseek-r1",
        weight_precision="fp8-block",
        gpu_count="8",
        tp="8",
        ep="8",
        dp="8",
        load="concurrency",
        concurrency="256",
    )
    question, note = runner.build_question(row, DATABASES)
    assert (question.mode, question.batch_per_rank, question.layout.attention_dp) == ("fixed", 32, 8)
    assert question.model_path == "deepseek-ai/DeepSeek-R1"
    assert (question.db_version, note) == ("1.3.0rc20", "1.0.0 -> 1.3.0rc20 (AIC has 1.3.0rc20, 1.3.0rc23)")


def test_prefill_only_run_is_asked_as_a_batch_prefill(runner: ModuleType) -> None:
    row = corpus_row(load="concurrency", concurrency="64", osl="1", metric="total_tokens_per_s")
    question, _ = runner.build_question(row, DATABASES)
    assert (question.mode, question.batch_per_rank) == ("prefill", 64)


def test_native_checkpoint_carries_its_own_quantisation(runner: ModuleType) -> None:
    question, _ = runner.build_question(corpus_row(weight_precision="fp8"), DATABASES)
    assert question.model_path == "nvidia/Llama-3.1-70B-Instruct-FP8"
    assert (question.gemm_quant_mode, question.moe_quant_mode) == (None, None)


def test_other_precisions_are_explicit_quant_modes_on_the_base_checkpoint(runner: ModuleType) -> None:
    dense, _ = runner.build_question(corpus_row(gpu_slug="b200", weight_precision="nvfp4"), DATABASES)
    assert (dense.model_path, dense.gemm_quant_mode, dense.moe_quant_mode) == (
        "meta-llama/Meta-Llama-3.1-70B",
        "nvfp4",
        None,
    )
    moe, _ = runner.build_question(
        corpus_row(model_slug="qwen3-30b-a3b", gpu_slug="b200", weight_precision="nvfp4", kv_precision="fp8"),
        DATABASES,
    )
    assert (moe.gemm_quant_mode, moe.moe_quant_mode, moe.kvcache_quant_mode) == ("nvfp4", "nvfp4", "fp8")


def test_predictions_come_back_in_the_rows_units(runner: ModuleType) -> None:
    answer = {"tokens/s": 1000.0, "tokens/s/user": 20.0, "seq/s": 2.0, "ttft": 150.0, "tpot": 25.0}
    layout = runner.Layout(tp=2, pp=1, attention_dp=1, moe_tp=None, moe_ep=None, instance_gpus=2, replicas=4)

    def value(**overrides: str) -> float:
        return float(runner.predicted_value(corpus_row(isl="300", osl="500") | overrides, answer, layout))

    assert value() == 4000.0  # summed over 4 replicas
    assert value(statistic="per_gpu") == 500.0
    assert value(statistic="per_user") == 20.0
    assert value(metric="total_tokens_per_s") == 2.0 * 800 * 4
    assert value(metric="requests_per_s", statistic="per_gpu") == 1.0
    assert value(metric="ttft_ms", statistic="median") == 150.0
    assert value(metric="itl_ms", statistic="mean") == 25.0
    assert value(metric="decode_tokens_per_s", statistic="per_user") == 40.0
