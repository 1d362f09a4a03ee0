"""manage.py predict, calibration_report and plan: output keys, provenance and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.planner.pipeline.test_plan import workload

ROOT = Path(__file__).resolve().parents[2]
PREDICT = [
    "--gpu",
    "h100-sxm",
    "--tp",
    "1",
    "--engine",
    "vllm",
    "--quant",
    "fp8",
    "--isl",
    "1000",
    "--osl",
    "500",
]


def predict_json(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("predict", *args, "--json", stdout=out)
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


@pytest.mark.django_db
def test_predict_prints_the_interface_keys() -> None:
    result = predict_json("--model", "llama-3.1-8b", *PREDICT)

    required = {"output_tokens_per_s", "ttft_ms", "tpot_ms", "fits", "max_concurrent_sequences", "source"}
    assert required <= result.keys()
    assert result["fits"] is True
    assert result["source"] == "predicted"
    assert result["calibration_key"] == "vllm/hopper/fp8"
    assert 0 < result["error_band_rel"] < 5  # the p90 error of its group: finite, and large where data is
    assert result["output_tokens_per_s"] > 0
    assert result["max_concurrent_sequences"] > 0


@pytest.mark.django_db
def test_predict_closed_loop_and_gpu_count_scale_the_total() -> None:
    one = predict_json("--model", "llama-3.1-8b", *PREDICT, "--concurrency", "8")
    four = predict_json("--model", "llama-3.1-8b", *PREDICT, "--concurrency", "32", "--gpu-count", "4")

    assert four["replicas"] == 4
    assert four["output_tokens_per_s"] == pytest.approx(4 * one["output_tokens_per_s"], rel=1e-5)
    assert one["tpot_ms"] < predict_json("--model", "llama-3.1-8b", *PREDICT)["tpot_ms"]


@pytest.mark.django_db
def test_predict_returns_a_published_measurement_labelled_measured() -> None:
    result = predict_json(
        "--model", "llama-3.3-70b", "--gpu", "h100-sxm", "--tp", "2", "--engine", "trtllm", "--quant", "fp8",
        "--isl", "5000", "--osl", "500", "--concurrency", "25",
    )  # fmt: skip

    assert result["source"] == "measured"
    assert result["output_tokens_per_s"] == pytest.approx(623.4)
    assert result["ttft_ms"] == pytest.approx(688.69)
    assert result["basis"].startswith("measured: published: NVIDIA NIM")
    assert any("model predicted" in note for note in result["notes"])


@pytest.mark.django_db
def test_predict_reports_a_model_that_does_not_fit() -> None:
    result = predict_json("--model", "llama-3.1-405b", *PREDICT)

    assert result["fits"] is False
    assert result["memory"]["need_gb"] > result["memory"]["have_gb"]


@pytest.mark.django_db
def test_predict_imports_a_config_json(tmp_path: Path) -> None:
    config_dir = tmp_path / "my-llama"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 4096,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "intermediate_size": 14336,
                "vocab_size": 128256,
            }
        )
    )

    from_config = predict_json("--model-config", str(config_dir / "config.json"), *PREDICT)
    from_catalog = predict_json("--model", "llama-3.1-8b", *PREDICT)

    assert from_config["model"] == "my-llama"
    # Same shapes; the catalog model also carries its own fitted efficiency term, an imported config the pooled one.
    assert from_config["output_tokens_per_s"] == pytest.approx(from_catalog["output_tokens_per_s"], rel=0.05)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model", *PREDICT], "unknown model 'no-such-model'"),
        (["--model", "llama-3.1-8b", *PREDICT[:1], "h900", *PREDICT[2:]], "unknown GPU 'h900'"),
        (
            ["--model", "llama-3.1-8b", "--gpu", "a100-80gb", *PREDICT[2:5], "sglang", *PREDICT[6:]],
            "needs FP8 tensor cores",
        ),
        (["--model", "llama-3.1-8b", *PREDICT[:5], "warp", *PREDICT[6:]], "unknown engine 'warp'"),
        (["--model", "llama-3.1-8b", *PREDICT[:7], "int3", *PREDICT[8:]], "unknown quantization 'int3'"),
    ],
)
def test_predict_refuses_unknown_names_and_impossible_combinations(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("predict", *args, "--json", stdout=StringIO())


def test_predict_exits_non_zero_with_one_line_on_stderr() -> None:
    completed = subprocess.run(
        [sys.executable, "manage.py", "predict", "--model", "llama-3.1-8b", "--gpu", "t4", "--engine", "vllm",
         "--quant", "bf16", "--isl", "10", "--osl", "10", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert completed.returncode != 0
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "BF16" in lines[0]
    assert "t4" in lines[0]


@pytest.mark.django_db
def test_calibration_report_prints_rows_and_both_error_figures() -> None:
    out = StringIO()
    call_command("calibration_report", stdout=out)

    text = out.getvalue()
    assert "leave-one-source-out" in text
    assert "overall (leave-one-source-out):" in text
    for metric in ("output_tokens_per_s", "ttft_ms", "tpot_ms"):
        assert re.search(rf"{metric}\s+\d+ rows\s+median\s+[\d.]+%\s+p90\s+[\d.]+%", text), metric
    assert "per group:" in text
    assert "trtllm / hopper / fp8 / output_tokens_per_s" in text
    assert "worst rows:" in text


@pytest.mark.django_db
def test_plan_command_prints_the_ranked_recommendation(tmp_path: Path) -> None:
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(workload(constraints={"gpus": ["l40s", "h100-sxm"], "engines": ["vllm"]})))
    out = StringIO()

    call_command("plan", "--workload-file", str(path), "--json", stdout=out)

    result = json.loads(out.getvalue())
    assert result["options"]
    assert result["options"][0]["rank"] == 1
    assert {o["gpu"] for o in result["options"]} <= {"l40s", "h100-sxm"}
    assert result["api_alternatives"]
    assert "break_even" in result


@pytest.mark.django_db
def test_plan_command_rejects_an_invalid_workload(tmp_path: Path) -> None:
    path = tmp_path / "workload.json"
    path.write_text(json.dumps({"model": "llama-3.1-8b"}))

    with pytest.raises(CommandError, match="invalid workload: traffic is required"):
        call_command("plan", "--workload-file", str(path), "--json", stdout=StringIO())
