"""`python -m workers bench` arguments, and the result.json contract."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from workers.cli import build_parser, spec_from_args
from workers.errors import InvalidSpec
from workers.loadgen import ClosedLoop, RequestSample, summarize_level
from workers.runner import BenchmarkSpec, _base_result
from workers.schema import validate_result

REQUIRED = ["--engine", "vllm", "--model", "llama-3.1-8b", "--isl", "512", "--osl", "128", "--requests", "50"]


def _parse(*extra: str) -> Any:
    return build_parser().parse_args(["bench", *REQUIRED, "--out", "r.json", *extra])


def test_the_documented_command_line_parses_into_a_spec() -> None:
    args = _parse(
        "--dummy-weights", "--device", "cuda", "--concurrency", "1,4,16", "--tp", "2", "--quant", "fp8"
    )

    spec = spec_from_args(args)

    assert spec.engine == "vllm"
    assert spec.model == "llama-3.1-8b"
    assert spec.dummy_weights
    assert spec.concurrency == (1, 4, 16)
    assert spec.rates == ()
    assert (spec.isl, spec.osl, spec.requests) == (512, 128, 50)
    assert spec.tensor_parallel == 2
    assert spec.quantization == "fp8"
    spec.validate()


def test_rates_slos_and_extra_engine_flags() -> None:
    args = _parse("--rate", "0.5,1,2", "--slo-ttft-ms", "800", "--slo-itl-ms", "60", "--", "--enforce-eager")

    spec = spec_from_args(args)

    assert spec.rates == (0.5, 1.0, 2.0)
    assert spec.slo_ttft_ms == 800.0
    assert spec.slo_itl_ms == 60.0
    assert spec.extra_args == ("--enforce-eager",)


def test_a_length_distribution_is_accepted() -> None:
    args = build_parser().parse_args(
        [
            "bench",
            "--engine",
            "vllm",
            "--model",
            "m",
            "--osl",
            "64",
            "--requests",
            "5",
            "--out",
            "r.json",
            "--isl",
            '{"mean": 800, "p50": 600, "p95": 2400, "max": 8000}',
            "--concurrency",
            "4",
        ]
    )

    assert args.isl == {"mean": 800, "p50": 600, "p95": 2400, "max": 8000}


@pytest.mark.parametrize(
    "extra",
    [
        (),  # neither concurrency nor rate
        ("--concurrency", "1", "--rate", "2"),  # both
        ("--concurrency", "0"),
        ("--concurrency", "a,b"),
        ("--rate", "-1"),
        ("--concurrency", "1", "--engine", "nope"),
        ("--concurrency", "1", "--device", "tpu"),
        ("--concurrency", "1", "--quant", "int3"),
    ],
)
def test_bad_arguments_exit_with_usage(extra: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as caught:
        _parse(*extra)

    assert caught.value.code == 2


def test_a_sweep_needs_an_slo() -> None:
    spec = spec_from_args(_parse("--sweep"))

    with pytest.raises(InvalidSpec, match="SLO"):
        spec.validate()


def _result() -> dict[str, Any]:
    spec = BenchmarkSpec(engine="transformers", model="m", device="cpu", isl=16, osl=8, concurrency=(1,))
    result = _base_result(spec)
    ok = RequestSample(
        index=0, ok=True, sent=True, ttft_ms=10.0, e2e_ms=50.0, elapsed_ms=50.0, output_tokens=8
    )
    failed = RequestSample(index=1, error="http_500: boom", sent=True, elapsed_ms=5.0)
    result["levels"] = [summarize_level([ok, failed], ClosedLoop(1))]
    result["hardware"] = {
        "accelerator": "cpu",
        "accelerator_model": "x",
        "accelerator_count": 0,
        "cpu_model": "x",
        "memory_mib": 1,
    }
    result["engine"] = {"name": "transformers", "version": "5.23.0", "args": ["m"]}
    result["finished_at"] = result["started_at"]
    return result


def test_a_result_satisfies_the_schema() -> None:
    result = _result()

    validate_result(result)

    level = result["levels"][0]
    assert level["requests_ok"] == 1
    assert level["requests_failed"] == 1
    assert level["errors"] == {"http_500": 1}


@pytest.mark.parametrize(
    "path",
    [("engine", "version"), ("levels", 0, "ttft_ms", "p99"), ("levels", 0, "requests_ok"), ("hardware",)],
)
def test_the_schema_catches_a_missing_field(path: tuple[Any, ...]) -> None:
    result = copy.deepcopy(_result())
    holder: Any = result
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]

    with pytest.raises(jsonschema.ValidationError):
        validate_result(result)
