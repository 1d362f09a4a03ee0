"""run_benchmark end to end: the API the Celery task calls, and the CLI around it, on real CPU engines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.workers.conftest import needs_llama_cpp, needs_llama_server
from workers.errors import BenchmarkCancelled
from workers.runner import BenchmarkSpec, run_benchmark
from workers.schema import validate_result

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared so the random-weight model is built once and reused from the cache, as on a worker host."""
    return tmp_path_factory.mktemp("bench-work")


def _llama_spec(work_dir: Path, **overrides: Any) -> BenchmarkSpec:
    fields: dict[str, Any] = {
        "engine": "llamacpp",
        "model": "llama-3.1-8b",
        "dummy_weights": True,
        "shrink": True,
        "device": "cpu",
        "quantization": "gguf-q4_k_m",
        "isl": 16,
        "osl": 8,
        "requests": 6,
        "warmup_requests": 1,
        "startup_timeout_s": 300,
        "request_timeout_s": 60,
        "work_dir": str(work_dir),
    }
    return BenchmarkSpec(**(fields | overrides))


@needs_llama_cpp
@needs_llama_server
def test_catalog_slug_with_dummy_weights_at_open_loop_rates(work_dir: Path) -> None:
    events: list[dict[str, Any]] = []

    result = run_benchmark(_llama_spec(work_dir, rates=(2.0, 4.0)), on_progress=events.append)

    validate_result(result)
    assert [level["rate"] for level in result["levels"]] == [2.0, 4.0]
    assert all(level["requests_ok"] == 6 for level in result["levels"])
    assert result["model"] == "llama-3.1-8b"
    assert result["model_info"]["dummy_weights"]
    assert result["model_info"]["gguf"].endswith("q4_k_m.gguf")
    assert result["engine"]["args"][result["engine"]["args"].index("--parallel") + 1] == "16"
    assert result["quant"] == "gguf-q4_k_m"
    assert result["tp"] == 1
    assert result["engine"]["flavour"] == "llamacpp"  # llama-server itself, with --parallel slots
    assert result["tokenizer"]["sha256"]
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases[0] == "probing"
    assert phases[-1] == "done"
    assert "starting_engine" in phases
    assert "measuring" in phases
    finished = [e for e in events if e["event"] == "level_finished"]
    assert [e["level_index"] for e in finished] == [0, 1]
    assert "samples" not in finished[0]["level"]  # progress stays small; samples go in the result


@needs_llama_cpp
@needs_llama_server
def test_sweep_finds_a_rate_within_the_budget(work_dir: Path) -> None:
    spec = _llama_spec(work_dir, sweep=True, sweep_start_rate=4.0, sweep_budget_s=60.0, slo_ttft_ms=2000.0)

    result = run_benchmark(spec)

    sweep = result["sweep"]
    assert result["mode"] == "sweep"
    assert sweep["max_rate_holding_slo"] is None or sweep["max_rate_holding_slo"] > 0
    assert len(result["levels"]) >= 1
    assert all("slo_holds" in level for level in result["levels"])
    passing = [level["rate"] for level in result["levels"] if level["slo_holds"]]
    assert sweep["max_rate_holding_slo"] == (max(passing) if passing else None)


@needs_llama_cpp
@needs_llama_server
def test_cancel_between_levels_stops_the_engine_and_keeps_finished_levels(work_dir: Path) -> None:
    finished: list[int] = []

    def on_progress(event: dict[str, Any]) -> None:
        if event["event"] == "level_finished":
            finished.append(event["level_index"])

    with pytest.raises(BenchmarkCancelled) as caught:
        run_benchmark(
            _llama_spec(work_dir, concurrency=(1, 2, 4)), on_progress, should_cancel=lambda: bool(finished)
        )

    partial = caught.value.partial_result
    assert partial is not None
    assert partial["cancelled"] is True
    assert 1 <= len(partial["levels"]) < 3
    assert partial["levels"][0]["requests_ok"] == 6


def test_cli_bench_end_to_end(tiny_llama_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    command = [
        sys.executable,
        "-m",
        "workers",
        "bench",
        "--engine",
        "transformers",
        "--model",
        str(tiny_llama_dir),
    ]
    command += ["--device", "cpu", "--isl", "16", "--osl", "8", "--concurrency", "1,2", "--requests", "4"]
    command += ["--out", str(out), "--work-dir", str(tmp_path / "work")]

    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    validate_result(result)
    assert [level["concurrency"] for level in result["levels"]] == [1, 2]
    for level in result["levels"]:
        assert level["requests_ok"] == 4
        assert level["requests_failed"] == 0
        assert level["ttft_ms"]["p50"] > 0
        assert all(s["output_tokens"] == 8 and s["prompt_tokens"] == 16 for s in level["samples"])
    assert result["engine"]["name"] == "transformers"
    assert result["engine"]["version"]
    assert result["engine"]["command"][-len(result["engine"]["args"]) :] == result["engine"]["args"]
    assert result["hardware"]["cpu_cores"] >= 1
    assert (result["isl"], result["osl"]) == (16, 8)
    assert "concurrency 2: ok 4 failed 0" in done.stderr
