"""The evidence the model is calibrated on: published benchmark figures (apps/catalog/data/calibration_corpus.csv,
one row per figure with its source) and this project's own measurements, as one row type.

A row says what was run (engine, model, GPU, parallelism, precision, lengths, load) and one figure (metric,
statistic, value). `target()` turns the figure into what the model predicts: output tokens/s over the row's
GPUs, mean TTFT or TPOT in ms, or single-sequence prompt/generation tokens/s; rows the model cannot express
(open-loop rates, tail percentiles, lengths not stated, disaggregated prefill) say why instead.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from apps.catalog.specs import DATA_DIR

CORPUS_PATH = DATA_DIR / "calibration_corpus.csv"

# What the model predicts for a row, by kind.
THROUGHPUT = "output_tokens_per_s"  # total over the row's GPUs
TTFT = "ttft_ms"  # mean (medians are taken as means: closed-loop TTFT at fixed lengths is nearly symmetric)
TPOT = "tpot_ms"  # mean time per output token after the first (ITL averaged per token is the same figure)
E2E = "e2e_ms"  # mean request latency, first byte sent to last token received
PREFILL_RATE = "prefill_tokens_per_s"  # one prompt in one pass (llama-bench ppN)
DECODE_RATE = "decode_tokens_per_s"  # one sequence generating (llama-bench tgN)
KINDS = (THROUGHPUT, TTFT, TPOT, E2E, PREFILL_RATE, DECODE_RATE)


@dataclass(frozen=True)
class MeasuredPoint:
    """One operating point measured by this project's benchmark workers (closed loop or offline).

    concurrency None means offline maximum throughput (all requests queued). output_tokens_per_s is the total
    over gpu_count GPUs (None: tp, one replica).
    """

    model_slug: str
    gpu_slug: str
    engine: str
    quant: str
    tp: int
    isl: int
    osl: int
    concurrency: int | None
    output_tokens_per_s: float
    ttft_p50_ms: float | None
    tpot_ms: float | None
    source: str
    gpu_count: int | None = None
    max_num_seqs: int | None = None  # the batch limit the benchmark ran with, when known
    point_id: str = ""

    @property
    def replicas(self) -> int:
        return max(1, (self.gpu_count or self.tp) // self.tp)


_QUANT_ALIASES = {"w4a16": "gptq-int4", "gguf-q4_0": "gguf-q4_k_m"}

# Benchmarked models whose layer shapes equal a catalog model's (per their published config.json files): they
# stand for each other in the performance model. Llama 3 and 3.1 differ only in RoPE scaling and context
# length; DeepSeek-R1-Distill-Llama-8B is a Llama 3.1 8B fine-tune; DeepSeek-V3 has R1's config.
MODEL_TWINS = {
    "llama-3-8b": "llama-3.1-8b",
    "llama-3-70b": "llama-3.1-70b",
    "deepseek-r1-distill-llama-8b": "llama-3.1-8b",
    "deepseek-v3": "deepseek-r1",
}


@dataclass(frozen=True)
class Target:
    kind: str  # one of KINDS
    value: float


@dataclass(frozen=True)
class CorpusRow:
    id: str
    source_id: str
    source_title: str
    source_url: str
    source_ref: str
    engine: str
    engine_version: str
    model_slug: str
    gpu_slug: str
    gpu_count: int
    tp: int
    pp: int
    ep: int
    dp: int
    weight_precision: str
    kv_precision: str
    isl: float | None
    osl: float | None
    dataset: str
    load: str  # offline | concurrency | rate | single
    concurrency: int | None
    request_rate: float | None
    metric: str
    statistic: str
    value: float
    read_how: str
    notes: str
    excluded: str = ""  # why the row is kept for the record but not used (a run its own source calls broken)
    origin: str = "published"  # or "measured" (this project's benchmark runs)
    max_num_seqs: int | None = None

    @property
    def quant(self) -> str:
        """The catalog quantization the weights are in: W4A16 (compressed-tensors, group 128) is GPTQ's format
        at the same bytes per weight; llama.cpp's legacy Q4_0 (4.5 bits) is counted as the catalog's Q4_K_M
        (4.85 bits), the nearest GGUF 4-bit format (their precision class is the same, "gguf-4bit")."""
        return _QUANT_ALIASES.get(self.weight_precision, self.weight_precision)

    @property
    def model(self) -> str:
        """The catalog architecture the model has (see MODEL_TWINS)."""
        return MODEL_TWINS.get(self.model_slug, self.model_slug)

    @property
    def kv_bytes_per_element(self) -> float | None:
        """None: the engine's default for the quantization."""
        return {"fp8": 1.0, "bf16": 2.0, "fp16": 2.0, "f16": 2.0, "q8_0": 1.0625}.get(self.kv_precision)

    def parallelism(self, moe: bool) -> tuple[int, int, int, int, int]:
        """(attention tp, dp, pp, ep, replicas) in the model's terms.

        Sources write data-parallel attention two ways: TensorRT-LLM and SGLang give tp = dp = n (n GPUs whose
        attention runs data-parallel), vLLM gives tp 1 and dp n. Dense models' dp (and MoE models' dp without
        expert or attention parallelism) counts independent replicas.
        """
        tp, dp, pp, ep = self.tp, self.dp, self.pp, self.ep
        if moe and dp > 1 and (ep > 1 or tp == dp):
            attention_tp = 1 if tp == dp else tp
            replica_gpus = attention_tp * dp * pp
            return attention_tp, dp, pp, ep, max(1, self.gpu_count // replica_gpus)
        replica_gpus = tp * pp
        return tp, 1, pp, ep, max(1, self.gpu_count // replica_gpus)

    @property
    def variable_length_burst(self) -> bool:
        """A finite batch of prompts sent at once whose lengths vary (a chat data set, or outputs that stop at
        the end-of-sequence token): its throughput over the makespan includes a tail of the longest requests at
        a small batch, which the steady state of fixed lengths does not describe."""
        text = f"{self.dataset} {self.notes}".lower()
        return "sharegpt" in text or "no --ignore-eos" in text

    def target(self) -> Target | str:
        """What the model predicts for this row, or why it cannot."""
        if self.excluded:
            return f"excluded: {self.excluded}"
        if self.isl is None or self.osl is None:
            return "input or output length not stated"
        if _states(self.notes, "disaggregat"):
            return "disaggregated prefill/decode (not modelled)"
        if _states(self.notes, "speculative", "spec decod", "mtp"):
            return "speculative decoding (not modelled)"
        if self.load not in ("offline", "concurrency", "single", "rate"):
            return "load not stated (offline, closed loop or rate unknown)"
        if self.load == "rate":
            return "open-loop rate: the model's capacity search answers these, not the closed forms"
        if not math.isfinite(self.value) or self.value <= 0:
            return "value not positive"
        metric, stat, value = self.metric, self.statistic, self.value
        if metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms") and stat not in ("mean", "median"):
            return f"{stat} latency (the closed forms give means)"
        if metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms") and self.load == "offline":
            return "offline latency (depends on how many requests were queued)"
        if self.load == "offline" and self.variable_length_burst:
            return (
                "a burst of requests of varying length (its tail runs at a small batch; lengths not stated)"
            )
        if metric == "ttft_ms":
            return Target(TTFT, value)
        if metric in ("tpot_ms", "itl_ms"):
            return Target(TPOT, value)
        if metric == "e2e_ms":
            return Target(E2E, value)
        if metric in ("prefill_tokens_per_s", "decode_tokens_per_s") and self.load == "single":
            kind = PREFILL_RATE if metric == "prefill_tokens_per_s" else DECODE_RATE
            return Target(kind, value)
        per_gpu = stat == "per_gpu"
        if stat == "per_user":
            if metric in ("output_tokens_per_s", "decode_tokens_per_s"):
                return Target(TPOT, 1000.0 / value)
            return "per-user figure of an unsupported metric"
        total = value * self.gpu_count if per_gpu else value
        if metric == "output_tokens_per_s" or (metric == "decode_tokens_per_s" and self.load != "single"):
            return Target(THROUGHPUT, total)
        if metric == "total_tokens_per_s":
            return Target(THROUGHPUT, total * self.osl / (self.isl + self.osl))
        if metric == "requests_per_s":
            return Target(THROUGHPUT, total * self.osl)
        return f"metric {metric} ({stat}) not modelled"


def _number(raw: str) -> float | None:
    text = raw.strip().replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int(raw: str, default: int) -> int:
    value = _number(raw)
    return int(value) if value is not None and value >= 1 else default


def parse_row(row: dict[str, str]) -> CorpusRow:
    concurrency = _number(row["concurrency"])
    return CorpusRow(
        id=row["id"],
        source_id=row["source_id"],
        source_title=row["source_title"],
        source_url=row["source_url"],
        source_ref=row["source_ref"],
        engine=row["engine"].strip(),
        engine_version=row["engine_version"],
        model_slug=row["model_slug"].strip(),
        gpu_slug=row["gpu_slug"].strip(),
        gpu_count=_int(row["gpu_count"], 1),
        tp=_int(row["tp"], 1),
        pp=_int(row["pp"], 1),
        ep=_int(row["ep"], 1),
        dp=_int(row["dp"], 1),
        weight_precision=row["weight_precision"].strip(),
        kv_precision=row["kv_precision"].strip(),
        isl=_number(row["isl"]),
        osl=_number(row["osl"]),
        dataset=row["dataset"],
        load=row["load"].strip(),
        concurrency=int(concurrency) if concurrency else None,
        request_rate=_number(row["request_rate"]),
        metric=row["metric"].strip(),
        statistic=row["statistic"].strip(),
        value=_number(row["value"]) or math.nan,
        read_how=row["read_how"],
        notes=row["notes"],
        excluded=row.get("excluded") or "",
    )


def read_corpus(path: Path = CORPUS_PATH) -> tuple[CorpusRow, ...]:
    return _read_cached(path, _digest(path))


def corpus_digest(path: Path = CORPUS_PATH) -> str:
    return _digest(path)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "absent"


@lru_cache(maxsize=4)
def _read_cached(path: Path, digest: str) -> tuple[CorpusRow, ...]:
    if digest == "absent":
        return ()
    with path.open(newline="", encoding="utf-8") as handle:
        return tuple(parse_row(row) for row in csv.DictReader(handle))


def measured_rows(points: Iterable[MeasuredPoint]) -> Iterator[CorpusRow]:
    """This project's measurements as corpus rows: throughput, and TTFT and TPOT where recorded."""
    for point in points:
        base = {
            "source_id": f"measured:{point.point_id or point.source}",
            "source_title": point.source,
            "source_url": "",
            "source_ref": "",
            "engine": point.engine,
            "engine_version": "",
            "model_slug": point.model_slug,
            "gpu_slug": point.gpu_slug,
            "gpu_count": point.gpu_count or point.tp,
            "tp": point.tp,
            "pp": 1,
            "ep": 1,
            "dp": 1,
            "weight_precision": point.quant,
            "kv_precision": "unstated",
            "isl": float(point.isl),
            "osl": float(point.osl),
            "dataset": "fixed",
            "load": "offline" if point.concurrency is None else "concurrency",
            "concurrency": point.concurrency,
            "request_rate": None,
            "read_how": "measured",
            "notes": "",
            "origin": "measured",
            "max_num_seqs": point.max_num_seqs,
        }
        figures: list[tuple[str, str, float | None]] = [
            ("output_tokens_per_s", "total", point.output_tokens_per_s)
        ]
        if point.concurrency is not None:
            figures += [("ttft_ms", "median", point.ttft_p50_ms), ("tpot_ms", "median", point.tpot_ms)]
        for metric, statistic, value in figures:
            if value is None or not math.isfinite(value) or value <= 0:
                continue
            yield CorpusRow(
                id=f"{point.point_id or point.source}:{metric}",
                metric=metric,
                statistic=statistic,
                value=float(value),
                **base,  # type: ignore[arg-type]
            )


def published_points(rows: Iterable[CorpusRow]) -> list[MeasuredPoint]:
    """Published figures as measured points, one per configuration: output tokens/s with the TTFT and TPOT the
    same source gives for the same conditions. Exact configurations a user asks about are answered with these
    (labelled with their source) rather than with the model."""
    grouped: dict[tuple[object, ...], dict[str, float]] = {}
    first: dict[tuple[object, ...], CorpusRow] = {}
    for row in rows:
        target = row.target()
        if isinstance(target, str) or row.load not in ("offline", "concurrency") or row.pp > 1 or row.ep > 1:
            continue
        if row.dp > 1 or row.isl is None or row.osl is None:
            continue
        key: tuple[object, ...] = (row.source_id, row.engine, row.model_slug, row.gpu_slug, row.gpu_count, row.tp, row.quant,
               round(row.isl), round(row.osl), row.concurrency if row.load == "concurrency" else None)  # fmt: skip
        grouped.setdefault(key, {})[target.kind] = target.value
        first.setdefault(key, row)
    points = []
    for key, figures in grouped.items():
        if THROUGHPUT not in figures:
            continue
        row = first[key]
        points.append(
            MeasuredPoint(
                model_slug=row.model_slug,
                gpu_slug=row.gpu_slug,
                engine=row.engine,
                quant=row.quant,
                tp=row.tp,
                isl=round(row.isl or 0),
                osl=round(row.osl or 0),
                concurrency=row.concurrency if row.load == "concurrency" else None,
                output_tokens_per_s=figures[THROUGHPUT],
                ttft_p50_ms=figures.get(TTFT),
                tpot_ms=figures.get(TPOT),
                source=f"published: {row.source_title} ({row.engine_version}), {row.source_url}",
                gpu_count=row.gpu_count,
                point_id=row.id,
            )
        )
    return points


# A negation just before the term ("no disaggregation", "not disaggregated", "without MTP", "no MTP stated")
_NEGATED = re.compile(r"(?:\bno|\bnot|\bwithout|\bnon)[\s-]+$")


def _states(notes: str, *terms: str) -> bool:
    """Whether the notes say the row used one of these techniques (a mention after "no", "not", "without" or
    "non-" says the opposite)."""
    text = notes.lower()
    for term in terms:
        for match in re.finditer(rf"\b{re.escape(term)}", text):
            if not _NEGATED.search(text[max(0, match.start() - 12) : match.start()]):
                return True
    return False
