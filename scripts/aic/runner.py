"""Answer calibration-corpus rows with NVIDIA AIConfigurator (AIC); runs inside the venv scripts/aic/setup.sh builds.

    <aic-venv>/bin/python scripts/aic/runner.py [--database-mode SILICON] < rows.jsonl > answers.jsonl

stdin: JSON lines, one calibration-corpus row each (the corpus CSV's columns, values as strings).
stdout: one JSON line {"kind": "meta", ...} (AIC version, database mode, the databases AIC ships), then one
{"kind": "row", "id": ..., "status": "answered" | "skipped", ...} line per input row, in input order.

How a row becomes an AIC question (everything below is AIC's public API, called as a user would):
- fixed concurrency N (load=concurrency, and load=single as N=1): ``aiconfigurator.cli.api.cli_estimate`` in
  ``agg`` mode with batch_size = N per attention-DP rank of one serving instance, AIC's default ctx_tokens (= isl,
  one prefill per mixed step). Its TTFT is the steady-state in-flight-batching TTFT, without queueing.
- offline (load=offline, "all requests queued"): the engine runs at the largest batch it can hold, so the answer
  is AIC's own aggregated sweep (``aiconfigurator.sdk.sweep.sweep_agg`` over the kwargs ``Task`` builds) for
  the row's one parallel layout, with no TTFT/TPOT limit and AIC's own batch cap (sweep_agg's max_batch_size
  default, 512 in 0.12.0; --offline-max-batch raises it): for each batch size in AIC's schedule the sweep walks
  the ctx_tokens ladder and stops at the first point where weights or KV cache no longer fit, and the best
  tokens/s point over what fits is the prediction.
- several published figures of one configuration (throughput, TTFT, TPOT) share one AIC evaluation.
AIC is never asked to download anything: only model ids AIC lists as supported (their configs ship with it).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import inspect
import json
import logging
import math
import re
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

# Corpus GPU slug -> AIC system name. Systems AIC describes without measured tables (h100_pcie, a100_pcie, l4)
# are listed so the skip reason says "no database" rather than "unknown GPU".
SYSTEMS: dict[str, str] = {
    "h100-sxm": "h100_sxm",
    "h200": "h200_sxm",
    "b200": "b200_sxm",
    "b300": "b300_sxm",
    "gb200": "gb200",
    "gb300": "gb300",
    "a100-80gb": "a100_sxm",
    "l40s": "l40s",
    # AIC's table was collected on the RTX PRO 6000 Blackwell *Server* Edition (systems/rtx_pro_6000_server.yaml).
    "rtx-pro-6000": "rtx_pro_6000_server",
    "h100-pcie": "h100_pcie",
    "a100-80gb-pcie": "a100_pcie",
    "l4": "l4",
}
BACKENDS: dict[str, str] = {"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm"}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """Checkpoints AIC 0.12.0 ships a config for (aiconfigurator_core/model_configs), one per corpus slug.

    ``base`` is used with explicit quant modes; ``native`` maps a corpus precision to a shipped checkpoint
    already in that precision, so AIC reads the quantisation (and KV-cache dtype) from the checkpoint itself.
    Corpus slugs that name a different release of an identical shape share a checkpoint (Llama 3 / 3.1 / 3.3
    and R1-Distill-Llama-70B have the same layers, widths, heads and vocabulary; DeepSeek V3 / R1 / V3.1 too).
    """

    base: str
    moe: bool
    native: dict[str, str] = dataclasses.field(default_factory=dict)


_LLAMA_70B = ModelEntry(
    base="meta-llama/Meta-Llama-3.1-70B", moe=False, native={"fp8": "nvidia/Llama-3.1-70B-Instruct-FP8"}
)
_DEEPSEEK = ModelEntry(
    base="deepseek-ai/DeepSeek-R1",
    moe=True,
    # DeepSeek ships block-scaled FP8 only, so a figure labelled "fp8" ran the block-FP8 checkpoint.
    native={
        "fp8-block": "deepseek-ai/DeepSeek-R1",
        "fp8": "deepseek-ai/DeepSeek-R1",
        "nvfp4": "nvidia/DeepSeek-V3.1-NVFP4",
    },
)
MODELS: dict[str, ModelEntry] = {
    "llama-3.1-8b": ModelEntry(base="meta-llama/Meta-Llama-3.1-8B", moe=False),
    "llama-3-8b": ModelEntry(base="meta-llama/Meta-Llama-3.1-8B", moe=False),
    "llama-3.1-70b": _LLAMA_70B,
    "llama-3.3-70b": _LLAMA_70B,
    "llama-3-70b": _LLAMA_70B,
    "deepseek-r1-distill-llama-70b": _LLAMA_70B,
    "llama-3.1-405b": ModelEntry(base="meta-llama/Meta-Llama-3.1-405B", moe=False),
    "deepseek-r1": _DEEPSEEK,
    "deepseek-v3": dataclasses.replace(
        _DEEPSEEK,
        base="deepseek-ai/DeepSeek-V3",
        native={**_DEEPSEEK.native, "fp8-block": "deepseek-ai/DeepSeek-V3", "fp8": "deepseek-ai/DeepSeek-V3"},
    ),
    "deepseek-v3.2": ModelEntry(
        base="deepseek-ai/DeepSeek-V3.2",
        moe=True,
        native={
            "fp8-block": "deepseek-ai/DeepSeek-V3.2",
            "fp8": "deepseek-ai/DeepSeek-V3.2",
            "nvfp4": "nvidia/DeepSeek-V3.2-NVFP4",
        },
    ),
    "kimi-k2": ModelEntry(
        base="moonshotai/Kimi-K2-Instruct",
        moe=True,
        native={"fp8-block": "moonshotai/Kimi-K2-Instruct", "fp8": "moonshotai/Kimi-K2-Instruct"},
    ),
    "qwen3-8b": ModelEntry(base="Qwen/Qwen3-8B", moe=False),
    "qwen3-32b": ModelEntry(
        base="Qwen/Qwen3-32B",
        moe=False,
        native={"fp8": "Qwen/Qwen3-32B-FP8", "fp8-block": "Qwen/Qwen3-32B-FP8"},
    ),
    "qwen3-30b-a3b": ModelEntry(
        base="Qwen/Qwen3-30B-A3B",
        moe=True,
        native={"fp8": "Qwen/Qwen3-30B-A3B-FP8", "fp8-block": "Qwen/Qwen3-30B-A3B-FP8"},
    ),
    "qwen3-235b-a22b": ModelEntry(
        base="Qwen/Qwen3-235B-A22B",
        moe=True,
        native={
            "fp8": "Qwen/Qwen3-235B-A22B-FP8",
            "fp8-block": "Qwen/Qwen3-235B-A22B-FP8",
            "nvfp4": "nvidia/Qwen3-235B-A22B-NVFP4",
        },
    ),
    "qwen3-vl-32b": ModelEntry(base="Qwen/Qwen3-VL-32B-Instruct", moe=False),
    "gpt-oss-20b": ModelEntry(base="openai/gpt-oss-20b", moe=True, native={"mxfp4": "openai/gpt-oss-20b"}),
    "gpt-oss-120b": ModelEntry(base="openai/gpt-oss-120b", moe=True, native={"mxfp4": "openai/gpt-oss-120b"}),
    "llama-4-scout": ModelEntry(base="meta-llama/Llama-4-Scout-17B-16E-Instruct", moe=True),
    "llama-4-maverick": ModelEntry(base="meta-llama/Llama-4-Maverick-17B-128E-Instruct", moe=True),
    "mixtral-8x7b": ModelEntry(base="mistralai/Mixtral-8x7B-v0.1", moe=True),
}

# Corpus weight precision -> AIC (gemm_quant_mode, moe_quant_mode) when no shipped checkpoint is natively in it.
# fp16 runs on the same tensor-core rate as bf16; AIC has no fp16 GEMM mode. Weight-only int4 (AWQ/GPTQ) is AIC's
# int4_wo. GGUF, int8 and MXFP4 outside gpt-oss have no AIC counterpart.
QUANT_MODES: dict[str, tuple[str, str]] = {
    "bf16": ("bfloat16", "bfloat16"),
    "fp16": ("bfloat16", "bfloat16"),
    "fp8": ("fp8", "fp8"),
    "fp8-block": ("fp8_block", "fp8_block"),
    "nvfp4": ("nvfp4", "nvfp4"),
    "awq-int4": ("int4_wo", "int4_wo"),
    "gptq-int4": ("int4_wo", "int4_wo"),
    "w4a16": ("int4_wo", "int4_wo"),
}
KV_MODES: dict[str, str] = {"bf16": "bfloat16", "fp16": "bfloat16", "f16": "bfloat16", "fp8": "fp8"}

CENTRAL_STATISTICS = frozenset({"mean", "median"})
THROUGHPUT_METRICS = frozenset({"output_tokens_per_s", "total_tokens_per_s", "requests_per_s"})
LATENCY_METRICS = frozenset({"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"})
# Notes flag prefill/decode-disaggregated runs ("P/D disaggregated", "1P/1D disaggregated"); "not disaggregated"
# is the opposite.
DISAGGREGATED = re.compile(r"disaggregat", re.IGNORECASE)
NOT_DISAGGREGATED = re.compile(r"\b(?:not|non|no)[\s-]+disaggregat\w*", re.IGNORECASE)


def _aic_default_max_batch() -> int:
    """The batch cap AIC's own aggregated sweep applies when its caller names none."""
    from aiconfigurator.sdk.sweep import sweep_agg

    return int(inspect.signature(sweep_agg).parameters["max_batch_size"].default)


def _agg_batch_schedule() -> list[int]:
    from aiconfigurator.sdk import sweep

    return list(sweep._DEFAULT_AGG_BATCH_SCHEDULE)


class Skip(Exception):
    """A row AIC cannot answer, with a category for the summary and the reason."""

    def __init__(self, category: str, reason: str) -> None:
        super().__init__(reason)
        self.category = category
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Layout:
    """One serving instance in AIC's terms, and how many of them the published figure sums over."""

    tp: int  # attention tensor parallel
    pp: int
    attention_dp: int
    moe_tp: int | None
    moe_ep: int | None
    instance_gpus: int
    replicas: int


@dataclasses.dataclass(frozen=True)
class Question:
    """What AIC is asked; rows that share one (throughput, TTFT and TPOT figures of a run) share the answer."""

    mode: str  # "fixed" (cli_estimate agg at a batch) | "prefill" (static_ctx at a batch) | "offline" (sweep_agg)
    model_path: str
    system: str
    backend: str
    db_version: str
    isl: int
    osl: int
    layout: Layout
    batch_per_rank: int  # 0 for offline
    gemm_quant_mode: str | None
    moe_quant_mode: str | None
    kvcache_quant_mode: str | None


def _int(value: str, field: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise Skip("input", f"{field}={value!r} is not a number") from None
    if number <= 0 or not math.isfinite(number):
        raise Skip("input", f"{field}={value!r} must be positive")
    return max(1, round(number))


def interpret_layout(row: dict[str, str], *, moe: bool) -> Layout:
    """Map the corpus's (gpu_count, tp, pp, ep, dp) onto one AIC instance times replicas.

    The corpus records dp two ways: replicas of a TP group (dense models, tp*pp*dp == gpu_count), or TensorRT-LLM's
    attention DP inside the TP group ("DEP4" is tp=4 with attention DP 4, so tp*pp == gpu_count per instance and
    attention itself runs at TP tp/dp).
    """
    gpus, tp, pp = (
        _int(row["gpu_count"], "gpu_count"),
        _int(row["tp"], "tp"),
        _int(row.get("pp") or "1", "pp"),
    )
    ep, dp = _int(row.get("ep") or "1", "ep"), _int(row.get("dp") or "1", "dp")

    def moe_split(width: int) -> tuple[int | None, int | None]:
        if not moe:
            return None, None
        if width % ep:
            raise Skip("parallelism", f"ep={ep} does not divide the MoE width {width}")
        return width // ep, ep

    if dp == 1 or tp * pp * dp == gpus:
        if moe and dp > 1 and ep > 1:  # attention DP inside one expert-parallel instance (e.g. DP8 + EP8)
            moe_tp, moe_ep = moe_split(tp * dp)
            return Layout(tp, pp, dp, moe_tp, moe_ep, instance_gpus=gpus, replicas=1)
        if gpus % (tp * pp):
            raise Skip("parallelism", f"tp*pp={tp * pp} does not divide gpu_count={gpus}")
        moe_tp, moe_ep = moe_split(tp)
        return Layout(tp, pp, 1, moe_tp, moe_ep, instance_gpus=tp * pp, replicas=gpus // (tp * pp))
    if gpus % (tp * pp) == 0:
        replicas = gpus // (tp * pp)
        attention_dp = dp // replicas if dp % replicas == 0 else 0
        if not moe or attention_dp < 1 or tp % attention_dp:
            raise Skip(
                "parallelism", f"cannot read gpu_count={gpus} tp={tp} pp={pp} ep={ep} dp={dp} as one layout"
            )
        moe_tp, moe_ep = moe_split(tp)
        return Layout(
            tp // attention_dp, pp, attention_dp, moe_tp, moe_ep, instance_gpus=tp * pp, replicas=replicas
        )
    raise Skip("parallelism", f"cannot read gpu_count={gpus} tp={tp} pp={pp} ep={ep} dp={dp} as one layout")


_VERSION = re.compile(r"(?<![\w.])v?(\d+\.\d+(?:\.\d+)?(?:\.?(?:rc|post|dev)\d+)?)")


def stated_release(engine_version: str) -> str | None:
    """The release a corpus engine_version names ("v0.5.6 (image ...)" -> "0.5.6"); None when it names none."""
    from packaging.version import InvalidVersion, Version

    stated = engine_version.strip()
    match = None if stated.lower().startswith("unstated") else _VERSION.search(stated)
    if match is None:
        return None
    try:
        Version(match.group(1))
    except InvalidVersion:
        return None
    return match.group(1)


def nearest_db_version(release: str, available: list[str]) -> str:
    """AIC's database version nearest in release order to the one a figure was measured on.

    AIC exposes only its queryable slots (current, previous, next) per system and backend: a figure from a release
    older than all of them maps to the oldest, any other to the newest slot at or below its release.
    """
    from packaging.version import Version

    ordered = sorted(available, key=Version)
    at_or_below = [v for v in ordered if Version(v) <= Version(release)]
    return at_or_below[-1] if at_or_below else ordered[0]


def _current_slot(system: str, backend: str) -> str | None:
    from aiconfigurator.sdk.perf_database import get_version_slots

    slots = get_version_slots(system, backend)
    return None if slots is None else slots.get("current")


def build_question(row: dict[str, str], databases: dict[str, dict[str, list[str]]]) -> tuple[Question, str]:
    """The AIC question for a row, and a note on the version mapping; raises Skip with the reason AIC cannot answer."""
    engine = row["engine"]
    backend = BACKENDS.get(engine)
    if backend is None:
        raise Skip("engine", f"engine {engine} is not an AIC backend (trtllm, vllm, sglang)")
    system = SYSTEMS.get(row["gpu_slug"])
    if system is None:
        raise Skip("gpu", f"GPU {row['gpu_slug']} has no AIC system")
    versions = databases.get(system, {}).get(backend)
    if not versions:
        raise Skip("gpu", f"AIC ships no measured {backend} database for {system}")
    if DISAGGREGATED.search(NOT_DISAGGREGATED.sub("", row.get("notes", ""))):
        raise Skip(
            "disaggregated",
            "prefill/decode-disaggregated deployment; the runner asks AIC for aggregated serving",
        )
    entry = MODELS.get(row["model_slug"])
    if entry is None:
        raise Skip("model", f"model {row['model_slug']} has no config shipped with AIC")
    precision = row["weight_precision"]
    gemm = moe_mode = None
    model_path = entry.native.get(precision)
    if model_path is None:
        if precision not in QUANT_MODES:
            raise Skip("precision", f"weight precision {precision} has no AIC quant mode")
        model_path = entry.base
        gemm, moe_mode = QUANT_MODES[precision]
        if not entry.moe:
            moe_mode = None
    load, metric, statistic = row["load"], row["metric"], row["statistic"]
    if load == "rate":
        raise Skip(
            "load",
            "open-loop request rate: AIC predicts a fixed batch or the offline maximum, not a Poisson load",
        )
    if metric in LATENCY_METRICS and statistic not in CENTRAL_STATISTICS:
        raise Skip(
            "metric", f"{statistic} {metric}: AIC predicts one steady-state value, not a tail percentile"
        )
    if load == "offline" and metric in ("ttft_ms", "e2e_ms"):
        raise Skip(
            "metric", f"offline {metric} is dominated by queue wait, which AIC's steady-state TTFT excludes"
        )
    if metric in ("prefill_tokens_per_s", "decode_tokens_per_s") and load != "single":
        raise Skip("metric", f"{metric} of a batched run: AIC reports end-to-end throughput, not per phase")
    if metric not in THROUGHPUT_METRICS | LATENCY_METRICS | {"prefill_tokens_per_s", "decode_tokens_per_s"}:
        raise Skip("metric", f"metric {metric} not modelled")
    layout = interpret_layout(row, moe=entry.moe)
    osl = _int(row["osl"], "osl")
    if load == "offline":
        if osl == 1:
            raise Skip(
                "load", "offline prefill-only run (osl 1): AIC's aggregated sweep has no decode to schedule"
            )
        batch_per_rank = 0
        mode = "offline"
    elif load in ("concurrency", "single"):
        stated = "1" if load == "single" else row.get("concurrency", "")
        if not stated.replace(".", "", 1).isdigit():
            raise Skip("load", f"concurrency {stated or 'blank'}: the batch AIC needs is not stated")
        concurrency = _int(stated, "concurrency")
        ranks = layout.replicas * layout.attention_dp
        batch_per_rank = max(1, round(concurrency / ranks))
        # With one output token the run is all prefill: AIC's agg mode reports no throughput for it, its
        # static_ctx mode prices the prefill of the whole batch.
        mode = "prefill" if osl == 1 else "fixed"
    else:
        raise Skip("load", f"load {load!r} not modelled")
    stated = row.get("engine_version", "")
    release = stated_release(stated)
    if release is None:  # unstated: what AIC itself uses when asked for no version, its "current" slot
        db_version = _current_slot(system, backend) or versions[0]
        version_note = f"engine version {stated!r} -> AIC current slot {db_version}"
    else:
        db_version = nearest_db_version(release, versions)
        version_note = f"{release} -> {db_version} (AIC has {', '.join(versions)})"
    question = Question(
        mode=mode,
        model_path=model_path,
        system=system,
        backend=backend,
        db_version=db_version,
        isl=_int(row["isl"], "isl"),
        osl=osl,
        layout=layout,
        batch_per_rank=batch_per_rank,
        gemm_quant_mode=gemm,
        moe_quant_mode=moe_mode,
        kvcache_quant_mode=KV_MODES.get(row.get("kv_precision", "")),
    )
    return question, version_note


def _listed(model_path: str) -> bool:
    from aiconfigurator_core.sdk.common import DefaultHFModels

    return model_path in DefaultHFModels


def _first_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300]


def ask_aic(question: Question, *, database_mode: str, offline_max_batch: int) -> dict[str, Any]:
    """AIC's result dict for a question (tokens/s, tokens/s/gpu, tokens/s/user, seq/s, ttft, tpot, ...)."""
    layout = question.layout
    quant = {
        "gemm_quant_mode": question.gemm_quant_mode,
        "moe_quant_mode": question.moe_quant_mode,
        "kvcache_quant_mode": question.kvcache_quant_mode,
    }
    if question.mode in ("fixed", "prefill"):
        from aiconfigurator.cli.api import cli_estimate

        result = cli_estimate(
            question.model_path,
            question.system,
            mode="agg" if question.mode == "fixed" else "static_ctx",
            backend_name=question.backend,
            backend_version=question.db_version,
            database_mode=database_mode,
            isl=question.isl,
            osl=question.osl,
            batch_size=question.batch_per_rank,
            tp_size=layout.tp,
            pp_size=layout.pp,
            attention_dp_size=layout.attention_dp,
            moe_tp_size=layout.moe_tp,
            moe_ep_size=layout.moe_ep,
            **quant,
        )
        answer = dict(result.raw)
        answer["kv_cache_warning"] = result.kv_cache_warning
        return answer

    from aiconfigurator.sdk.perf_database import get_database_view
    from aiconfigurator.sdk.sweep import sweep_agg
    from aiconfigurator.sdk.task_v2 import Task

    task = Task.from_cli(
        serving_mode="agg",
        isl=question.isl,
        osl=question.osl,
        ttft=1e12,  # no SLA: the offline figure is the best throughput at any latency
        tpot=1e12,
        pareto_sweep=False,
        total_gpus=layout.instance_gpus,
        database_mode=database_mode,
        model_path=question.model_path,
        system_name=question.system,
        backend_name=question.backend,
        backend_version=question.db_version,
        agg_num_gpu_candidates=[layout.instance_gpus],
        agg_tp_candidates=[layout.tp],
        agg_pp_candidates=[layout.pp],
        agg_dp_candidates=[layout.attention_dp],
        agg_moe_tp_candidates=[layout.moe_tp or 1],
        agg_moe_ep_candidates=[layout.moe_ep or 1],
        **quant,
    )
    if not list(task.iter_parallel("agg")):
        raise Skip(
            "parallelism", f"AIC's {question.backend} parallel enumeration excludes this layout ({layout})"
        )
    database = get_database_view(
        question.system,
        question.backend,
        question.db_version,
        allow_missing_data=database_mode != "SILICON",
        database_mode=database_mode,
    )
    frame = sweep_agg(**task.sweep_agg_kwargs(database=database), max_batch_size=offline_max_batch, top_k=1)
    best: dict[str, Any] = frame.sort_values(by="tokens/s", ascending=False).iloc[0].to_dict()
    # AIC's schedule tops out below the cap when the cap is not one of its steps; "capped" means memory never bound.
    best["batch_capped"] = int(best["bs"]) >= max(b for b in _agg_batch_schedule() if b <= offline_max_batch)
    return best


def predicted_value(row: dict[str, str], answer: dict[str, Any], layout: Layout) -> float:
    """AIC's answer in the row's own metric and statistic."""
    metric, statistic = row["metric"], row["statistic"]
    isl, osl = float(row["isl"]), float(row["osl"])
    per_instance = {
        "output_tokens_per_s": float(answer["tokens/s"]),
        "total_tokens_per_s": float(answer["seq/s"]) * (isl + osl),
        "requests_per_s": float(answer["seq/s"]),
    }
    if metric in per_instance:
        if statistic == "total":
            return per_instance[metric] * layout.replicas
        if statistic == "per_gpu":
            return per_instance[metric] / layout.instance_gpus
        if statistic == "per_user" and metric == "output_tokens_per_s":
            return float(answer["tokens/s/user"])
        raise Skip("metric", f"{metric} {statistic} not modelled")
    if metric == "ttft_ms":
        return float(answer["ttft"])
    if metric in ("tpot_ms", "itl_ms"):
        return float(answer["tpot"])
    if metric == "e2e_ms":
        return float(answer["request_latency"])
    if metric == "decode_tokens_per_s":  # batch 1: one token per TPOT, whatever the statistic
        return 1000.0 / float(answer["tpot"])
    if metric == "prefill_tokens_per_s":
        return isl * 1000.0 / float(answer["ttft"])
    raise Skip("metric", f"metric {metric} not modelled")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def answer_rows(
    rows: list[dict[str, str]], *, database_mode: str, offline_max_batch: int | None = None
) -> Iterator[dict[str, Any]]:
    from aiconfigurator.sdk.perf_database import get_supported_databases

    databases = {system: dict(backends) for system, backends in get_supported_databases().items()}
    aic_version = importlib.metadata.version("aiconfigurator")
    max_batch = offline_max_batch or _aic_default_max_batch()
    yield {
        "kind": "meta",
        "aic_version": aic_version,
        "aic_core_version": importlib.metadata.version("aiconfigurator-core"),
        "database_mode": database_mode,
        "offline_max_batch": max_batch,
        "databases": databases,
    }
    answers: dict[Question, dict[str, Any] | Skip] = {}
    started = time.monotonic()
    for index, row in enumerate(rows, start=1):
        record: dict[str, Any] = {"kind": "row", "id": row.get("id", ""), "metric": row.get("metric", "")}
        try:
            question, version_note = build_question(row, databases)
            if not _listed(question.model_path):
                raise Skip(
                    "model",
                    f"{question.model_path} is not among the models AIC lists as supported (DefaultHFModels)",
                )
            if question not in answers:
                try:
                    answers[question] = ask_aic(
                        question, database_mode=database_mode, offline_max_batch=max_batch
                    )
                except Skip as skip:
                    answers[question] = skip
                except (
                    Exception
                ) as exc:  # AIC's refusals (no data, OOM, unsupported quant) come as many types
                    answers[question] = Skip("aic", _first_line(exc))
            answer = answers[question]
            if isinstance(answer, Skip):
                raise answer
            value = predicted_value(row, answer, question.layout)
            record |= {
                "status": "answered",
                "statistic": row["statistic"],
                "aic_value": value,
                "aic_version": aic_version,
                "system": question.system,
                "backend": question.backend,
                "db_version": question.db_version,
                "version_mapping": version_note,
                "model_path": question.model_path,
                "mode": question.mode,
                "instance_gpus": question.layout.instance_gpus,
                "replicas": question.layout.replicas,
                "tp": question.layout.tp,
                "pp": question.layout.pp,
                "attention_dp": question.layout.attention_dp,
                "moe_tp": question.layout.moe_tp,
                "moe_ep": question.layout.moe_ep,
                "batch_per_rank": int(answer["bs"]),
                "ctx_tokens": _json_safe(answer.get("ctx_tokens")),
                "gemm": answer.get("gemm"),
                "moe_quant": answer.get("moe"),
                "kvcache": answer.get("kvcache"),
                "fmha": answer.get("fmha"),
                "batch_capped": bool(answer.get("batch_capped", False)),
                "kv_cache_warning": answer.get("kv_cache_warning"),
            }
        except Skip as skip:
            record |= {"status": "skipped", "category": skip.category, "reason": skip.reason}
        yield record
        if index % 50 == 0:
            print(
                f"aic runner: {index}/{len(rows)} rows, {len(answers)} AIC evaluations, "
                f"{time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-mode", default="SILICON", choices=["SILICON", "HYBRID", "EMPIRICAL", "SOL"]
    )
    parser.add_argument(
        "--offline-max-batch",
        type=int,
        help="largest batch the offline sweep may reach (default: AIC's own cap)",
    )
    args = parser.parse_args()
    # AIC logs every table it loads and warns about its deprecated entry points; the answers are on stdout.
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    for record in answer_rows(
        rows, database_mode=args.database_mode, offline_max_batch=args.offline_max_batch
    ):
        print(json.dumps(record, default=_json_safe), flush=True)


if __name__ == "__main__":
    main()
