"""scripts/compare_aiconfigurator.py: scoring, reports, the per-row CSV, and (integration) the real AIC runner."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

AIC_VERSION = "0.12.0"
AIC_PYTHON = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "advisor"
    / f"aic-venv-{AIC_VERSION}"
    / "bin"
    / "python"
)


def row(row_id: str, metric: str, value: str, **extra: str) -> dict[str, str]:
    base = {
        "id": row_id,
        "source_id": row_id.rsplit("-", 1)[0],
        "engine": "trtllm",
        "engine_version": "1.0.0",
        "gpu_slug": "h200",
        "weight_precision": "fp8",
        "model_slug": "llama-3.1-8b",
        "load": "offline",
        "metric": metric,
        "statistic": "total",
        "value": value,
    }
    return base | extra


def runner_lines() -> list[str]:
    records = [
        {"kind": "meta", "aic_version": AIC_VERSION, "aic_core_version": AIC_VERSION, "database_mode": "SILICON"},
        {"kind": "row", "id": "s-1", "status": "answered", "aic_value": 110.0, "system": "h200_sxm",
         "db_version": "1.3.0rc20", "version_mapping": "1.0.0 -> 1.3.0rc20", "mode": "offline"},
        {"kind": "row", "id": "s-2", "status": "answered", "aic_value": 50.0, "system": "h200_sxm",
         "db_version": "1.3.0rc20", "version_mapping": "1.0.0 -> 1.3.0rc20", "mode": "fixed"},
        {"kind": "row", "id": "s-3", "status": "skipped", "category": "engine", "reason": "engine llamacpp ..."},
    ]  # fmt: skip
    return [json.dumps(record) for record in records]


ROWS = [
    row("s-1", "output_tokens_per_s", "100"),
    row("s-2", "ttft_ms", "40", load="concurrency", statistic="median"),
    row("s-3", "decode_tokens_per_s", "80", engine="llamacpp"),
]


def test_scores_only_rows_aic_answers_against_both_models(compare: ModuleType) -> None:
    meta, records = compare.parse_runner_output(runner_lines())
    scored = compare.score(ROWS, records, {"s-1": 95.0, "s-2": None, "s-3": 81.0})
    assert meta["aic_version"] == AIC_VERSION
    assert [(s.row["id"], s.family, round(s.aic_ape_pct, 6), s.ours_ape_pct) for s in scored] == [
        ("s-1", "throughput", 10.0, 5.0),
        ("s-2", "ttft", 25.0, None),
    ]
    assert compare.head_to_head(scored) == [
        "throughput: 1 rows both answer; median APE AIC 10.0% vs ours 5.0% (p90 10.0% vs 5.0%): ours lower",
        "ttft: ours unavailable on the 1 rows AIC answers",
    ]


def test_runner_output_without_meta_is_an_error(compare: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="no meta record"):
        compare.parse_runner_output(runner_lines()[1:])


def test_error_table_reports_median_and_p90_per_key(compare: ModuleType) -> None:
    _, records = compare.parse_runner_output(runner_lines())
    scored = compare.score(ROWS, records, None)
    table = compare.error_table(scored, lambda item: item.row["metric"], "metric")
    assert table[1].split() == ["output_tokens_per_s", "1", "10.0", "10.0", "0", "-", "-"]
    assert table[2].split() == ["ttft_ms", "1", "25.0", "25.0", "0", "-", "-"]


def test_coverage_counts_answers_and_skip_reasons(compare: ModuleType) -> None:
    _, records = compare.parse_runner_output(runner_lines())
    lines = compare.coverage_lines(ROWS, records)
    assert lines[0] == "AIC answers 2 of 3 corpus rows."
    assert "     1  trtllm / h200 / fp8 / output_tokens_per_s" in lines
    assert lines[-1] == "     1  engine: e.g. engine llamacpp ... (1x)"


def test_csv_keeps_every_row_with_its_answer_or_reason(compare: ModuleType, tmp_path: Path) -> None:
    _, records = compare.parse_runner_output(runner_lines())
    out = tmp_path / "aic.csv"
    compare.write_csv(out, ROWS, records, {"s-1": 95.0})
    with out.open(newline="") as handle:
        written = {line["id"]: line for line in csv.DictReader(handle)}
    assert written["s-1"]["aic_value"] == "110.0"
    assert written["s-1"]["aic_ape_pct"] == "10.0"
    assert written["s-1"]["db_version"] == "1.3.0rc20"
    assert written["s-1"]["ours_ape_pct"] == "5.0"
    assert (written["s-3"]["status"], written["s-3"]["skip_category"]) == ("skipped", "engine")


def test_corpus_with_repeated_ids_is_refused(compare: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows([ROWS[0], ROWS[0]])
    with pytest.raises(SystemExit, match="occur more than once"):
        compare.load_corpus(path)


@pytest.mark.integration
@pytest.mark.skipif(not AIC_PYTHON.exists(), reason="AIConfigurator venv not built (scripts/aic/setup.sh)")
def test_real_aiconfigurator_answers_and_skips(compare: ModuleType) -> None:
    # given: an offline TRT-LLM figure, a fixed-concurrency vLLM TTFT and TPOT of one run, and a llama.cpp figure
    fields = {
        "gpu_count": "1",
        "tp": "1",
        "pp": "1",
        "ep": "1",
        "dp": "1",
        "kv_precision": "unstated",
        "isl": "1000",
        "osl": "1000",
        "concurrency": "",
        "notes": "",
    }
    vllm_run = fields | {
        "engine": "vllm",
        "engine_version": "0.13.0",
        "load": "concurrency",
        "concurrency": "16",
        "statistic": "median",
        "weight_precision": "bf16",
    }
    rows = [
        row("t-1", "output_tokens_per_s", "1", **fields),
        row("t-2", "ttft_ms", "1", **vllm_run),
        row("t-3", "tpot_ms", "1", **vllm_run),
        row("t-4", "decode_tokens_per_s", "1", **fields | {"engine": "llamacpp", "load": "single"}),
    ]
    # when
    meta, records = compare.run_aic(str(AIC_PYTHON), rows, database_mode="SILICON", offline_max_batch=None)
    # then
    assert meta["aic_version"] == AIC_VERSION
    assert [records[r["id"]]["status"] for r in rows] == ["answered", "answered", "answered", "skipped"]
    offline, ttft, tpot = records["t-1"], records["t-2"], records["t-3"]
    assert (offline["mode"], offline["backend"], offline["system"]) == ("offline", "trtllm", "h200_sxm")
    assert offline["db_version"] in meta["databases"]["h200_sxm"]["trtllm"]
    assert offline["model_path"] == "meta-llama/Meta-Llama-3.1-8B"
    assert offline["gemm"] == "fp8"
    assert 1 < offline["batch_per_rank"] <= meta["offline_max_batch"]
    assert (ttft["mode"], ttft["batch_per_rank"], ttft["db_version"]) == ("fixed", 16, "0.24.0")
    # one AIC evaluation answers both figures of the run: TPOT below TTFT, both positive and finite
    assert all(math.isfinite(r["aic_value"]) and r["aic_value"] > 0 for r in (offline, ttft, tpot))
    assert tpot["aic_value"] < ttft["aic_value"]
    assert records["t-4"]["category"] == "engine"


@pytest.mark.integration
@pytest.mark.skipif(not AIC_PYTHON.exists(), reason="AIConfigurator venv not built (scripts/aic/setup.sh)")
def test_setup_script_reuses_the_built_venv() -> None:
    setup = Path(__file__).resolve().parents[2] / "scripts" / "aic" / "setup.sh"
    done = subprocess.run(["bash", str(setup)], check=True, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == str(AIC_PYTHON)
